package jsstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// openOnEmbedded opens the store on a fresh embedded server (bus.Start, R1).
func openOnEmbedded(t *testing.T, o jsstore.Options) (*bus.Bus, *jsstore.Store) {
	t.Helper()
	return openOnBus(t, bus.Options{StoreDir: t.TempDir()}, o)
}

// openOnBus starts a bus (an embedded server, or a connection to bo.URL) and
// opens a store on it; both close in tb.Cleanup.
func openOnBus(tb testing.TB, bo bus.Options, o jsstore.Options) (*bus.Bus, *jsstore.Store) {
	tb.Helper()
	b, err := bus.Start(context.Background(), bo)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	st, err := jsstore.Open(context.Background(), b.JS, o)
	if err != nil {
		tb.Fatal(err)
	}
	return b, st
}

// embeddedHarness runs the contract on the gateway's own embedded server (bus.Start,
// single node, R1). Reopen restarts the server on the same store folder.
func embeddedHarness() storetest.Harness {
	type node struct {
		b   *bus.Bus
		dir string
	}
	var mu sync.Mutex
	nodes := map[store.Store]*node{}
	open := func(t *testing.T, dir string) store.Store {
		b, err := bus.Start(context.Background(), bus.Options{StoreDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		st, err := jsstore.Open(context.Background(), b.JS, jsstore.Options{Replicas: 1})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		nodes[st] = &node{b, dir}
		mu.Unlock()
		return st
	}
	h := storetest.Harness{
		Open: func(t *testing.T) store.Store { return open(t, t.TempDir()) },
		Reopen: func(t *testing.T, old store.Store) store.Store {
			mu.Lock()
			n := nodes[old]
			mu.Unlock()
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			if err := n.b.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, n.dir)
		},
		StepBack:   jsstore.StepBackBlob,
		Rewrite:    jsstore.RewriteRecord,
		MidListing: jsstore.MidListing,
		Reindex:    reindexForSuite,
		// GetWithEvents reads one document: a change lands before or after.
		MidRead: func(t *testing.T, st store.Store, fn func()) { fn() },
	}
	h.Older = func(t *testing.T, old store.Store) store.Store {
		jsstore.ForgetNewIndexes(t, old)
		return h.Reopen(t, old)
	}
	return h
}

func TestContractEmbedded(t *testing.T) {
	storetest.Run(t, embeddedHarness())
}

// clusterHarness runs the contract on a three-process cluster with R3 streams. Each
// Open is a new pair of buckets (a new prefix); Reopen is a new connection and Open.
func clusterHarness(c *natstest.Cluster) storetest.Harness {
	var n atomic.Int64
	var mu sync.Mutex
	prefixes := map[store.Store]string{}
	open := func(t *testing.T, prefix string) store.Store {
		nc := c.Connect(t)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		st, err := jsstore.Open(context.Background(), js, jsstore.Options{Replicas: 3, Prefix: prefix})
		if err != nil {
			t.Fatalf("open R3 store: %v\n%s", err, c.Logs())
		}
		mu.Lock()
		prefixes[st] = prefix
		mu.Unlock()
		return st
	}
	h := storetest.Harness{
		Open: func(t *testing.T) store.Store {
			prefix := fmt.Sprintf("c%d", n.Add(1))
			t.Cleanup(func() { dropBuckets(c, prefix) })
			return open(t, prefix)
		},
		Reopen: func(t *testing.T, old store.Store) store.Store {
			mu.Lock()
			prefix := prefixes[old]
			mu.Unlock()
			_ = old.Close()
			return open(t, prefix)
		},
		StepBack:   jsstore.StepBackBlob,
		Rewrite:    jsstore.RewriteRecord,
		MidListing: jsstore.MidListing,
		Reindex:    reindexForSuite,
		// GetWithEvents reads one document: a change lands before or after.
		MidRead: func(t *testing.T, st store.Store, fn func()) { fn() },
	}
	h.Older = func(t *testing.T, old store.Store) store.Store {
		jsstore.ForgetNewIndexes(t, old)
		return h.Reopen(t, old)
	}
	return h
}

// dropBuckets keeps the shared test cluster small between cases.
func dropBuckets(c *natstest.Cluster, prefix string) {
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = js.DeleteStream(ctx, "KV_"+prefix)
	_ = js.DeleteStream(ctx, "OBJ_"+prefix+"_blobs")
}

// TestContractCluster runs the contract and the cross-node race on one cluster.
func TestContractCluster(t *testing.T) {
	t.Parallel() // its own three servers; the cluster tests mostly wait (elections, restarts), so two share the time
	c := natstest.StartCluster(t, 3)
	t.Run("Suite", func(t *testing.T) { storetest.Run(t, clusterHarness(c)) })
	t.Run("OneWinnerAcrossNodes", func(t *testing.T) { testOneWinnerAcrossNodes(t, c) })
	t.Run("OpenRefusesToLowerReplicas", func(t *testing.T) { testOpenRefusesToLowerReplicas(t, c) })
}

// acked is what the cluster acknowledged and must therefore never lose.
type acked struct {
	id, sender, msg string
	events          int
	state           string
	blob            []byte
	digest          string
}

// TestClusterSurvivesKill: with R3 streams on three processes, SIGKILL one server
// between operations. Reads and writes go on with two of three (quorum); after the
// killed server restarts and catches up, a second server is killed, so what was
// written while the first was down must now be served from the restarted one.
// Nothing acknowledged is lost at any stage.
func TestClusterSurvivesKill(t *testing.T) {
	t.Parallel() // its own three servers; the cluster tests mostly wait (elections, restarts), so two share the time
	c := natstest.StartCluster(t, 3)
	nc := c.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := jsstore.Open(ctx, js, jsstore.Options{Replicas: 3, Prefix: "kill"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"KV_kill", "OBJ_kill_blobs"} {
		s, err := js.Stream(ctx, name)
		if err != nil || s.CachedInfo().Config.Replicas != 3 || len(s.CachedInfo().Cluster.Replicas) != 2 {
			t.Fatalf("stream %s is not R3: %v", name, err)
		}
	}
	var all []*acked
	write := func(phase string, n int) {
		t.Helper()
		start := time.Now()
		for i := range n {
			a := &acked{id: fmt.Sprintf("%s-%03d-%d", phase, i, time.Now().UnixNano()), sender: "amt24", msg: fmt.Sprintf("%s-m%d", phase, i)}
			a.blob = bytes.Repeat([]byte(a.id), 20000) // ~400 KB: several chunks
			if a.digest, err = st.Blobs().Put(a.blob); err != nil {
				t.Fatalf("%s: blob put: %v", phase, err)
			}
			sub := storetest.NewSubmission(a.id, a.sender, a.msg)
			sub.PackageSHA256 = a.digest
			if _, _, created, err := st.Create(ctx, sub, threeEvents(), "in", []byte("receipt-"+a.id)); err != nil || !created {
				t.Fatalf("%s: create %s: created=%v %v", phase, a.id, created, err)
			}
			a.events, a.state = 3, "queued"
			all = append(all, a) // acknowledged from here on
			if i%2 == 0 {
				if _, err := st.Update(a.id, handOver); err != nil {
					t.Fatalf("%s: update %s: %v", phase, a.id, err)
				}
				a.events, a.state = 4, "handed_over"
			}
		}
		t.Logf("%s: %d submissions with blobs written in %s", phase, n, time.Since(start).Round(time.Millisecond))
	}
	check := func(stage string) {
		t.Helper()
		start := time.Now()
		outbox, err := st.Outbox()
		if err != nil {
			t.Fatalf("%s: outbox: %v", stage, err)
		}
		handed, err := st.HandedOver()
		if err != nil {
			t.Fatalf("%s: handed over: %v", stage, err)
		}
		inOutbox, inHanded := set(outbox), set(store.IDs(handed))
		for _, a := range all {
			s, err := st.Get(a.id)
			if err != nil {
				t.Fatalf("%s: acknowledged submission %s lost: %v", stage, a.id, err)
			}
			evs, err := st.Events(a.id)
			if err != nil || len(evs) != a.events || string(s.State) != a.state {
				t.Fatalf("%s: %s has state %s and %d events (%v), acknowledged %s and %d", stage, a.id, s.State, len(evs), err, a.state, a.events)
			}
			if r, err := st.Receipt(a.id, "in"); err != nil || string(r) != "receipt-"+a.id {
				t.Fatalf("%s: receipt of %s: %q %v", stage, a.id, r, err)
			}
			if f, err := st.FindByMessage(a.sender, a.msg); err != nil || f.ID != a.id {
				t.Fatalf("%s: idempotency key of %s: %v %v", stage, a.id, f, err)
			}
			if inOutbox[a.id] != (a.state == "queued") || inHanded[a.id] != (a.state == "handed_over") {
				t.Fatalf("%s: %s (%s) in outbox=%v handed=%v", stage, a.id, a.state, inOutbox[a.id], inHanded[a.id])
			}
			rc, err := st.Blobs().Open(ctx, a.digest)
			if err != nil {
				t.Fatalf("%s: blob of %s: %v", stage, a.id, err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(b, a.blob) {
				t.Fatalf("%s: blob of %s: %d bytes, %v", stage, a.id, len(b), err)
			}
		}
		t.Logf("%s: %d acknowledged submissions and blobs read back in %s", stage, len(all), time.Since(start).Round(time.Millisecond))
	}

	write("before", 6)
	check("all up")

	first := c.Index(leaderOf(t, js, "KV_kill"))
	t.Logf("SIGKILL %s (leader of the submissions stream)", c.Servers[first].Name)
	c.Kill(t, first)
	killed := time.Now()
	write("one-down", 6)
	t.Logf("first writes with %s down done %s after the kill", c.Servers[first].Name, time.Since(killed).Round(time.Millisecond))
	check("one down")

	c.Restart(t, first)
	start := time.Now()
	c.WaitCurrent(t, js, "KV_kill", 60*time.Second)
	c.WaitCurrent(t, js, "OBJ_kill_blobs", 60*time.Second)
	t.Logf("%s restarted and current in %s", c.Servers[first].Name, time.Since(start).Round(time.Millisecond))
	check("restarted")

	// Now kill another server: the data written while the first was down must come
	// from the restarted server's copy.
	second := c.Index(nc.ConnectedServerName())
	if second == first || second < 0 {
		second = (first + 1) % len(c.Servers)
	}
	t.Logf("SIGKILL %s (the client's server)", c.Servers[second].Name)
	c.Kill(t, second)
	check("restarted one serves")
	write("second-down", 4)
	check("second down")

	// Every server SIGKILLed at once: what the cluster acknowledged was written to
	// each quorum member's files before the ack, and a process kill does not lose
	// the page cache.
	c.Restart(t, second)
	c.WaitCurrent(t, js, "KV_kill", 60*time.Second)
	for i := range c.Servers {
		c.Kill(t, i)
	}
	t.Log("SIGKILL all three servers")
	start = time.Now()
	for i := range c.Servers {
		c.Restart(t, i)
	}
	c.WaitReady(t, 60*time.Second)
	c.WaitCurrent(t, js, "KV_kill", 60*time.Second)
	c.WaitCurrent(t, js, "OBJ_kill_blobs", 60*time.Second)
	t.Logf("cluster back in %s", time.Since(start).Round(time.Millisecond))
	check("all restarted")
	write("after-restart", 2)
	check("end")
	t.Logf("retry loops: %+v", st.Stats())
}

func threeEvents() []submission.Event {
	return []submission.Event{{Type: submission.EventReceived}, {Type: submission.EventRouted}, {Type: submission.EventQueued}}
}

func handOver(s *submission.Submission) ([]submission.Event, error) {
	s.State = submission.StateHandedOver
	return []submission.Event{{Type: submission.EventHandedOver}}, nil
}

func leaderOf(t *testing.T, js jetstream.JetStream, stream string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if s.CachedInfo().Cluster == nil || s.CachedInfo().Cluster.Leader == "" {
		t.Fatalf("stream %s has no leader", stream)
	}
	return s.CachedInfo().Cluster.Leader
}

func set(ids []string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// testOneWinnerAcrossNodes: gateways on different servers receive the
// same message at once (a portal retrying against a load balancer); exactly one
// Create wins cluster-wide and every caller gets the winner's record and receipt.
func testOneWinnerAcrossNodes(t *testing.T, c *natstest.Cluster) {
	t0 := time.Now()
	var stores []*jsstore.Store
	for _, srv := range c.Servers {
		nc, err := nats.Connect(srv.ClientURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		st, err := jsstore.Open(context.Background(), js, jsstore.Options{Replicas: 3, Prefix: "race"})
		if err != nil {
			t.Fatalf("open on %s: %v", srv.Name, err)
		}
		t.Logf("store open on %s after %s", srv.Name, time.Since(t0).Round(time.Millisecond))
		stores = append(stores, st)
	}
	for round := range 5 {
		msg := fmt.Sprintf("m%d", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		created := 0
		seen := map[string]string{}
		start := make(chan struct{})
		for g := range 12 {
			st := stores[g%len(stores)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				id := fmt.Sprintf("r%d-g%02d", round, g)
				got, rcpt, ok, err := st.Create(context.Background(), storetest.NewSubmission(id, "amt24", msg), threeEvents(), "in", []byte("receipt-"+id))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if ok {
					created++
				}
				seen[got.ID] = string(rcpt)
			}()
		}
		close(start)
		wg.Wait()
		if created != 1 || len(seen) != 1 {
			t.Fatalf("round %d: %d created, callers saw %v", round, created, seen)
		}
		t.Logf("round %d: one of 12 concurrent creates won, at %s", round, time.Since(t0).Round(time.Millisecond))
		for id, r := range seen {
			if r != "receipt-"+id {
				t.Fatalf("round %d: record %s came with receipt %q", round, id, r)
			}
		}
	}
}

// TestRecordSizeLimit: a change that would make the submission document larger than
// MaxRecordBytes fails with ErrTooLarge and writes nothing.
func TestRecordSizeLimit(t *testing.T) {
	_, st := openOnEmbedded(t, jsstore.Options{MaxRecordBytes: 8 << 10})
	if _, _, _, err := st.Create(context.Background(), storetest.NewSubmission("s1", "amt24", "m1"), threeEvents(), "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	_, err := st.Update("s1", func(s *submission.Submission) ([]submission.Event, error) {
		s.State = submission.StateHandedOver
		return []submission.Event{{Type: "attempt_failed", Note: string(bytes.Repeat([]byte("x"), 10<<10))}}, nil
	})
	if !errors.Is(err, jsstore.ErrTooLarge) {
		t.Fatalf("oversized update: %v, want ErrTooLarge", err)
	}
	s, _ := st.Get("s1")
	evs, _ := st.Events("s1")
	ho, _ := st.HandedOver()
	if s.State != submission.StateQueued || len(evs) != 3 || len(ho) != 0 {
		t.Fatalf("oversized update wrote something: state %s, %d events, handed over %v", s.State, len(evs), ho)
	}
	big := storetest.NewSubmission("s2", "amt24", "m2")
	big.ServiceName = string(bytes.Repeat([]byte("y"), 10<<10))
	if _, _, _, err := st.Create(context.Background(), big, threeEvents(), "in", nil); !errors.Is(err, jsstore.ErrTooLarge) {
		t.Fatalf("oversized create: %v", err)
	}
	if _, err := st.FindByMessage("amt24", "m2"); err == nil {
		t.Fatal("oversized create left its idempotency key")
	}
}

// testOpenRefusesToLowerReplicas: a node configured with fewer replicas than the
// streams have must not scale them down for everyone.
func testOpenRefusesToLowerReplicas(t *testing.T, c *natstest.Cluster) {
	js, _ := jetstream.New(c.Connect(t))
	if _, err := jsstore.Open(context.Background(), js, jsstore.Options{Replicas: 3, Prefix: "lower"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dropBuckets(c, "lower") })
	if _, err := jsstore.Open(context.Background(), js, jsstore.Options{Replicas: 1, Prefix: "lower"}); err == nil {
		t.Fatal("Open with Replicas 1 accepted R3 streams (and scaled them down)")
	}
	s, err := js.Stream(context.Background(), "KV_lower")
	if err != nil || s.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("stream after a refused Open: %v", err)
	}
}

// TestOperatorsCanReadAsKV: the stream is in KV layout, so the NATS KV API (and the
// nats CLI: nats kv get amtsbote sub.<id>) reads submissions and lists the sets.
func TestOperatorsCanReadAsKV(t *testing.T) {
	b, st := openOnEmbedded(t, jsstore.Options{})
	for _, id := range []string{"s1", "s2"} {
		if _, _, _, err := st.Create(context.Background(), storetest.NewSubmission(id, "amt24", id), threeEvents(), "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Update("s2", handOver); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := b.JS.KeyValue(ctx, "amtsbote")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "sub.s1")
	if err != nil || !bytes.Contains(e.Value(), []byte(`"id":"s1"`)) {
		t.Fatalf("kv get sub.s1: %v", err)
	}
	keys, err := kv.ListKeysFiltered(ctx, "outbox.>")
	if err != nil {
		t.Fatal(err)
	}
	var outbox []string
	for k := range keys.Keys() {
		outbox = append(outbox, k)
	}
	if len(outbox) != 1 || outbox[0] != "outbox.s1" {
		t.Fatalf("kv keys outbox.>: %v (s2 left the outbox)", outbox)
	}
}

// TestRetentionRunPurgesLeftoverChunks: the broker's retention run (what `amtsbote
// gc` and the background job call) sweeps the cluster store's leftover chunks too,
// which its walk over live blobs cannot see, and reports them.
func TestRetentionRunPurgesLeftoverChunks(t *testing.T) {
	b, st := openOnEmbedded(t, jsstore.Options{})
	kept, err := st.Blobs().Put(bytes.Repeat([]byte("needed? no, but young "), 10))
	if err != nil {
		t.Fatal(err)
	}
	// An upload that died before its meta message named its chunks.
	if _, err := b.JS.Publish(context.Background(), "$O.amtsbote_blobs.C.DIEDMIDUPLOAD", []byte("chunk")); err != nil {
		t.Fatal(err)
	}
	br := broker.New(broker.Config{GatewayID: "gc-test"}, st, nil, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	rep, err := br.GC(context.Background(), time.Now(), broker.Retention{BlobGrace: time.Hour})
	if err != nil || rep.LeftoverChunks != 0 {
		t.Fatalf("a run within the grace period: %d leftover chunks purged, %v; want 0", rep.LeftoverChunks, err)
	}
	rep, err = br.GC(context.Background(), time.Now().Add(2*time.Hour), broker.Retention{BlobGrace: time.Hour})
	if err != nil || rep.LeftoverChunks != 1 {
		t.Fatalf("a run after the grace period: %d leftover chunks purged, %v; want 1", rep.LeftoverChunks, err)
	}
	if rep.BlobsDeleted != 1 {
		t.Fatalf("%d unreferenced old blobs deleted, want 1 (%s)", rep.BlobsDeleted, kept)
	}
}

// TestEventPages: the older events of a long log move to pages of their own,
// written with the change that moves them and removed with the submission; each
// page and the document stay within their limits.
func TestEventPages(t *testing.T) {
	const limit = 16 << 10
	b, st := openOnEmbedded(t, jsstore.Options{MaxRecordBytes: limit, Prefix: "pages"})
	ctx := context.Background()
	if _, _, _, err := st.Create(ctx, storetest.NewSubmission("s1", "amt24", "m1"), threeEvents(), "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	note := string(bytes.Repeat([]byte("n"), 500))
	for i := range 200 {
		if _, err := st.Update("s1", func(*submission.Submission) ([]submission.Event, error) {
			return []submission.Event{{Type: "attempt_failed", Attempt: i + 1, Note: note}}, nil
		}); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	evs, err := st.Events("s1")
	if err != nil || len(evs) != 203 || evs[202].Attempt != 200 || evs[202].Seq != 203 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	kv, err := b.JS.Stream(ctx, "KV_pages")
	if err != nil {
		t.Fatal(err)
	}
	subjects := func() map[string]uint64 {
		info, err := kv.Info(ctx, jetstream.WithSubjectFilter("$KV.pages.events.s1.*"))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects
	}
	pages := subjects()
	if len(pages) < 100*500/(limit/2) {
		t.Fatalf("%d pages for ~100 KB of events in pages of at most %d bytes", len(pages), limit/2)
	}
	for subj := range pages {
		m, err := kv.GetLastMsgForSubject(ctx, subj)
		if err != nil || len(m.Data) > limit/2 {
			t.Fatalf("page %s: %d bytes, %v", subj, len(m.Data), err)
		}
	}
	doc, err := kv.GetLastMsgForSubject(ctx, "$KV.pages.sub.s1")
	if err != nil || len(doc.Data) > limit/2 {
		t.Fatalf("document: %d bytes, %v", len(doc.Data), err)
	}
	if err := st.Delete("s1"); err != nil {
		t.Fatal(err)
	}
	for subj := range subjects() {
		m, err := kv.GetLastMsgForSubject(ctx, subj)
		if err != nil || m.Header.Get("KV-Operation") != "DEL" || len(m.Data) != 0 {
			t.Fatalf("page %s after Delete: %v %v, %d bytes", subj, m.Header, err, len(m.Data))
		}
	}
}

// TestEventPagesUnderConcurrentChanges: writers racing on one submission move its
// events to pages in their own batches; a batch that loses the race writes no page,
// so the log comes back whole, every event once, in sequence.
func TestEventPagesUnderConcurrentChanges(t *testing.T) {
	_, st := openOnEmbedded(t, jsstore.Options{MaxRecordBytes: 16 << 10, Prefix: "pagerace"})
	if _, _, _, err := st.Create(context.Background(), storetest.NewSubmission("s1", "amt24", "m1"), threeEvents(), "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	note := string(bytes.Repeat([]byte("n"), 300))
	const writers, each = 8, 30
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := st.Update("s1", func(*submission.Submission) ([]submission.Event, error) {
					return []submission.Event{{Type: "attempt_failed", Actor: fmt.Sprintf("w%d", w), Attempt: i + 1, Note: note}}, nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	evs, err := st.Events("s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3+writers*each {
		t.Fatalf("%d events, want %d", len(evs), 3+writers*each)
	}
	seen := map[string]bool{}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		key := fmt.Sprintf("%s/%d", e.Actor, e.Attempt)
		if i >= 3 && seen[key] {
			t.Fatalf("event %s twice", key)
		}
		seen[key] = true
	}
}

// TestHeldIndexBuiltForOlderBuckets: a bucket written before the held index existed
// (no held keys, no marker) gets it when a node opens it, from the documents.
func TestHeldIndexBuiltForOlderBuckets(t *testing.T) {
	b, st := openOnEmbedded(t, jsstore.Options{Prefix: "oldheld"})
	ctx := context.Background()
	// More held ones than one batch of the first fill puts.
	states := []submission.State{submission.StateHeld, submission.StateQueued, submission.StateHeld}
	want := []string{"s0", "s2"}
	for i := range 600 {
		states = append(states, submission.StateHeld)
		want = append(want, fmt.Sprintf("s%d", i+3))
	}
	slices.Sort(want)
	for i, state := range states {
		sub := storetest.NewSubmission(fmt.Sprintf("s%d", i), "amt24", fmt.Sprintf("m%d", i))
		sub.State = state
		if _, _, _, err := st.Create(ctx, sub, threeEvents(), "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := b.JS.Stream(ctx, "KV_oldheld")
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"$KV.oldheld.held.>", "$KV.oldheld.meta.>"} {
		if err := kv.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			t.Fatal(err)
		}
	}
	if held, err := st.Held(); err != nil || len(held) != 0 { // entries
		t.Fatalf("held after purging the index: %v %v", held, err)
	}
	st2, err := jsstore.Open(ctx, b.JS, jsstore.Options{Prefix: "oldheld"})
	if err != nil {
		t.Fatal(err)
	}
	held, err := store.IDsOf(st2.Held)()
	slices.Sort(held)
	if err != nil || !slices.Equal(held, want) {
		t.Fatalf("held after opening an older bucket: %d ids %v, want %d", len(held), err, len(want))
	}
}

// TestReplyIndexBuiltForOlderBuckets: a bucket written before the reply index
// existed gets it when a node opens it, from the documents' replies.
func TestReplyIndexBuiltForOlderBuckets(t *testing.T) {
	b, st := openOnEmbedded(t, jsstore.Options{Prefix: "oldreplies"})
	ctx := context.Background()
	sub := storetest.NewSubmission("s1", "amt24", "m1")
	sub.Replies = []submission.Reply{{ID: "r1", MessageID: "xta-1"}, {ID: "r2"}}
	if _, _, _, err := st.Create(ctx, sub, threeEvents(), "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	kv, err := b.JS.Stream(ctx, "KV_oldreplies")
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"$KV.oldreplies.reply.>", "$KV.oldreplies.meta.>"} {
		if err := kv.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			t.Fatal(err)
		}
	}
	if ids, err := st.RepliesByMessage("xta-1"); err != nil || len(ids) != 0 {
		t.Fatalf("replies after purging the index: %v %v", ids, err)
	}
	st2, err := jsstore.Open(ctx, b.JS, jsstore.Options{Prefix: "oldreplies"})
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := st2.RepliesByMessage("xta-1"); err != nil || !slices.Equal(ids, []string{"s1"}) {
		t.Fatalf("replies after opening an older bucket: %v %v, want [s1]", ids, err)
	}
}

// TestReachableWithoutQuorum: with two of three servers gone the store's stream
// has no leader, and Reachable says so for as long as that lasts. The server the
// client is connected to answers a stream info request itself once its replica
// has been leaderless for about ten seconds (an answer with an empty leader);
// a probe that took any answer for reachability called the store back after
// that, and a gateway turned ready again without quorum (the CI failure of
// gateway.TestClusterWithoutQuorumIsNotReady).
func TestReachableWithoutQuorum(t *testing.T) {
	t.Parallel() // its own three servers; the cluster tests mostly wait (elections, restarts), so two share the time
	c := natstest.StartCluster(t, 3)
	nc := c.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := jsstore.Open(ctx, js, jsstore.Options{Replicas: 3, Prefix: "quorum", Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := st.Create(ctx, storetest.NewSubmission("quorum-1", "amt24", "m1"), threeEvents(), "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	probe := func() error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return st.Reachable(ctx)
	}
	if err := probe(); err != nil {
		t.Fatalf("all up: %v", err)
	}
	kept := c.Index(nc.ConnectedServerName())
	var killed []int
	for i := range c.Servers {
		if i != kept {
			c.Kill(t, i)
			killed = append(killed, i)
		}
	}
	at := time.Now()
	// Past the server's own threshold for answering as a leaderless replica.
	for time.Since(at) < 25*time.Second {
		time.Sleep(500 * time.Millisecond)
	}
	if err := probe(); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("25 s without quorum: Reachable = %v, want store.ErrUnavailable", err)
	}
	if nc.ConnectedServerName() != c.Servers[kept].Name {
		t.Fatalf("the client moved to %s; the test wants it on the surviving server", nc.ConnectedServerName())
	}
	// Every call says the same (the API answers 503, not 500): a listing
	// used to return its consumer's error as it came.
	for name, call := range map[string]func() error{
		"Get":    func() error { _, err := st.Get("quorum-1"); return err },
		"Scan":   func() error { return st.Scan(func(*submission.Submission) bool { return true }) },
		"Outbox": func() error { _, err := st.Outbox(); return err },
		"Update": func() error { _, err := st.Update("quorum-1", handOver); return err },
	} {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s without quorum: %v, want store.ErrUnavailable", name, err)
		}
	}
	c.Restart(t, killed[0])
	deadline := time.Now().Add(60 * time.Second)
	for probe() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("quorum back: Reachable = %v", probe())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
