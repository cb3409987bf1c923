package bus

import (
	"context"
	"log/slog"
	"testing"
)

// TestEmbeddedServerHasNoNetworkPort: without Options.Listen the embedded
// server takes connections only in process. `amtsbote serve` with no
// configuration promises "an embedded NATS server (no network port)"
// (docs/operations.md): a port, 4222 on every address by the server's
// default, would let anyone who reaches the machine read and write the work
// queue and the store's streams, without a password. No test said so; a
// mutation audit (2026-12-06) opened the port unnoticed.
func TestEmbeddedServerHasNoNetworkPort(t *testing.T) {
	b, err := Start(context.Background(), Options{StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if addr := b.srv.Addr(); addr != nil {
		t.Fatalf("the embedded server listens on %s", addr)
	}
	if _, err := b.JS.AccountInfo(context.Background()); err != nil {
		t.Fatalf("JetStream in process: %v", err)
	}
}
