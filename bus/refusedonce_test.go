package bus

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/amtsbote/amtsbote/internal/testenv"
)

// TestRefusedPasswordIsSaidByTheErrorHandlerOnly: while a server refuses the
// gateway's password, nats.go hands each refusal to the ErrorHandler, which
// logs it; watchReconnects, which speaks for failures nats.go keeps to itself
// (a TLS handshake), leaves it alone rather than saying it a second time as
// "still reconnecting". A mutation audit (2026-12-06) dropped that exception
// and no test failed. The wait is for the second refusal logged: by then
// the watch (every 10 ms here) has seen the refusal as the last error many
// times in a row.
func TestRefusedPasswordIsSaidByTheErrorHandlerOnly(t *testing.T) {
	defer func(w, r time.Duration) { watchEvery, reasonEvery = w, r }(watchEvery, reasonEvery)
	watchEvery, reasonEvery = 10*time.Millisecond, 0
	start := func(port int, pw string) *server.Server {
		t.Helper()
		srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, Username: "amtsbote", Password: pw, NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		go srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("the server did not start")
		}
		return srv
	}
	srv := start(server.RANDOM_PORT, "old-password")
	addr, port := srv.Addr().String(), srv.Addr().(*net.TCPAddr).Port
	var logs testenv.Buffer
	b, err := Start(context.Background(), Options{URL: "nats://amtsbote:old-password@" + addr, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	defer b.Close()
	srv.Shutdown()
	srv.WaitForShutdown()
	srv = start(port, "new-password")
	defer srv.Shutdown()
	for deadline := time.Now().Add(time.Minute); strings.Count(logs.String(), "asynchronous error\" err=\"nats: authorization violation") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("no two refusals logged in a minute:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "still reconnecting") {
		t.Fatalf("a refused password said twice:\n%s", logs.String())
	}
}
