package jsstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/nats-io/nats.go/jetstream"
)

// ForgetUndecided makes st's bucket look as a build before the undecided index
// left it: no undecided keys and no marker that the index was built (for
// storetest.Harness.Older).
func ForgetUndecided(t *testing.T, st store.Store) {
	t.Helper()
	s := st.(*Store)
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	for _, subj := range []string{s.subject("undecided.>"), s.undecidedIndexedKey()} {
		if err := s.kv.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			t.Fatalf("ForgetUndecided: %v", err)
		}
	}
}

// StepBackBlob is storetest.Harness.StepBack for the object store. A meta
// message's time is the clock of the leader that stored it, which a test cannot
// set: the blob is touched with a hdrNotBefore d after its time, so it has the
// time an upload by a leader whose clock ran d ahead would have left.
func StepBackBlob(t *testing.T, st store.Store, digest string, d time.Duration) time.Time {
	t.Helper()
	b := st.Blobs().(*Blobs)
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	bm, err := b.readMeta(ctx, digest)
	if err != nil {
		t.Fatalf("StepBack: %v", err)
	}
	at := bm.stored.Add(d)
	m := metaMsg(bm, bm.data)
	m.Header.Set(hdrNotBefore, strconv.FormatInt(at.UnixNano(), 10))
	if err := request(ctx, b.nc, m); err != nil {
		t.Fatalf("StepBack: %v", err)
	}
	return at
}
