package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// assertGone checks that every read of a deleted submission says ErrNotFound and no
// listing shows it.
func assertGone(t *testing.T, st store.Store, sub *submission.Submission) {
	t.Helper()
	noop := func(*submission.Submission) ([]submission.Event, error) { return []submission.Event{{Type: "x"}}, nil }
	checks := map[string]error{}
	_, checks["Get"] = st.Get(sub.ID)
	_, checks["FindByMessage"] = st.FindByMessage(sub.Sender, sub.MessageID)
	_, checks["Events"] = st.Events(sub.ID)
	_, checks["Receipt(in)"] = st.Receipt(sub.ID, "in")
	_, checks["Receipt(out)"] = st.Receipt(sub.ID, "out")
	_, checks["Update"] = st.Update(sub.ID, noop)
	_, _, checks["UpdateWithReceipt"] = st.UpdateWithReceipt(sub.ID, "out", []byte("r"), noop)
	checks["Delete again"] = st.Delete(sub.ID)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range checks {
			if !yield(k) {
				return
			}
		}
	}) {
		if err := checks[name]; !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of deleted %s: err = %v, want one wrapping store.ErrNotFound", name, sub.ID, err)
		}
	}
	assertIndexed(t, st, sub.ID, false, false)
	if sub.OfficeID != "" {
		if err := st.WalkOffice(sub.OfficeID, "", func(x *submission.Submission) bool {
			if x.ID == sub.ID {
				t.Errorf("WalkOffice(%s) still lists deleted %s", sub.OfficeID, sub.ID)
			}
			return true
		}); err != nil {
			t.Fatalf("WalkOffice after Delete: %v", err)
		}
	}
	for _, x := range scanAll(t, st) {
		if x.ID == sub.ID {
			t.Errorf("Scan still lists deleted %s", sub.ID)
		}
	}
}

// scanAll lists every submission of st. A listing may fail with
// store.ErrUnavailable (the contract: a cluster replica that had not caught up
// lists nothing rather than a part, and the caller tries again later), and the
// suite's clusters restart nodes: it tries again a few times, as callers do.
func scanAll(t *testing.T, st store.Store) []*submission.Submission {
	t.Helper()
	for attempt := 0; ; attempt++ {
		var all []*submission.Submission
		err := st.Scan(func(x *submission.Submission) bool {
			all = append(all, x)
			return true
		})
		if err == nil {
			return all
		}
		if !errors.Is(err, store.ErrUnavailable) || attempt == 20 {
			t.Fatalf("Scan: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testDelete: Delete removes a submission in every state with everything that
// belongs to it, and nothing else.
func (s *suite) testDelete(t *testing.T) {
	st := s.h.Open(t)
	office := uid("office")
	mk := func(prefix string) *submission.Submission {
		sub := NewSubmission(uid(prefix), uid("p"), uid("m"))
		sub.OfficeID = office
		return mustCreate(t, st, sub, firstEvents(), "r-"+sub.ID)
	}
	queued, handed, delivered, other := mk("q"), mk("h"), mk("d"), mk("o")
	if _, _, err := st.UpdateWithReceipt(handed.ID, "out", []byte("r"), setState(submission.StateHandedOver, "handed_over")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.UpdateWithReceipt(delivered.ID, "out", []byte("r"), setState(submission.StateDelivered, "delivered")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(other.ID, setState(submission.StateHandedOver, "handed_over")); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, queued.ID, true, false)
	assertIndexed(t, st, handed.ID, false, true)
	for _, sub := range []*submission.Submission{queued, handed, delivered} {
		if err := st.Delete(sub.ID); err != nil {
			t.Fatalf("Delete %s: %v", sub.ID, err)
		}
		assertGone(t, st, sub)
	}
	// The other submission of the same office is untouched.
	got, err := st.Get(other.ID)
	if err != nil || got.State != submission.StateHandedOver {
		t.Fatalf("other submission after deletes: %+v, %v", got, err)
	}
	if f, err := st.FindByMessage(other.Sender, other.MessageID); err != nil || f.ID != other.ID {
		t.Fatalf("FindByMessage(other) = %v, %v", f, err)
	}
	if evs, err := st.Events(other.ID); err != nil || len(evs) != 4 {
		t.Fatalf("other's events: %v %v", eventTypes(evs), err)
	}
	if r, err := st.Receipt(other.ID, "in"); err != nil || string(r) != "r-"+other.ID {
		t.Fatalf("other's receipt: %q %v", r, err)
	}
	assertIndexed(t, st, other.ID, false, true)
	var walked []string
	if err := st.WalkOffice(office, "", func(x *submission.Submission) bool { walked = append(walked, x.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(walked, []string{other.ID}) {
		t.Fatalf("WalkOffice(%s) after deletes = %v, want only %s", office, walked, other.ID)
	}
	// And it still changes normally.
	if _, err := st.Update(other.ID, setState(submission.StateQueued, "queued")); err != nil {
		t.Fatal(err)
	}
	assertIndexed(t, st, other.ID, true, false)
	if err := st.Delete(uid("missing")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete of a submission never created: %v, want ErrNotFound", err)
	}
	// A delete is durable like any write.
	st = s.h.Reopen(t, st)
	for _, sub := range []*submission.Submission{queued, handed, delivered} {
		assertGone(t, st, sub)
	}
	if got, err := st.Get(other.ID); err != nil || got.State != submission.StateQueued {
		t.Fatalf("other submission after reopen: %+v, %v", got, err)
	}
}

// testDeleteFreesKey: after Delete the same (sender, message id) creates a new
// submission instead of finding the deleted one.
func (s *suite) testDeleteFreesKey(t *testing.T) {
	st := s.h.Open(t)
	ctx := context.Background()
	first := mustCreate(t, st, NewSubmission(uid("s"), uid("p"), uid("m")), firstEvents(), "r-first")
	if err := st.Delete(first.ID); err != nil {
		t.Fatal(err)
	}
	again := NewSubmission(uid("s"), first.Sender, first.MessageID)
	got, rcpt, created, err := st.Create(ctx, again, firstEvents()[:1], "in", []byte("r-again"))
	if err != nil || !created || got.ID != again.ID || string(rcpt) != "r-again" {
		t.Fatalf("Create of a deleted message again: %+v %q created=%v %v, want a new submission", got, rcpt, created, err)
	}
	if f, err := st.FindByMessage(first.Sender, first.MessageID); err != nil || f.ID != again.ID {
		t.Fatalf("FindByMessage after re-create = %v, %v, want %s", f, err, again.ID)
	}
	if evs, err := st.Events(again.ID); err != nil || len(evs) != 1 {
		t.Fatalf("new submission's events: %v %v (the old log must not carry over)", eventTypes(evs), err)
	}
	if _, err := st.Get(first.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the deleted submission is back: %v", err)
	}
	// The key is taken again: idempotency holds for the new submission.
	dup, _, created, err := st.Create(ctx, NewSubmission(uid("s"), first.Sender, first.MessageID), firstEvents(), "in", []byte("x"))
	if err != nil || created || dup.ID != again.ID {
		t.Fatalf("duplicate of the re-created message: %v created=%v %v", dup, created, err)
	}
	// Deleting the new one frees the key once more.
	if err := st.Delete(again.ID); err != nil {
		t.Fatal(err)
	}
	third := mustCreate(t, st, NewSubmission(uid("s"), first.Sender, first.MessageID), firstEvents(), "r-third")
	if f, err := st.FindByMessage(first.Sender, first.MessageID); err != nil || f.ID != third.ID {
		t.Fatalf("FindByMessage after the second re-create = %v, %v", f, err)
	}
}

// testConcurrentDeleteAndUpdate: an Update racing a Delete either lands before it or
// finds nothing; it never brings the record (or an index entry) back.
func (s *suite) testConcurrentDeleteAndUpdate(t *testing.T) {
	st := s.h.Open(t)
	n := min(s.h.Concurrency, 8)
	subs := make([]*submission.Submission, n)
	for i := range subs {
		sub := NewSubmission(uid("cd"), uid("p"), uid("m"))
		sub.OfficeID = uid("office")
		subs[i] = mustCreate(t, st, sub, firstEvents(), "r")
	}
	var wg sync.WaitGroup
	for i, sub := range subs {
		started := make(chan struct{})
		var once sync.Once
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := st.Update(sub.ID, func(x *submission.Submission) ([]submission.Event, error) {
				once.Do(func() { close(started) })
				// Hold the change while Delete runs: a store that checks nothing at
				// write time would write the record back.
				time.Sleep(30 * time.Millisecond)
				x.TotalAttempts++
				if i%2 == 0 {
					x.State = submission.StateHandedOver // the indexes move too
				}
				return []submission.Event{{Type: "counted"}}, nil
			})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Update racing Delete: %v, want success or ErrNotFound", err)
			}
			select {
			case <-started:
			default:
				close(started) // fn never ran (the record was gone): let Delete go on
			}
		}()
		go func() {
			defer wg.Done()
			<-started
			if err := st.Delete(sub.ID); err != nil {
				t.Errorf("Delete racing Update: %v", err)
			}
		}()
	}
	waitGroup(t, &wg)
	for _, sub := range subs {
		assertGone(t, st, sub)
	}
}

// testBlobDeleteAndWalk: Walk lists what Put wrote with its size and a plausible
// time; a deleted blob is neither opened nor walked.
func (s *suite) testBlobDeleteAndWalk(t *testing.T) {
	st := s.h.Open(t)
	bs := st.Blobs()
	ctx := context.Background()
	big := make([]byte, 300<<10) // several chunks where blobs are chunked
	_, _ = rand.Read(big)
	contents := [][]byte{[]byte("%PDF-1.4 walk " + uid("")), {}, big, []byte(uid("reply"))}
	before := time.Now()
	var digests []string
	for _, b := range contents {
		d, err := bs.Put(b)
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		digests = append(digests, d)
	}
	after := time.Now()
	type seen struct {
		size    int64
		written time.Time
		times   int
	}
	walk := func() map[string]*seen {
		t.Helper()
		out := map[string]*seen{}
		if err := bs.Walk(func(d string, size int64, written time.Time) bool {
			if out[d] == nil {
				out[d] = &seen{size: size, written: written}
			}
			out[d].times++
			return true
		}); err != nil {
			t.Fatalf("Walk: %v", err)
		}
		return out
	}
	// Clocks may differ a little (a server's clock, file times), not by minutes.
	const slack = time.Minute
	all := walk()
	for i, d := range digests {
		w := all[d]
		switch {
		case w == nil:
			t.Errorf("Walk does not list blob %s (%d bytes) that Put wrote", d, len(contents[i]))
		case w.times != 1:
			t.Errorf("Walk lists %s %d times", d, w.times)
		case w.size != int64(len(contents[i])):
			t.Errorf("Walk: %s has size %d, Put wrote %d bytes", d, w.size, len(contents[i]))
		case w.written.Before(before.Add(-slack)) || w.written.After(after.Add(slack)):
			t.Errorf("Walk: %s written at %s, Put ran between %s and %s", d, w.written, before, after)
		}
	}
	calls := 0
	if err := bs.Walk(func(string, int64, time.Time) bool { calls++; return false }); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("Walk went on after fn returned false: %d calls", calls)
	}

	gone := digests[2]
	if err := bs.Delete(gone); err != nil {
		t.Fatalf("Delete %s: %v", gone, err)
	}
	if rc, err := bs.Open(ctx, gone); !errors.Is(err, store.ErrNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("Open of a deleted blob: %v, want ErrNotFound", err)
	}
	if err := bs.Delete(gone); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
	all = walk()
	if all[gone] != nil {
		t.Fatalf("Walk lists deleted blob %s", gone)
	}
	for i, d := range digests {
		if d == gone {
			continue
		}
		if all[d] == nil {
			t.Errorf("Walk after deleting another blob misses %s", d)
		}
		rc, err := bs.Open(ctx, d)
		if err != nil {
			t.Fatalf("Open %s after deleting another blob: %v", d, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, contents[i]) {
			t.Fatalf("blob %s after deleting another: %d bytes, %v", d, len(got), err)
		}
	}
	for _, name := range []string{"", "../../etc/passwd", "*", hex.EncodeToString(make([]byte, 32)) + ".>",
		"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"} {
		if err := bs.Delete(name); !errors.Is(err, store.ErrBadDigest) {
			t.Errorf("Delete(%q): %v, want ErrBadDigest", name, err)
		}
	}
	missing := sha256.Sum256([]byte(uid("never put")))
	if err := bs.Delete(hex.EncodeToString(missing[:])); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete of a digest never put: %v, want ErrNotFound", err)
	}
	// The same bytes can be stored again.
	if d, err := bs.Put(big); err != nil || d != gone {
		t.Fatalf("Put after Delete: %s %v", d, err)
	}
	rc, err := bs.Open(ctx, gone)
	if err != nil {
		t.Fatalf("Open after Put again: %v", err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, big) {
		t.Fatalf("read back %d of %d bytes after Put again", len(got), len(big))
	}
	if w := walk()[gone]; w == nil || w.size != int64(len(big)) {
		t.Fatalf("Walk after Put again: %+v", w)
	}
}

// testBlobRefresh is the contract of Refresher, which every store that deletes
// blobs on condition (CondDeleter) must have: a request holding blobs whose
// record is not committed yet refreshes them, and a deleter whose cut-off lies
// before the refresh keeps them — inline-sized and big ones alike. A blob that
// is gone is ErrNotFound, so the request learns that its bytes are not there.
func (s *suite) testBlobRefresh(t *testing.T) {
	st := s.h.Open(t)
	bs := st.Blobs()
	// Every store of the project deletes blobs on condition (the retention's
	// sweep, erasure, DiscardNew), so it must be able to hold them too.
	cond, ok := bs.(store.CondDeleter)
	if !ok {
		t.Fatalf("%T has no DeleteIfOlder (CondDeleter): the sweep, erasure and DiscardNew cannot remove its blobs safely", bs)
	}
	ref, ok := bs.(store.Refresher)
	if !ok {
		t.Fatalf("%T deletes blobs on condition (CondDeleter) but has no Refresh: an upload's blobs cannot be held", bs)
	}
	ctx := context.Background()
	big := make([]byte, 300<<10) // a file or several chunks
	_, _ = rand.Read(big)
	for _, content := range [][]byte{[]byte("held " + uid("")), big} {
		d, err := bs.Put(content)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		cut := time.Now()
		time.Sleep(20 * time.Millisecond)
		at, err := ref.Refresh(ctx, d)
		if err != nil {
			t.Fatalf("Refresh of a stored blob (%d bytes): %v", len(content), err)
		}
		if at.Before(cut.Add(-time.Minute)) {
			t.Errorf("Refresh returned %s, before the cut-off %s", at, cut)
		}
		if gone, err := cond.DeleteIfOlder(d, cut); err != nil || gone {
			t.Fatalf("DeleteIfOlder with a cut-off before the refresh: deleted=%v err=%v; the held blob (%d bytes) must stay", gone, err, len(content))
		}
		if _, err := bs.Open(ctx, d); err != nil {
			t.Fatalf("the held blob is not readable: %v", err)
		}
		if gone, err := cond.DeleteIfOlder(d, time.Now().Add(time.Minute)); err != nil || !gone {
			t.Fatalf("DeleteIfOlder with a cut-off after the refresh: deleted=%v err=%v", gone, err)
		}
		if _, err := ref.Refresh(ctx, d); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Refresh of a deleted blob: %v, want ErrNotFound", err)
		}
	}
	if _, err := ref.Refresh(ctx, hexOf([]byte(uid("never")))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Refresh of a blob never put: %v, want ErrNotFound", err)
	}
	if _, err := ref.Refresh(ctx, "../x"); !errors.Is(err, store.ErrBadDigest) {
		t.Fatalf("Refresh of a malformed digest: %v, want ErrBadDigest", err)
	}
}

func hexOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
