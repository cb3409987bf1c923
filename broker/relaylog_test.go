package broker

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/store"
)

// TestBusAwayIsLoggedOnce: while NATS is away every publish fails, and the relay
// said so every second (some 17,000 lines a day of an outage, an observability
// audit found; amtsbote_bus_connected and its alert carry the state). It says
// so once a minute now.
func TestBusAwayIsLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir+"/store", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bs, err := bus.Start(context.Background(), bus.Options{StoreDir: dir + "/js"})
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	b := New(Config{ExclusiveConsumer: true, QueueInMemory: true}, db, bs.JS, adapters.NewRegistry(), testChannels, fakeSigner{},
		slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Stop(ctx)
	}()
	_ = bs.Close() // NATS away
	receiveN(t, b, "away", 3)
	// Long enough for the relay's one-second tick to try again four times.
	time.Sleep(4500 * time.Millisecond)
	out := logs.String()
	if n := strings.Count(out, "queue failed"); n != 1 {
		t.Fatalf("%d warnings about failed publishes in 4.5 s, want 1:\n%s", n, out)
	}
}
