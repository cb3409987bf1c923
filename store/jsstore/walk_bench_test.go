package jsstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/google/uuid"
)

// BenchmarkWalkOfficePage times one page of an office's listing (a WalkOffice
// that stops after 50 submissions, what broker.List does for the pull API and
// the web mailbox) on an office of N submissions: from the start and from an
// `after` near the end, on jsstore (embedded server, R1) and on the bbolt store,
// and through broker.List on jsstore; jsstore-fresh is a page from a store
// opened just before it. Filling takes a while (100,000 Creates, some minutes):
//
//	go test ./store/jsstore -run '^$' -bench WalkOfficePage -benchtime 20x
//
// WALK_SIZES=2000,20000 picks the office sizes (default 2000,20000,100000).
func BenchmarkWalkOfficePage(b *testing.B) {
	sizes := []int{2000, 20000, 100000}
	if v := os.Getenv("WALK_SIZES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("WALK_SIZES=%q: %v", v, err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		bs, err := bus.Start(context.Background(), bus.Options{StoreDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		js, err := jsstore.Open(context.Background(), bs.JS, jsstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		db, err := store.Open(filepath.Join(b.TempDir(), "bolt"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		ids := fillOffice(b, n, js, db)
		b.Logf("filled an office of %d in both stores in %s", n, time.Since(t0).Round(time.Millisecond))
		nearEnd := ids[len(ids)-60] // a page of 50 and a few left
		for _, st := range []struct {
			name string
			st   store.Store
		}{{"jsstore", js}, {"bbolt", db}} {
			for _, from := range []struct{ name, after string }{{"first", ""}, {"last", nearEnd}} {
				b.Run(fmt.Sprintf("%s/N=%d/%s", st.name, n, from.name), func(b *testing.B) {
					for range b.N {
						got := 0
						if err := st.st.WalkOffice(walkOffice, from.after, func(*submission.Submission) bool { got++; return got < 50 }); err != nil {
							b.Fatal(err)
						}
						if got != 50 {
							b.Fatalf("page of %d", got)
						}
					}
				})
			}
		}
		// A store opened anew for each page (another node, or after a restart):
		// what the first page costs when the store has not listed the office yet.
		for _, from := range []struct{ name, after string }{{"first", ""}, {"last", nearEnd}} {
			b.Run(fmt.Sprintf("jsstore-fresh/N=%d/%s", n, from.name), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					st, err := jsstore.Open(context.Background(), bs.JS, jsstore.Options{})
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					got := 0
					if err := st.WalkOffice(walkOffice, from.after, func(*submission.Submission) bool { got++; return got < 50 }); err != nil {
						b.Fatal(err)
					}
					if got != 50 {
						b.Fatalf("page of %d", got)
					}
				}
			})
		}
		br := broker.New(broker.Config{GatewayID: "walk-bench"}, js, nil, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		for _, from := range []struct{ name, after string }{{"first", ""}, {"last", nearEnd}} {
			b.Run(fmt.Sprintf("broker.List-jsstore/N=%d/%s", n, from.name), func(b *testing.B) {
				for range b.N {
					p, err := br.List(context.Background(), walkOffice, broker.ListQuery{After: from.after, Limit: 50})
					if err != nil {
						b.Fatal(err)
					}
					if len(p.Items) != 50 {
						b.Fatalf("page of %d", len(p.Items))
					}
				}
			})
		}
		_ = db.Close()
		bs.Close()
	}
}

const walkOffice = "amt-walk"

// fillOffice creates n submissions of walkOffice in each store (16 at a time)
// and returns their ids, sorted.
func fillOffice(b *testing.B, n int, stores ...store.Store) []string {
	b.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String() // time-ordered, as the broker's
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				for _, st := range stores {
					s := storetest.NewSubmission(ids[i], "amt24", "m-"+ids[i])
					s.OfficeID = walkOffice
					if _, _, _, err := st.Create(context.Background(), s, threeEvents(), "in", make([]byte, 2000)); err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				}
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	return ids
}
