package bus

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestTokenOfTheFirstURLServesEveryServer: a URL's user info without a
// password is a token (nats://TOKEN@host), and like a user and password
// (TestCredentialsOfTheFirstURLServeEveryServer) it goes to every server of
// the list, here to the one named without it while the first is down. A
// mutation audit (2026-12-06) sent it as a user name with an empty password,
// which every token server refuses, and no test failed.
func TestTokenOfTheFirstURLServesEveryServer(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, Authorization: "s3cret-token", NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the token server did not start")
	}
	// 127.0.0.1:1 refuses at once: the first server is down.
	urls := "nats://s3cret-token@127.0.0.1:1,nats://" + srv.Addr().String()
	b, err := Start(context.Background(), Options{URL: urls, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("start with the token of the first URL: %v", err)
	}
	defer b.Close()
	if !b.Healthy() {
		t.Fatal("not connected")
	}
}
