package jsstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/migrate"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestScanOfALaggingReplicaIsNoShortListing: Scan listed the records through a
// one-replica consumer that could sit on a node just restarted and still catching
// up. The retention builds its set of needed blobs from that scan, so an hourly run
// while a node caught up after more than an hour away deleted the package bytes of
// every acknowledged, open case written meanwhile (found by an audit: 300 of 350
// in the first round); `store export` wrote an export without them and said all
// was well. Now a listing that did not see this call's listing mark is
// ErrStaleListing (store.ErrUnavailable): the retention skips its sweep and the
// export fails, both to be run again; none of them may lose or leave out a record.
func TestScanOfALaggingReplicaIsNoShortListing(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	st, js := openOn(t, c.Servers[0], "scanlag")
	ctx := context.Background()
	b := broker.New(broker.Config{}, st, js, nil, nil, nil, nil, nil)
	ret := broker.Retention{PackageBytes: 90 * 24 * time.Hour, Records: 10 * 365 * 24 * time.Hour, BlobGrace: time.Hour}
	digests := map[string]string{} // id -> its package's digest
	n, stale, whole := 0, 0, 0
	for round := 0; round < 3; round++ {
		c.Kill(t, 2)
		for range 300 {
			d, err := st.Blobs().Put(fmt.Appendf(nil, "package bytes of case %06d", n))
			if err != nil {
				t.Fatal(err)
			}
			s := storetest.NewSubmission(fmt.Sprintf("lag-%06d", n), "amt24", fmt.Sprintf("m-%06d", n))
			s.PackageSHA256, s.Attachments = d, nil
			s.State = submission.StateDelivered // open, no decision: its bytes must stay
			if _, _, _, err := st.Create(ctx, s, []submission.Event{{Type: submission.EventReceived}}, "", nil); err != nil {
				t.Fatal(err)
			}
			digests[s.ID] = d
			n++
		}
		c.Restart(t, 2)
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
			seen := 0
			switch err := st.Scan(func(*submission.Submission) bool { seen++; return true }); {
			case errors.Is(err, jsstore.ErrStaleListing):
				stale++
			case err != nil:
				t.Fatal(err)
			case seen != n:
				t.Fatalf("round %d: Scan listed %d of %d acknowledged records and said nothing", round, seen, n)
			default:
				whole++
			}
			// The hourly retention, as if the blobs were an hour old.
			rep, err := b.GC(ctx, time.Now().Add(2*time.Hour), ret)
			if err != nil && !errors.Is(err, store.ErrUnavailable) {
				t.Fatal(err)
			}
			if rep.BlobsDeleted > 0 {
				t.Fatalf("round %d: the retention deleted %d blobs of open, acknowledged cases (%+v)", round, rep.BlobsDeleted, rep)
			}
			stats, err := migrate.Export(ctx, st, filepath.Join(t.TempDir(), "export"), nil)
			if err != nil && !errors.Is(err, store.ErrUnavailable) {
				t.Fatal(err)
			}
			if err == nil && stats.Submissions != n {
				t.Fatalf("round %d: export reported success with %d of %d records", round, stats.Submissions, n)
			}
		}
	}
	for id, d := range digests {
		rc, err := st.Blobs().Open(ctx, d)
		if err != nil {
			t.Fatalf("the package of %s: %v", id, err)
		}
		rc.Close()
	}
	if whole == 0 {
		t.Fatal("no scan was whole: the check above proves nothing")
	}
	t.Logf("%d records; %d scans whole, %d stale and refused", n, whole, stale)
}
