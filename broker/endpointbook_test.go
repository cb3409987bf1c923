package broker

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/internal/testenv"
)

// bookSuite checks a disabledBook against the contract on the interface. views
// returns a function that opens one more view of one new, empty book: a restart,
// or another gateway. shared: one view sees another's changes through watch.
func bookSuite(t *testing.T, views func(t *testing.T) func() disabledBook, shared bool) {
	ctx := context.Background()
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	// An office id with characters no NATS subject takes.
	a := disabledEndpoint{Office: "Stadt Köln/Bürgeramt 3", Channel: "webhook", At: at, Reason: "receiver answered HTTP 410", Endpoint: "0123456789abcdef"}
	b := disabledEndpoint{Office: "office-b", Channel: "xta", At: at.Add(time.Minute), Reason: "gone"}

	t.Run("KeepsWhatWasPut", func(t *testing.T) {
		open := views(t)
		v := open()
		if got := mustLoad(t, v); len(got) != 0 {
			t.Fatalf("a new book holds %+v", got)
		}
		for _, d := range []disabledEndpoint{a, b} {
			if err := v.put(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if got := mustLoad(t, open()); !sameEntries(got, a, b) {
			t.Fatalf("another view loads %+v, want %+v and %+v", got, a, b)
		}
		a2 := a
		a2.Reason, a2.At = "gone again", at.Add(time.Hour)
		v2 := open()
		mustLoad(t, v2)
		if err := v2.put(ctx, a2); err != nil {
			t.Fatal(err)
		}
		if got := mustLoad(t, open()); !sameEntries(got, a2, b) {
			t.Fatalf("after a second put of the same channel: %+v", got)
		}
	})

	t.Run("ForgetsWhatWasRemoved", func(t *testing.T) {
		open := views(t)
		v := open()
		mustLoad(t, v)
		for _, d := range []disabledEndpoint{a, b} {
			if err := v.put(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 2; i++ { // removing twice is no error
			if err := v.remove(ctx, a.Office, a.Channel); err != nil {
				t.Fatalf("remove #%d: %v", i+1, err)
			}
		}
		if err := v.remove(ctx, "never", "disabled"); err != nil {
			t.Fatalf("remove of an absent entry: %v", err)
		}
		if got := mustLoad(t, open()); !sameEntries(got, b) {
			t.Fatalf("after the removal another view loads %+v, want %+v", got, b)
		}
	})

	if !shared {
		return
	}
	t.Run("WatchSeesOtherGateways", func(t *testing.T) {
		open := views(t)
		writer, reader := open(), open()
		mustLoad(t, writer)
		// The reader's state: what it loaded, then what watch tells it.
		var mu sync.Mutex
		state := map[endpointKey]disabledEndpoint{}
		for _, d := range mustLoad(t, reader) {
			state[endpointKey{d.Office, d.Channel}] = d
		}
		// A change between load and watch is not lost.
		if err := writer.put(ctx, a); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go reader.watch(wctx, func(d disabledEndpoint, removed bool) {
			mu.Lock()
			defer mu.Unlock()
			if removed {
				delete(state, endpointKey{d.Office, d.Channel})
			} else {
				state[endpointKey{d.Office, d.Channel}] = d
			}
		})
		converges := func(want ...disabledEndpoint) {
			t.Helper()
			var got []disabledEndpoint
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				mu.Lock()
				got = got[:0]
				for _, d := range state {
					got = append(got, d)
				}
				mu.Unlock()
				if sameEntries(got, want...) {
					return
				}
			}
			t.Fatalf("the reader holds %+v after 10 s, want %+v", got, want)
		}
		converges(a)
		if err := writer.remove(ctx, a.Office, a.Channel); err != nil {
			t.Fatal(err)
		}
		if err := writer.put(ctx, b); err != nil {
			t.Fatal(err)
		}
		converges(b)
	})
}

func mustLoad(t *testing.T, v disabledBook) []disabledEndpoint {
	t.Helper()
	got, err := v.load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sameEntry(x, y disabledEndpoint) bool {
	return x.Office == y.Office && x.Channel == y.Channel && x.Reason == y.Reason && x.Endpoint == y.Endpoint && x.At.Equal(y.At)
}

func sameEntries(got []disabledEndpoint, want ...disabledEndpoint) bool {
	if len(got) != len(want) {
		return false
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Office < got[j].Office })
	sort.Slice(want, func(i, j int) bool { return want[i].Office < want[j].Office })
	for i := range got {
		if !sameEntry(got[i], want[i]) {
			return false
		}
	}
	return true
}

// fileViews are views of one endpoints file: each a gateway started again.
func fileViews(t *testing.T) func() disabledBook {
	file := filepath.Join(t.TempDir(), "endpoints.json")
	return func() disabledBook { return newFileBook(file) }
}

// kvViews are views of one bucket on an embedded JetStream server: each one
// gateway of a cluster.
func kvViews(t *testing.T) func() disabledBook {
	bs, err := bus.Start(context.Background(), bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	return func() disabledBook {
		b, err := openKVBook(t.Context(), bs.JS, 1)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func TestFileBookConforms(t *testing.T) { bookSuite(t, fileViews, false) }

func TestKVBookConforms(t *testing.T) { bookSuite(t, kvViews, true) }

// TestBookSuiteCatchesDefects proves the suite has teeth: each defect, planted in
// the bucket's book, must make the named case fail.
func TestBookSuiteCatchesDefects(t *testing.T) {
	if os.Getenv("BOOK_DEFECT") != "" {
		return // this is the child process itself
	}
	testenv.PlantedDefects(t, "BOOK_DEFECT", "a book of disabled endpoints", map[string]string{
		"remove-does-nothing": "ForgetsWhatWasRemoved",
		"put-only-in-memory":  "KeepsWhatWasPut",
		"watch-from-now":      "WatchSeesOtherGateways",
	})
}

// TestDefectChild is the child of TestBookSuiteCatchesDefects and does nothing on
// its own.
func TestDefectChild(t *testing.T) {
	defect := os.Getenv("BOOK_DEFECT")
	if defect == "" {
		return
	}
	bookSuite(t, func(t *testing.T) func() disabledBook {
		open := kvViews(t)
		return func() disabledBook { return &defectiveBook{disabledBook: open(), defect: defect} }
	}, true)
}

// defectiveBook is the bucket's book with one defect planted.
type defectiveBook struct {
	disabledBook
	defect string
	mem    []disabledEndpoint
}

func (d *defectiveBook) load(ctx context.Context) ([]disabledEndpoint, error) {
	got, err := d.disabledBook.load(ctx)
	if d.defect == "watch-from-now" {
		// A watcher started only when watch is: what changed since load is lost.
		kb := d.disabledBook.(*kvBook)
		_ = kb.w.Stop()
		kb.w = nil
	}
	return append(got, d.mem...), err
}

func (d *defectiveBook) put(ctx context.Context, e disabledEndpoint) error {
	if d.defect == "put-only-in-memory" {
		d.mem = append(d.mem, e)
		return nil
	}
	return d.disabledBook.put(ctx, e)
}

func (d *defectiveBook) remove(ctx context.Context, office, channel string) error {
	if d.defect == "remove-does-nothing" {
		return nil
	}
	return d.disabledBook.remove(ctx, office, channel)
}

func (d *defectiveBook) watch(ctx context.Context, fn func(disabledEndpoint, bool)) {
	if d.defect != "watch-from-now" {
		d.disabledBook.watch(ctx, fn)
		return
	}
	kb := d.disabledBook.(*kvBook)
	w, err := kb.kv.WatchAll(ctx)
	if err != nil {
		return
	}
	kb.w = w
	for e := range w.Updates() {
		if e == nil {
			break
		}
	}
	kb.watch(ctx, fn)
}

// TestSharedEndpointsAcrossGateways: with the bucket's book, a 410 one gateway saw
// disables the channel at the other, and the operator's enable at the other (where
// the load balancer sent it) enables it at the first, closing its breaker too.
func TestSharedEndpointsAcrossGateways(t *testing.T) {
	open := kvViews(t)
	gw := func() *endpoints {
		e := newEndpoints(1, time.Hour, "", nil)
		e.book = open()
		if err := e.load(t.Context()); err != nil {
			t.Fatal(err)
		}
		return e
	}
	one, two := gw(), gw()
	k, addr := endpointKey{"office-a", "webhook"}, "0123456789abcdef"
	if opened := one.failure(k, time.Now(), 0); !opened {
		t.Fatal("the breaker did not open")
	}
	if err := one.disable(k, addr, time.Now(), "receiver answered HTTP 410"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second gateway to see the channel disabled", func() bool {
		_, off, _, _ := two.isDisabled(k, addr)
		return off
	})
	if known, err := two.enable(k); err != nil || !known {
		t.Fatalf("enable at the second gateway: %v %v", known, err)
	}
	eventually(t, "the first gateway to see the channel enabled, its breaker closed", func() bool {
		_, off, _, _ := one.isDisabled(k, addr)
		ok, _, _ := one.allow(k, addr, time.Now())
		return !off && ok
	})
	// A gateway started afterwards agrees.
	if _, off, _, _ := gw().isDisabled(k, addr); off {
		t.Fatal("a gateway started after the enable sees the channel disabled")
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}
