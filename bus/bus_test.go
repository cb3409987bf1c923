package bus

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbeddedServerThatCannotStartSaysWhy: an embedded server whose JetStream
// folder cannot be made fails Start with the server's reason as soon as it logs
// it, not after 30 s with "not ready" alone (an operator audit: a root-owned
// jetstream/ under the service user).
func TestEmbeddedServerThatCannotStartSaysWhy(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Start(context.Background(), Options{StoreDir: filepath.Join(blocker, "jetstream"), Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		b.Close()
		t.Fatal("started with a JetStream folder inside a file")
	}
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "storage directory is not a directory") {
		t.Fatalf("the error does not say why: %v", err)
	}
}
