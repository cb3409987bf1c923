package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// TestBacklogPerOffice: the operator's "for whom does it wait?" Each waiting
// state is counted for its office, answered cases are not read at all, the
// office whose oldest package waits longest comes first, and a read limit says
// that the count is incomplete instead of reading on.
func TestBacklogPerOffice(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	base := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	n := 0
	// put stores a package received at base+minutes for office, moved on by step.
	put := func(office string, minutes int, targets []submission.Target, step func(*submission.Submission) ([]submission.Event, error)) {
		t.Helper()
		n++
		id := fmt.Sprintf("01900000-%04d-7000-8000-000000000000", n)
		s, evs := submission.New(submission.Params{ID: id, DeliveryID: "d" + id, MessageID: "m" + id, Sender: "amt24", SignerID: "amt24",
			LeikaKey: "99000000000000", ServiceName: "Test", Place: "Dresden", AreaName: "Dresden", OfficeID: office, OfficeName: office,
			Targets: targets, PackageSHA256: fmt.Sprintf("%064x", n), PackageSize: 10}, base.Add(time.Duration(minutes)*time.Minute))
		if _, _, _, err := db.Create(ctx, s, evs, ReceiptIntake, []byte("<r/>")); err != nil {
			t.Fatal(err)
		}
		if step != nil {
			if _, err := db.Update(id, step); err != nil {
				t.Fatal(err)
			}
		}
	}
	primary := []submission.Target{{Channel: "primary"}}
	now := base.Add(time.Hour)
	retry := func(c *submission.Submission) ([]submission.Event, error) {
		return c.AttemptFailed(now, c.Generation, submission.Reason{Public: "HTTP 503"}, now.Add(time.Minute))
	}
	handOver := func(c *submission.Submission) ([]submission.Event, error) {
		return c.HandOver(now, c.Generation, submission.Confirmation{Receiver: "folder"})
	}
	answered := func(c *submission.Submission) ([]submission.Event, error) {
		evs, err := c.Delivered(now, c.Generation, submission.Confirmation{Receiver: "fv"})
		if err != nil {
			return nil, err
		}
		dec, err := c.Decide(now, submission.OutcomeAccepted, "", "office")
		return append(evs, dec...), err
	}
	put("office-a", 30, primary, nil)
	put("office-a", 20, primary, nil)
	put("office-a", 25, primary, retry)
	put("office-a", 1, primary, answered) // the oldest, but answered: not waiting
	put("office-b", 10, primary, handOver)
	put("office-b", 40, nil, nil) // no channel: held
	put("office-c", 5, primary, answered)

	counting := &readCounting{Store: db}
	b := New(testConfig, counting, nil, adapters.NewRegistry(), testChannels, fakeSigner{}, nil, nil)
	offices, read, complete, err := b.Backlog(100)
	if err != nil {
		t.Fatal(err)
	}
	want := []OfficeBacklog{
		{Office: "office-b", HandedOver: 1, Held: 1, WaitingSince: base.Add(10 * time.Minute)},
		{Office: "office-a", Queued: 2, Retrying: 1, WaitingSince: base.Add(20 * time.Minute)},
	}
	if len(offices) != len(want) {
		t.Fatalf("offices %+v, want %+v", offices, want)
	}
	for i := range want {
		if got := offices[i]; got.Office != want[i].Office || got.Queued != want[i].Queued || got.Retrying != want[i].Retrying ||
			got.HandedOver != want[i].HandedOver || got.Held != want[i].Held || !got.WaitingSince.Equal(want[i].WaitingSince) || got.Name != got.Office {
			t.Errorf("office %d: %+v, want %+v", i, got, want[i])
		}
	}
	if read != 5 || !complete {
		t.Errorf("read %d, complete %v; want the 5 waiting packages, complete", read, complete)
	}
	if r := counting.reads.Load(); r != 5 {
		t.Errorf("%d records read, want only the 5 the indexes name", r)
	}

	offices, read, complete, err = b.Backlog(2)
	if err != nil || read != 2 || complete || len(offices) == 0 {
		t.Errorf("limit 2: %+v read %d complete %v %v; want 2 read and incomplete", offices, read, complete, err)
	}
}
