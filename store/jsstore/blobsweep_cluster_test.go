package jsstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// conditional is the blob store method the broker's retention sweep needs.
type conditional interface {
	DeleteIfOlder(digest string, before time.Time) (bool, error)
}

// TestBlobSweepCluster: the retention sweep of blobs on a three-process cluster (R3),
// with gateways on different servers.
func TestBlobSweepCluster(t *testing.T) {
	t.Parallel() // its own three servers; the cluster tests mostly wait (elections, restarts), so two share the time
	c := natstest.StartCluster(t, 3)
	t.Run("PutRacesSweep", func(t *testing.T) { testPutRacesSweep(t, c) })
	t.Run("BrokerGC", func(t *testing.T) { testBrokerGCSweepsBlobs(t, c) })
}

// openOn opens the store through a connection to one server only.
func openOn(t *testing.T, srv *natstest.Server, prefix string) (*jsstore.Store, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := jsstore.Open(context.Background(), js, jsstore.Options{Replicas: 3, Prefix: prefix})
	if err != nil {
		t.Fatalf("open on %s: %v", srv.Name, err)
	}
	return st, js
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func readAll(t *testing.T, bs store.BlobStore, d string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := bs.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// testPutRacesSweep: writers on two servers Put the same few contents again and
// again (intake of resent packages) while sweepers on both servers call
// DeleteIfOlder with a cut-off just behind the clock. The sweep may remove a blob
// only if no Put that started at or after its cut-off had returned before the sweep
// began (that Put's record may be committed: its bytes must stay), and at the end
// every blob whose last Put started at or after every successful sweep's cut-off is
// readable and correct.
func testPutRacesSweep(t *testing.T, c *natstest.Cluster) {
	t.Cleanup(func() { dropBuckets(c, "sweep") })
	stA, _ := openOn(t, c.Servers[0], "sweep")
	stB, _ := openOn(t, c.Servers[1], "sweep")
	stores := []*jsstore.Store{stA, stB}
	var contents [][]byte
	for i := range 6 {
		b := []byte(fmt.Sprintf("%%PDF-1.4 resent package %d", i))
		if i%3 == 0 {
			b = bytes.Repeat(b, 8000) // ~200 KB: two chunks, a slower upload
		}
		contents = append(contents, b)
	}
	type putRec struct {
		start, end time.Time
	}
	type sweepRec struct {
		before, start time.Time
	}
	var (
		mu      sync.Mutex
		puts    = map[string][]putRec{}
		swept   = map[string][]sweepRec{}
		kept    int
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		stopped = func() bool {
			select {
			case <-stop:
				return true
			default:
				return false
			}
		}
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bs := stores[w%2].Blobs()
			for !stopped() {
				data := contents[rand.IntN(len(contents))]
				// Wall-clock readings (Round(0)): the server stamps meta messages with its
				// wall clock, the same machine's.
				start := time.Now().Round(0)
				d, err := bs.Put(data)
				end := time.Now().Round(0)
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				mu.Lock()
				puts[d] = append(puts[d], putRec{start, end}) // "the record commits now"
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(4000)) * time.Microsecond)
			}
		}()
	}
	for s := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bs := stores[s].Blobs().(conditional)
			for !stopped() {
				d := digestOf(contents[rand.IntN(len(contents))])
				start := time.Now().Round(0)
				before := start.Add(-time.Duration(rand.IntN(3000)) * time.Microsecond)
				gone, err := bs.DeleteIfOlder(d, before)
				if err != nil {
					t.Errorf("DeleteIfOlder: %v", err)
					return
				}
				mu.Lock()
				if gone {
					swept[d] = append(swept[d], sweepRec{before, start})
				} else {
					kept++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}

	nPuts, nSwept, checked := 0, 0, 0
	for _, data := range contents {
		d := digestOf(data)
		nPuts += len(puts[d])
		nSwept += len(swept[d])
		for _, s := range swept[d] {
			for _, p := range puts[d] {
				if !p.start.Before(s.before) && p.end.Before(s.start) {
					t.Errorf("blob %s…: swept with cut-off %s by a sweep that began at %s, after a Put that started at %s had returned at %s",
						d[:12], s.before.Format(time.StampMicro), s.start.Format(time.StampMicro), p.start.Format(time.StampMicro), p.end.Format(time.StampMicro))
				}
			}
		}
		var last putRec
		for _, p := range puts[d] {
			if p.start.After(last.start) {
				last = p
			}
		}
		mustLive := !last.start.IsZero()
		for _, s := range swept[d] {
			if s.before.After(last.start) {
				mustLive = false // this sweep may rightly have removed the last Put's blob
			}
		}
		if !mustLive {
			continue
		}
		checked++
		for i, st := range stores {
			got, err := readAll(t, st.Blobs(), d)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("blob %s… on store %d: %d bytes, %v; its last Put (started %s) is newer than every sweep's cut-off",
					d[:12], i, len(got), err, last.start.Format(time.StampMicro))
			}
		}
	}
	t.Logf("%d Puts, %d blobs swept, %d sweeps kept the blob; %d of %d blobs checked readable at the end", nPuts, nSwept, kept, checked, len(contents))
	if nSwept == 0 || nPuts == 0 {
		t.Fatalf("the race did not run: %d Puts, %d sweeps removed a blob", nPuts, nSwept)
	}
	// Whatever the race left: content put again now is readable everywhere.
	for _, data := range contents {
		d, err := stB.Blobs().Put(data)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readAll(t, stA.Blobs(), d); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("blob %s… after the race: %d bytes, %v", d[:12], len(got), err)
		}
	}
}

// testBrokerGCSweepsBlobs: the broker's retention run on a cluster store sweeps blobs
// (it did not before: the JetStream blob store had no DeleteIfOlder). It removes the
// bytes of an expired case and an orphan, keeps blobs an open case references (one
// shared with the expired case), and keeps an orphan that intake on another node
// put again after the sweep's cut-off (its record may be about to commit).
func testBrokerGCSweepsBlobs(t *testing.T, c *natstest.Cluster) {
	t.Cleanup(func() { dropBuckets(c, "gc") })
	ctx := context.Background()
	gcStore, gcJS := openOn(t, c.Servers[0], "gc") // the node running the retention
	intake, _ := openOn(t, c.Servers[1], "gc")     // another node taking packages
	if _, ok := gcStore.Blobs().(conditional); !ok {
		t.Fatal("the JetStream blob store cannot be swept: no DeleteIfOlder")
	}
	blob := func(name string, size int) ([]byte, string) {
		b := bytes.Repeat([]byte(name+" "), size/(len(name)+1)+1)[:size]
		d, err := intake.Blobs().Put(b)
		if err != nil {
			t.Fatal(err)
		}
		return b, d
	}
	openPkg, openD := blob("open package", 300<<10)
	shared, sharedD := blob("shared attachment", 1000)
	_, answeredD := blob("answered package", 200<<10)
	_, orphanD := blob("orphan", 150<<10)
	resent, resentD := blob("resent, record about to commit", 10<<10)

	open := storetest.NewSubmission("open-1", "amt24", "m-open")
	open.PackageSHA256 = openD
	open.Attachments[0].SHA256 = sharedD
	answered := storetest.NewSubmission("answered-1", "amt24", "m-answered")
	answered.PackageSHA256 = answeredD
	answered.Attachments[0].SHA256 = sharedD
	answered.State = submission.StateAccepted
	answered.Decision = &submission.Decision{Outcome: "accepted", At: time.Now().Add(-100 * 24 * time.Hour)}
	for _, s := range []*submission.Submission{open, answered} {
		if _, _, created, err := intake.Create(ctx, s, nil, "in", []byte("r")); err != nil || !created {
			t.Fatalf("create %s: %v %v", s.ID, created, err)
		}
	}
	time.Sleep(10 * time.Millisecond)
	cut := time.Now() // everything above is older than this
	time.Sleep(10 * time.Millisecond)
	if _, err := intake.Blobs().Put(resent); err != nil { // intake on node 2, after the cut
		t.Fatal(err)
	}

	b := broker.New(broker.Config{}, gcStore, gcJS, nil, nil, nil, nil, nil)
	rep, err := b.GC(ctx, cut.Add(time.Hour), broker.Retention{PackageBytes: 90 * 24 * time.Hour, Records: 10 * 365 * 24 * time.Hour, BlobGrace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BytesRemoved != 1 || rep.RecordsDeleted != 0 || rep.BlobsDeleted != 2 || rep.BlobBytesFreed != 200<<10+150<<10 {
		t.Fatalf("GC report %+v: want the answered case's package and the orphan swept (%d bytes)", rep, 200<<10+150<<10)
	}
	for _, st := range []*jsstore.Store{gcStore, intake} {
		for _, d := range []string{answeredD, orphanD} {
			if _, err := st.Blobs().Open(ctx, d); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("swept blob %s…: %v, want ErrNotFound", d[:12], err)
			}
		}
		for d, want := range map[string][]byte{openD: openPkg, sharedD: shared, resentD: resent} {
			if got, err := readAll(t, st.Blobs(), d); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("kept blob %s…: %d bytes, %v", d[:12], len(got), err)
			}
		}
	}
	// The chunks of the swept blobs are gone from the stream, the others' are there:
	// 3 + 1 + 1 chunks of 128 KiB.
	s, err := gcJS.Stream(ctx, "OBJ_gc_blobs")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("$O.gc_blobs.C.>"))
	if err != nil {
		t.Fatal(err)
	}
	var chunks uint64
	for _, n := range info.State.Subjects {
		chunks += n
	}
	if chunks != 5 {
		t.Fatalf("%d chunk messages left, want 5 (the kept blobs' only): %v", chunks, info.State.Subjects)
	}
	// A later run finds nothing more to sweep at the same cut-off.
	if rep, err := b.GC(ctx, cut.Add(time.Hour), broker.Retention{PackageBytes: 90 * 24 * time.Hour, BlobGrace: time.Hour}); err != nil || rep.BlobsDeleted != 0 {
		t.Fatalf("second GC: %+v %v", rep, err)
	}
}
