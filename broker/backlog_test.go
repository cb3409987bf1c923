package broker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestBacklogPerOffice: the operator's "for whom does it wait?" Each waiting
// state is counted for its office, answered cases are not read at all, the
// office whose oldest package waits longest comes first, and a read limit says
// that the count is incomplete instead of reading on.
func TestBacklogPerOffice(t *testing.T) {
	db := storetest.OpenBolt(t)
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
		dec, err := c.Decide(now, "", submission.OutcomeAccepted, "", "office")
		return append(evs, dec...), err
	}
	put("office-a", 30, primary, nil)
	put("office-a", 20, primary, nil)
	put("office-a", 25, primary, retry)
	put("office-a", 1, primary, answered) // the oldest, but answered: not waiting
	put("office-b", 10, primary, handOver)
	put("office-b", 40, nil, nil) // no channel: held
	put("office-c", 5, primary, answered)

	counting := &storetest.ReadCounting{Store: db}
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
	if r := counting.Reads.Load(); r != 5 {
		t.Errorf("%d records read, want only the 5 the indexes name", r)
	}

	offices, read, complete, err = b.Backlog(2)
	if err != nil || read != 2 || complete || len(offices) == 0 {
		t.Errorf("limit 2: %+v read %d complete %v %v; want 2 read and incomplete", offices, read, complete, err)
	}
}

// TestUndecidedPerOffice: the operator's "which cases does an office owe a
// decision?" A case its system fetched (also one that was held) or a clerk
// opened is listed, oldest first, with how and when the office took it;
// decided, processed, erased cases and those XTA or a transfer folder took
// (which never decide here) are not. Asked for one office, another office's
// entries are passed over without reading their records, and pages follow
// after. An office's own list (ListQuery.AwaitingDecision) is the same, for
// that office only.
func TestUndecidedPerOffice(t *testing.T) {
	db := storetest.OpenBolt(t)
	ctx := context.Background()
	base := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	now := base.Add(time.Hour)
	n := 0
	put := func(office string, targets []submission.Target, steps ...func(*submission.Submission) ([]submission.Event, error)) string {
		t.Helper()
		n++
		id := fmt.Sprintf("01900000-%04d-7000-8000-000000000000", n)
		s, evs := submission.New(submission.Params{ID: id, DeliveryID: "d" + id, MessageID: "m" + id, Sender: "amt24", SignerID: "amt24",
			LeikaKey: "99000000000000", ServiceName: "Test", Place: "Dresden", AreaName: "Dresden", OfficeID: office, OfficeName: "Amt " + office,
			Targets: targets, PackageSHA256: fmt.Sprintf("%064x", n), PackageSize: 10}, base.Add(time.Duration(n)*time.Minute))
		if _, _, _, err := db.Create(ctx, s, evs, ReceiptIntake, []byte("<r/>")); err != nil {
			t.Fatal(err)
		}
		for _, step := range steps {
			if _, err := db.Update(id, step); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	take := func(ch string) func(*submission.Submission) ([]submission.Event, error) {
		return func(c *submission.Submission) ([]submission.Event, error) {
			return c.Confirm(now, ch, submission.Confirmation{Receiver: "office (" + ch + ")"})
		}
	}
	decide := func(c *submission.Submission) ([]submission.Event, error) {
		return c.Decide(now, "", submission.OutcomeAccepted, "", "office")
	}
	processed := func(c *submission.Submission) ([]submission.Event, error) {
		return c.MarkProcessed(now, true, "anna", "mailbox")
	}
	erased := func(c *submission.Submission) ([]submission.Event, error) {
		return c.RemoveUnansweredBytes(now, "retention")
	}
	api := []submission.Target{{Channel: "api"}}
	fetched := put("office-a", api, take("api"))
	heldFetched := put("office-a", nil, take("api")) // no channel: held, then fetched by its system
	opened := put("office-b", []submission.Target{{Channel: "mailbox"}}, take("mailbox"))
	put("office-a", api, take("api"), decide)
	put("office-a", api, take("api"), processed)
	put("office-a", api, take("api"), erased)
	put("office-a", []submission.Target{{Channel: "xta"}}, take("xta"))
	put("office-a", []submission.Target{{Channel: "transfer"}}, take("transfer"))
	put("office-a", api) // handed over? not even that: queued

	counting := &storetest.ReadCounting{Store: db}
	b := New(testConfig, counting, nil, adapters.NewRegistry(), testChannels, fakeSigner{}, nil, nil)
	all, err := b.Undecided(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range all {
		ids = append(ids, c.ID)
	}
	if want := []string{fetched, heldFetched, opened}; !slices.Equal(ids, want) {
		t.Fatalf("undecided %v, want %v", ids, want)
	}
	if c := all[2]; c.Office != "office-b" || c.Name != "Amt office-b" || c.Channel != "mailbox" || !c.DeliveredAt.Equal(now) || !c.ReceivedAt.Equal(base.Add(3*time.Minute)) {
		t.Errorf("the opened case: %+v", c)
	}
	if all[1].Channel != "api" {
		t.Errorf("the held case its system fetched: %+v", all[1])
	}
	counting.Reads.Store(0)
	mine, err := b.Undecided(ctx, "office-b", "", 0)
	if err != nil || len(mine) != 1 || mine[0].ID != opened {
		t.Fatalf("office-b's: %+v %v", mine, err)
	}
	if r := counting.Reads.Load(); r != 1 {
		t.Errorf("%d records read for office-b's list, want its 1", r)
	}
	page, err := b.Undecided(ctx, "office-a", "", 1)
	if err != nil || len(page) != 1 || page[0].ID != fetched {
		t.Fatalf("office-a's first page: %+v %v", page, err)
	}
	page, err = b.Undecided(ctx, "office-a", page[0].ID, 1)
	if err != nil || len(page) != 1 || page[0].ID != heldFetched {
		t.Fatalf("office-a's second page: %+v %v", page, err)
	}

	// The office's own list of them (GET /v1/office/submissions?awaiting=decision),
	// for the sweep of a system run as several instances: from the same index,
	// paged as the office's list is, another office's entries unread, and
	// narrowed to the channels the office took them by.
	list := func(office string, q ListQuery) ([]string, string) {
		t.Helper()
		q.AwaitingDecision = true
		p, err := b.List(ctx, office, q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range p.Items {
			ids = append(ids, s.ID)
		}
		return ids, p.Next
	}
	counting.Reads.Store(0)
	if ids, next := list("office-b", ListQuery{}); !slices.Equal(ids, []string{opened}) || next != "" {
		t.Errorf("office-b's own list: %v next %q", ids, next)
	}
	if r := counting.Reads.Load(); r != 1 {
		t.Errorf("%d records read for office-b's own list, want its 1", r)
	}
	if ids, next := list("office-a", ListQuery{Limit: 1}); !slices.Equal(ids, []string{fetched}) || next != fetched {
		t.Errorf("office-a's first page: %v next %q", ids, next)
	}
	if ids, next := list("office-a", ListQuery{Limit: 1, After: fetched}); !slices.Equal(ids, []string{heldFetched}) || next != "" {
		t.Errorf("office-a's second page: %v next %q", ids, next)
	}
	if ids, _ := list("office-b", ListQuery{DeliveredVia: []string{"api", "webhook"}}); len(ids) != 0 {
		t.Errorf("office-b's cases its system took: %v, want none (a clerk took the one)", ids)
	}
	if ids, _ := list("", ListQuery{}); len(ids) != 0 {
		t.Errorf("no office's list: %v, want nothing", ids)
	}
}
