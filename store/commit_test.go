package store

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	bolt "go.etcd.io/bbolt"

	"github.com/amtsbote/amtsbote/submission"
)

func openCommitTest(t *testing.T, delay time.Duration, size int) *DB {
	t.Helper()
	db, err := Open(t.TempDir(), Options{BatchDelay: delay, BatchSize: size})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestGroupCommitShares: concurrent writers share commits, every write is there
// afterwards, and a writer whose function fails gets its own error while the
// others commit (bbolt Batch's contract, which the store's callers rely on).
func TestGroupCommitShares(t *testing.T) {
	db := openCommitTest(t, 20*time.Millisecond, 1000)
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	boom := errors.New("boom")
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.batch(func(tx *wtx) error {
				switch i {
				case 7:
					return fmt.Errorf("writer 7: %w", boom)
				case 9:
					panic("writer 9")
				}
				return tx.bucket(bucketMeta).Put(fmt.Appendf(nil, "k%03d", i), []byte("v"))
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		switch i {
		case 7:
			if !errors.Is(err, boom) {
				t.Errorf("writer 7: %v, want its own error", err)
			}
		case 9:
			if !errors.Is(err, errPanicked) {
				t.Errorf("writer 9: %v, want errPanicked", err)
			}
		default:
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}
	}
	got := 0
	_ = db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).ForEach(func(k, _ []byte) error {
			if k[0] == 'k' {
				got++
			}
			return nil
		})
	})
	if got != n-2 {
		t.Fatalf("%d writes stored, want %d", got, n-2)
	}
	st := db.CommitStats()
	if st.Writes != n-2 || st.Commits >= st.Writes/4 {
		t.Fatalf("commit stats %+v: %d concurrent writes should share a few commits", st, n)
	}
	// The histograms an operator reads: every write's wait, the two that failed
	// too (they waited as long), and every commit's time.
	if waits, sum := histogram(t, db.commit.waited); waits != n || sum <= 0 {
		t.Errorf("write waits: %d observed (sum %vs), want %d", waits, sum, n)
	}
	if commits, _ := histogram(t, db.commit.took); commits < st.Commits || commits > st.Commits+2 {
		t.Errorf("commit times: %d observed for %d commits", commits, st.Commits)
	}
}

func histogram(t *testing.T, h prometheus.Histogram) (count uint64, sum float64) {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// TestGroupCommitSpacing: under a steady stream of writes the committer starts
// commits at least BatchDelay apart (that is what bounds the flush rate), and an
// idle store commits a lone write at once instead of waiting out the delay.
func TestGroupCommitSpacing(t *testing.T) {
	const delay = 50 * time.Millisecond
	db := openCommitTest(t, delay, 1000)
	put := func(i int) error {
		return db.batch(func(tx *wtx) error { return tx.bucket(bucketMeta).Put(fmt.Appendf(nil, "s%04d", i), nil) })
	}
	// A steady stream: one write every millisecond for half a second, each waiting
	// for its commit on its own goroutine.
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 500 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = put(i) }()
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	elapsed := time.Since(start)
	st := db.CommitStats()
	// Commits start ≥ delay apart, so at most elapsed/delay + 1 of them.
	if limit := uint64(elapsed/delay) + 1; st.Commits > limit {
		t.Fatalf("%d commits in %v, at most %d with commits %v apart", st.Commits, elapsed, limit, delay)
	}
	// Idle: the last commit was long ago, so a lone write is not held back.
	time.Sleep(2 * delay)
	before := db.CommitStats().Commits
	if err := put(9999); err != nil {
		t.Fatal(err)
	}
	if db.CommitStats().Commits != before+1 {
		t.Fatal("a lone write did not get its own commit")
	}
}

// TestGroupCommitFull: BatchSize waiting writes start a commit without waiting
// for the delay, and a commit takes at most four times that; the rest go to the
// next one. The test decides what is queued when: it holds bbolt's writer lock so
// that the committer is caught in a commit while the next writes queue up. (Its
// first version let 40 writers race and failed under load: when the last writers
// came late, fewer than 4 were left, and they waited for the delay as they should.)
func TestGroupCommitFull(t *testing.T) {
	db := openCommitTest(t, time.Hour, 4)
	// The first write commits at once (idle store); from then on a commit waits for
	// the delay (an hour) or for 4 writes.
	if err := db.batch(func(tx *wtx) error { return tx.bucket(bucketMeta).Put([]byte("first"), nil) }); err != nil {
		t.Fatal(err)
	}
	queued := func() int {
		db.commit.mu.Lock()
		defer db.commit.mu.Unlock()
		return len(db.commit.queue)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within a minute (%d queued, %+v)", what, queued(), db.CommitStats())
			}
		}
	}
	var wg sync.WaitGroup
	var committed atomic.Int64
	write := func(n int, name string) {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := db.batch(func(tx *wtx) error { return tx.bucket(bucketMeta).Put(fmt.Appendf(nil, "%s%d", name, i), nil) }); err != nil {
					t.Error(err)
				}
				committed.Add(1)
			}()
		}
	}
	// Catch the committer in its next commit: hold the writer lock it needs.
	held, err := db.bolt.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// On a failure, free the committer and fill its queue so that no writer is
		// left waiting for the delay: Close would wait for it for an hour.
		_ = held.Rollback()
		if t.Failed() {
			write(4, "z")
			wg.Wait()
		}
	})
	write(3, "a")
	waitFor("three writes queue", func() bool { return queued() == 3 })
	time.Sleep(20 * time.Millisecond)
	if queued() != 3 {
		t.Fatal("a commit started with three writes waiting and the delay not up")
	}
	write(1, "b") // the fourth starts the commit, which blocks on the held lock
	waitFor("four writes start a commit", func() bool { return queued() == 0 })
	write(20, "c")
	waitFor("twenty more queue", func() bool { return queued() == 20 })
	if err := held.Rollback(); err != nil {
		t.Fatal(err)
	}
	// 4 commit; of the 20, one commit takes 16 (4 × 4) and the 4 left start the next.
	waitFor("every write committed", func() bool { return committed.Load() == 24 })
	wg.Wait()
	if st := db.CommitStats(); st.Writes != 25 || st.Commits != 4 {
		t.Fatalf("commit stats %+v: want 25 writes in 4 commits (1, 4, 16, 4)", st)
	}
}

// TestReadsOlderValues: records, receipts and inline blobs that a build before
// zstd wrote (deflate, marker 0x01), and receipts that a build before S2 wrote
// (zstd, 0x02), read back unchanged beside new ones.
func TestReadsOlderValues(t *testing.T) {
	db := openCommitTest(t, 0, 0)
	deflate := func(b []byte) []byte {
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, flate.BestSpeed)
		_, _ = w.Write(b)
		_ = w.Close()
		return buf.Bytes()
	}
	sub := &submission.Submission{ID: "01900000-0000-7000-8000-000000000001", Sender: "portal", MessageID: "m1", State: submission.StateQueued}
	if _, _, _, err := db.Create(context.Background(), sub, []submission.Event{{Type: "received"}}, "eingang", []byte("<Quittung>new</Quittung>")); err != nil {
		t.Fatal(err)
	}
	rec, err := db.Get(sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	oldReceipt := bytes.Repeat([]byte("<Eingangsbestaetigung>alt</Eingangsbestaetigung>"), 20)
	oldBlob := bytes.Repeat([]byte("<Antrag>alt</Antrag>"), 200)
	var raw []byte
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		// The record as the old build stored it: the same JSON, deflated.
		v, err := unpack(tx.Bucket(bucketCases).Get(recordKey(sub.ID)))
		if err != nil {
			return err
		}
		raw = v
		if err := tx.Bucket(bucketCases).Put(recordKey(sub.ID), append([]byte{packedDeflate}, deflate(v)...)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketCases).Put(receiptKey(sub.ID, "alt"), append([]byte{packedDeflate}, deflate(oldReceipt)...)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketCases).Put(receiptKey(sub.ID, "zstd"), packBig(oldReceipt)); err != nil {
			return err
		}
		bv := make([]byte, inlineHeader)
		binary.BigEndian.PutUint64(bv, uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint64(bv[8:], uint64(len(oldBlob)))
		bv[16] = packedDeflate
		return tx.Bucket(bucketBlobs).Put([]byte(digestOf(oldBlob)), append(bv, deflate(oldBlob)...))
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 {
		t.Fatal("no record")
	}
	again, err := db.Get(sub.ID)
	if err != nil || again.MessageID != rec.MessageID || again.State != rec.State {
		t.Fatalf("deflated record read back as %+v, %v", again, err)
	}
	if got, err := db.Receipt(sub.ID, "alt"); err != nil || !bytes.Equal(got, oldReceipt) {
		t.Fatalf("deflated receipt: %v", err)
	}
	if got, err := db.Receipt(sub.ID, "zstd"); err != nil || !bytes.Equal(got, oldReceipt) {
		t.Fatalf("zstd receipt: %v", err)
	}
	if got, err := db.Receipt(sub.ID, "eingang"); err != nil || string(got) != "<Quittung>new</Quittung>" {
		t.Fatalf("new receipt: %q %v", got, err)
	}
	rc, err := db.Blobs().Open(context.Background(), digestOf(oldBlob))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, oldBlob) {
		t.Fatal("deflated inline blob came back changed")
	}
	// New records and receipts are S2, new inline blobs zstd (store.go).
	if v := pack(oldReceipt); v[0] != packedS2 || len(v) >= len(oldReceipt) {
		t.Fatalf("pack: marker %#x, %d bytes", v[0], len(v))
	}
	if v := packBig(oldBlob); v[0] != packedZstd || len(v) > 1+len(deflate(oldBlob)) {
		t.Fatalf("packBig: marker %#x, %d bytes", v[0], len(v))
	}
	_ = db.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketCases).Get(receiptKey(sub.ID, "eingang")); len(v) == 0 || (v[0] != packedS2 && v[0] != '<') {
			t.Errorf("a new receipt stored with marker %#x", v[0])
		}
		return nil
	})
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestUnpackRefusesDamagedValues: a damaged or hostile stored value is an error
// for its reader, never a panic or an allocation of what its header claims.
func TestUnpackRefusesDamagedValues(t *testing.T) {
	db := openCommitTest(t, 0, 0)
	huge := binary.AppendUvarint([]byte{packedS2}, 1<<40)
	for name, v := range map[string][]byte{
		"s2 claiming 1 TiB":     append(huge, 0, 1, 2),
		"s2 cut short":          pack(bytes.Repeat([]byte("<Quittung/>"), 50))[:20],
		"s2 certs cut short":    append([]byte{packedS2Certs}, pack(bytes.Repeat([]byte("<Quittung/>"), 50))[1:20]...),
		"zstd garbage":          {packedZstd, 0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff},
		"zstd certs garbage":    {packedZstdCerts, 1, 2, 3},
		"deflate garbage":       {packedDeflate, 0xff, 0xff, 0xff},
		"s2 with no length":     {packedS2},
		"s2 certs, no contents": {packedS2Certs},
	} {
		if out, err := db.known.unpack(v); err == nil {
			t.Errorf("%s: read as %d bytes", name, len(out))
		}
	}
	v := make([]byte, inlineHeader+3)
	binary.BigEndian.PutUint64(v[8:], 3)
	v[16] = 0x7f
	if _, err := db.inlineBytes(v); err == nil {
		t.Error("an inline blob with an unknown flag was read")
	}
}

// reopenWithout removes bucket from db's file, as a build before it wrote the
// file, and opens it again (closed when the test ends).
func reopenWithout(t *testing.T, db *DB, dir string, bucket []byte) *DB {
	t.Helper()
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucket) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return openUntilEnd(t, dir)
}

// openUntilEnd opens the store in dir until the test ends.
func openUntilEnd(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestHeldIndexBuiltForOlderFiles: a file written before the held index existed
// gets it at the next open, from the records: the held submissions and no other.
func TestHeldIndexBuiltForOlderFiles(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[submission.State]string{}
	for i, st := range []submission.State{submission.StateHeld, submission.StateQueued, submission.StateDelivered} {
		sub := &submission.Submission{ID: fmt.Sprintf("01900000-0000-7000-8000-00000000000%d", i), Sender: "portal", MessageID: string(st), State: st}
		if _, _, _, err := db.Create(context.Background(), sub, []submission.Event{{Type: "received"}}, "eingang", []byte("r")); err != nil {
			t.Fatal(err)
		}
		ids[st] = sub.ID
	}
	db = reopenWithout(t, db, dir, bucketHeld)
	held, err := IDsOf(db.Held)()
	if err != nil || !slices.Equal(held, []string{ids[submission.StateHeld]}) {
		t.Fatalf("held after reopening an older file: %v %v, want [%s]", held, err, ids[submission.StateHeld])
	}
}

// TestReplyIndexBuiltForOlderFiles: a file written before the reply index existed
// gets it at the next open, from the records' replies.
func TestReplyIndexBuiltForOlderFiles(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sub := &submission.Submission{ID: "01900000-0000-7000-8000-000000000001", Sender: "portal", MessageID: "m", State: submission.StateDelivered,
		Replies: []submission.Reply{{ID: "r1", MessageID: "xta-1"}, {ID: "r2"}}}
	if _, _, _, err := db.Create(context.Background(), sub, []submission.Event{{Type: "received"}}, "eingang", []byte("r")); err != nil {
		t.Fatal(err)
	}
	db = reopenWithout(t, db, dir, bucketReplies)
	ids, err := db.RepliesByMessage("xta-1")
	if err != nil || !slices.Equal(ids, []string{sub.ID}) {
		t.Fatalf("replies after reopening an older file: %v %v, want [%s]", ids, err, sub.ID)
	}
}

// TestFailedCommitIsNoCommit: a transaction the file refuses (here bbolt's size
// limit, as a full disk does) fails its writers, stores nothing, and counts as a
// failed commit, not as a commit that carried writes: amtsbote_store_commits_total
// had counted it, and nothing counted the failure.
func TestFailedCommitIsNoCommit(t *testing.T) {
	db := openCommitTest(t, time.Millisecond, 16)
	put := func(v []byte) error {
		return db.batch(func(tx *wtx) error { return tx.bucket(bucketMeta).Put([]byte("failed-commit"), v) })
	}
	if err := put([]byte("small")); err != nil {
		t.Fatal(err)
	}
	before := db.CommitStats()
	db.bolt.MaxSize = 1 // the file cannot grow
	if err := put(make([]byte, 8<<20)); err == nil {
		t.Fatal("a write that needs the file to grow committed past the size limit")
	}
	after := db.CommitStats()
	if after.Commits != before.Commits || after.Writes != before.Writes || after.Failed != before.Failed+1 {
		t.Fatalf("after a refused commit: %+v, before %+v", after, before)
	}
	db.bolt.MaxSize = 0
	if err := put([]byte("again")); err != nil {
		t.Fatal(err)
	}
	if st := db.CommitStats(); st.Commits != after.Commits+1 || st.Failed != after.Failed {
		t.Fatalf("after the limit is gone: %+v", st)
	}
}

// TestRefusedUntilAWriteSucceeds: a refused commit leaves the store refusing
// (CommitStats.Refused, what the gateway's readiness reads) until a write
// succeeds; ProbeWrite is such a write for a gateway that gets none, is itself
// refused while the file cannot grow, and leaves nothing behind. Before, nothing
// said whether the latest commit had failed: the failures were only counted.
func TestRefusedUntilAWriteSucceeds(t *testing.T) {
	db := openCommitTest(t, time.Millisecond, 16)
	put := func(k string, v []byte) error {
		return db.batch(func(tx *wtx) error { return tx.bucket(bucketMeta).Put([]byte(k), v) })
	}
	if err := put("first", []byte("small")); err != nil {
		t.Fatal(err)
	}
	if st := db.CommitStats(); st.Refused != nil {
		t.Fatalf("refused before any failure: %v", st.Refused)
	}
	db.bolt.MaxSize = 1 // the file cannot grow, as on a full disk
	if err := put("big", make([]byte, 8<<20)); err == nil {
		t.Fatal("a write that needs the file to grow committed past the size limit")
	}
	refused := db.CommitStats()
	if refused.Refused == nil {
		t.Fatal("no refusal recorded after a refused commit")
	}
	if err := db.ProbeWrite(); err == nil {
		t.Fatal("the probe write succeeded while the file cannot grow")
	}
	if st := db.CommitStats(); st.Refused == nil || st.Failed != refused.Failed+1 || st.Commits != refused.Commits {
		t.Fatalf("after a refused probe: %+v, before %+v", st, refused)
	}
	db.bolt.MaxSize = 0
	if err := db.ProbeWrite(); err != nil {
		t.Fatalf("probe write with room: %v", err)
	}
	if st := db.CommitStats(); st.Refused != nil || st.Commits != refused.Commits {
		t.Fatalf("after a successful probe: %+v (a probe is no group commit)", st)
	}
	if err := db.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(probeKey) != nil {
			return errors.New("the probe's row is still there")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A refused group commit, then a successful one, clears it as well.
	db.bolt.MaxSize = 1
	if err := put("big", make([]byte, 8<<20)); err == nil || db.CommitStats().Refused == nil {
		t.Fatalf("refused write: %v, state %+v", err, db.CommitStats())
	}
	db.bolt.MaxSize = 0
	if err := put("again", []byte("small")); err != nil || db.CommitStats().Refused != nil {
		t.Fatalf("write with room: %v, state %+v", err, db.CommitStats())
	}
}
