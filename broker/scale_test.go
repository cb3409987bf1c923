package broker

import (
	"context"
	"fmt"

	"github.com/amtsbote/amtsbote/adapters"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	bolt "go.etcd.io/bbolt"
)

// readCounting is the real store, counting the records the broker reads from
// it: by Get, and one by one in office walks and scans.
type readCounting struct{ storetest.ReadCounting }

func (c *readCounting) WalkOffice(officeID, after string, fn func(*submission.Submission) bool) error {
	return c.Store.WalkOffice(officeID, after, func(s *submission.Submission) bool {
		c.Reads.Add(1)
		return fn(s)
	})
}

func (c *readCounting) Scan(fn func(*submission.Submission) bool) error {
	return c.Store.Scan(func(s *submission.Submission) bool {
		c.Reads.Add(1)
		return fn(s)
	})
}

// fillHistory writes, into the bbolt store under dir, answered cases of office
// (accepted, as delivery and the office's decision leave them) and held ones of
// each office in waiting, oldest first by id, and returns the held ids per office.
func fillHistory(t *testing.T, dir, office string, answered int, waiting map[string]int) map[string][]string {
	t.Helper()
	db, err := store.Open(dir+"/store", store.Options{BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	create := func(i int, officeID string, targets []submission.Target) *submission.Submission {
		id := fmt.Sprintf("01900000-%04d-7000-8000-000000000000", i) // time-ordered, as the broker's UUIDv7
		s, evs := submission.New(submission.Params{ID: id, DeliveryID: "d" + id, MessageID: "m" + id, Sender: "amt24", SignerID: "amt24",
			LeikaKey: "99000000000000", ServiceName: "Test", Place: "Dresden", AreaName: "Dresden", OfficeID: officeID, OfficeName: officeID,
			Targets: targets, PackageSHA256: fmt.Sprintf("%064x", i), PackageSize: 10}, time.Now().UTC())
		if _, _, _, err := db.Create(ctx, s, evs, ReceiptIntake, []byte("<r/>")); err != nil {
			t.Fatal(err)
		}
		return s
	}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 { // concurrent writers share the store's commits
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				s := create(i, office, []submission.Target{{Channel: "primary"}})
				if _, err := db.Update(s.ID, func(c *submission.Submission) ([]submission.Event, error) {
					now := time.Now().UTC()
					evs, err := c.Delivered(now, c.Generation, submission.Confirmation{Receiver: "fv"})
					if err != nil {
						return nil, err
					}
					dec, err := c.Decide(now, "", submission.OutcomeAccepted, "", "office")
					return append(evs, dec...), err
				}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for i := range answered {
		work <- i
	}
	close(work)
	wg.Wait()
	held := map[string][]string{}
	i := answered
	for _, o := range slices.Sorted(maps.Keys(waiting)) {
		for range waiting[o] {
			held[o] = append(held[o], create(i, o, nil).ID) // no channel: held
			i++
		}
	}
	return held
}

// TestWaitingListReadsTheIndexNotTheHistory: an office's listing of what still
// waits (the pull API's state filter, XTA's status list, the mailbox's "Neu")
// reads the records the store's indexes name, not every case the office ever
// had: with 600 answered cases and 3 held ones it read all 603 records per
// poll. Paging and the office's boundary stay as they were.
func TestWaitingListReadsTheIndexNotTheHistory(t *testing.T) {
	dir := t.TempDir()
	held := fillHistory(t, dir, "office-a", 600, map[string]int{"office-a": 3, "office-b": 2})
	b, st := countingBroker(t, dir)
	ctx := context.Background()

	st.Reads.Store(0)
	pg, err := b.List(ctx, "office-a", ListQuery{States: waitingStates})
	if err != nil {
		t.Fatal(err)
	}
	got := ids(pg.Items)
	if !slices.Equal(got, held["office-a"]) || pg.Next != "" {
		t.Fatalf("waiting list of office-a = %v (next %q), want %v", got, pg.Next, held["office-a"])
	}
	// The office's three held records, not its 603 cases (nor, since the index
	// entries name their office, office-b's two).
	if n := st.Reads.Load(); n > 3 {
		t.Fatalf("the waiting list read %d records, want at most the office's 3 the indexes name", n)
	}

	// Pages of one: the same three, in order, each page reading the index's records.
	got, after := nil, ""
	for range 4 {
		st.Reads.Store(0)
		pg, err := b.List(ctx, "office-a", ListQuery{States: []submission.State{submission.StateHeld}, Limit: 1, After: after})
		if err != nil {
			t.Fatal(err)
		}
		if n := st.Reads.Load(); n > 3 {
			t.Fatalf("a page read %d records", n)
		}
		for _, s := range pg.Items {
			got = append(got, s.ID)
		}
		if after = pg.Next; after == "" {
			break
		}
	}
	if !slices.Equal(got, held["office-a"]) {
		t.Fatalf("paged held list = %v, want %v", got, held["office-a"])
	}
	// Another office's waiting cases stay its own.
	if pg, err := b.List(ctx, "office-b", ListQuery{States: waitingStates}); err != nil || len(pg.Items) != 2 || pg.Items[0].OfficeID != "office-b" {
		t.Fatalf("office-b's waiting list = %+v, %v", pg.Items, err)
	}
	// A state no index holds still walks the office's cases.
	if pg, err := b.List(ctx, "office-a", ListQuery{States: []submission.State{submission.StateAccepted}, Limit: 1000}); err != nil || len(pg.Items) != 600 {
		t.Fatalf("accepted list: %d items, %v", len(pg.Items), err)
	}
}

// TestWaitingReadsOnlyTheOfficesOwn: the waiting list of one office reads its
// own waiting records, not the other offices' (the indexes named every waiting
// submission, and a poll of an office with 3 waiting read all 203 while another
// office had 200 held); Waiting, what XTA counts MessagesPending from on every
// getMessage, reads none. An erased submission neither lists as waiting nor
// counts; an index entry written before the indexes named the office is read
// once to learn it.
func TestWaitingReadsOnlyTheOfficesOwn(t *testing.T) {
	dir := t.TempDir()
	held := fillHistory(t, dir, "office-a", 0, map[string]int{"office-a": 3, "office-b": 200})
	// Two of office-b's entries as a file of the version before wrote them:
	// without a value, so the office is not known from the index.
	forgetWaitingValues(t, dir+"/store/"+store.FileName, held["office-b"][:2])
	b, st := countingBroker(t, dir)
	ctx := context.Background()

	st.Reads.Store(0)
	pg, err := b.List(ctx, "office-a", ListQuery{States: waitingStates})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(pg.Items); !slices.Equal(got, held["office-a"]) {
		t.Fatalf("office-a's waiting list = %v, want %v", got, held["office-a"])
	}
	if n := st.Reads.Load(); n > 3+2 {
		t.Fatalf("office-a's waiting list read %d records, want its 3 and the 2 entries without an office", n)
	}
	st.Reads.Store(0)
	w, err := waitingIDs(b.Waiting(ctx, "office-a"))
	if err != nil || !slices.Equal(w, held["office-a"]) {
		t.Fatalf("Waiting(office-a) = %v, %v; want %v", w, err, held["office-a"])
	}
	if n := st.Reads.Load(); n > 2 {
		t.Fatalf("Waiting read %d records, want only the 2 entries without an office", n)
	}
	if w, err := waitingIDs(b.Waiting(ctx, "office-b")); err != nil || !slices.Equal(w, held["office-b"]) {
		t.Fatalf("Waiting(office-b) has %d ids, %v; want its 200", len(w), err)
	}

	// An erasure of a waiting package: neither listed as waiting nor counted (it
	// waits for nothing: nothing to fetch or decide; an office that paged
	// through what waits met erased cases first on every poll). The office's
	// unfiltered list and the case's own record still show it.
	erased := held["office-a"][1]
	if _, err := st.Update(erased, func(s *submission.Submission) ([]submission.Event, error) {
		now := time.Now().UTC()
		s.BytesRemovedAt = &now
		return []submission.Event{{Type: submission.EventBytesRemoved}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	st.Reads.Store(0)
	w, err = waitingIDs(b.Waiting(ctx, "office-a"))
	if want := []string{held["office-a"][0], held["office-a"][2]}; err != nil || !slices.Equal(w, want) {
		t.Fatalf("Waiting after an erasure = %v, %v; want %v", w, err, want)
	}
	if n := st.Reads.Load(); n > 2 {
		t.Fatalf("Waiting read %d records after the erasure", n)
	}
	if pg, err := b.List(ctx, "office-a", ListQuery{States: waitingStates}); err != nil || !slices.Equal(ids(pg.Items), []string{held["office-a"][0], held["office-a"][2]}) {
		t.Fatalf("the waiting list after an erasure: %v, %v", ids(pg.Items), err)
	}
	if pg, err := b.List(ctx, "office-a", ListQuery{Limit: 1000}); err != nil || !slices.Contains(ids(pg.Items), erased) {
		t.Fatalf("the office's whole list after an erasure lacks the case: %v", err)
	}
	// Asked with a state no index holds beside the waiting ones, the list walks
	// the office's cases: the erased one is left out there too.
	mixed := append(slices.Clone(waitingStates), submission.StateDelivered)
	if pg, err := b.List(ctx, "office-a", ListQuery{States: mixed, Limit: 1000}); err != nil || slices.Contains(ids(pg.Items), erased) {
		t.Fatalf("the list of waiting and delivered cases names the erased one: %v", err)
	}
}

// waitingStates are the states of the store's waiting indexes, as the faces ask for them.
var waitingStates = []submission.State{submission.StateQueued, submission.StateRetrying, submission.StateHandedOver, submission.StateHeld}

// countingBroker starts a broker on the store under dir that counts its record reads.
func countingBroker(t *testing.T, dir string) (*Broker, *readCounting) {
	t.Helper()
	var st *readCounting
	b := startOver(t, dir, testConfig, func(db *store.DB) store.Store { st = &readCounting{storetest.ReadCounting{Store: db}}; return st })
	return b, st
}

// waitingIDs are the ids of Waiting's entries.
func waitingIDs(entries []WaitingEntry, err error) ([]string, error) {
	var out []string
	for _, e := range entries {
		out = append(out, e.ID)
	}
	return out, err
}

func ids(subs []*submission.Submission) []string {
	var out []string
	for _, s := range subs {
		out = append(out, s.ID)
	}
	return out
}

// forgetWaitingValues empties the waiting index values of ids in the bbolt file.
func forgetWaitingValues(t *testing.T, file string, ids []string) {
	t.Helper()
	db, err := bolt.Open(file, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"outbox", "handed_over", "held"} {
			b := tx.Bucket([]byte(name))
			for _, id := range ids {
				if b.Get([]byte(id)) != nil {
					if err := b.Put([]byte(id), nil); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRetentionSharesCommits: a retention run's writes share the store's group
// commits. One after another, each removal of bytes, each deletion and each blob
// swept waited for a commit (two flushes) of its own: 22,000 of them took 245 s
// on a store with three years of history, with the gateway stopped for
// `amtsbote gc`.
func TestRetentionSharesCommits(t *testing.T) {
	dir := t.TempDir()
	const answered, blobs = 400, 200
	fillHistory(t, dir, "office-a", answered, nil)
	e := start(t, dir)
	for i := range blobs { // bytes no record needs, for the sweep
		if _, err := e.db.Blobs().Put([]byte(fmt.Sprintf("unreferenced %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	before := e.db.CommitStats()
	rep, err := e.b.GC(context.Background(), time.Now().Add(91*24*time.Hour), Retention{PackageBytes: 90 * 24 * time.Hour, CompactMinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BytesRemoved != answered || rep.BlobsDeleted != blobs {
		t.Fatalf("GC = %+v, want the bytes of %d cases removed and %d blobs swept", rep, answered, blobs)
	}
	after := e.db.CommitStats()
	writes, commits := after.Writes-before.Writes, after.Commits-before.Commits
	t.Logf("%d writes in %d commits", writes, commits)
	if writes < answered+blobs {
		t.Fatalf("%d group-committed writes, want the %d removals and the %d blob deletions among them", writes, answered, blobs)
	}
	if commits*4 > writes {
		t.Fatalf("%d writes took %d commits: they did not share them", writes, commits)
	}
}

// TestConfirmationReadsOnlyChannelsThatConfirmLater: the broker asks the
// channels that confirm later (a folder, a peer) about their handed-over
// packages, every ConfirmEvery and on every change a folder signals. It read
// every handed-over record to find them — a mailbox's and an XTA box's too,
// which no adapter confirms: with 200 such waiting beside 2 in a folder, each
// round read 202 records. The index entry names the channel now.
func TestConfirmationReadsOnlyChannelsThatConfirmLater(t *testing.T) {
	dir := t.TempDir()
	handedOver(t, dir, handed{"office-a", "mailbox", 200}, handed{"office-a", "transfer", 2})

	cfg := testConfig
	cfg.ConfirmEvery = time.Hour // the round at start, then the ones this test runs
	l := &later{scripted: scripted{channel: "transfer"}, confirmed: map[string]bool{}, changes: make(chan struct{}, 1)}
	var st *readCounting
	b := startOver(t, dir, cfg, func(db *store.DB) store.Store { st = &readCounting{storetest.ReadCounting{Store: db}}; return st }, l, &scripted{channel: "mailbox"})
	deadline := time.Now().Add(30 * time.Second)
	for l.asked.Load() < 2 { // the round at start is done
		if time.Now().After(deadline) {
			t.Fatal("the folder was never asked")
		}
		time.Sleep(5 * time.Millisecond)
	}
	st.Reads.Store(0)
	l.asked.Store(0)
	b.checkHandedOver()
	if n, asked := st.Reads.Load(), l.asked.Load(); n != 2 || asked != 2 {
		t.Fatalf("a confirmation round read %d records and asked %d times, want the folder's 2 both times", n, asked)
	}
}

// handed is n submissions of an office handed over to a channel.
type handed struct {
	office, channel string
	n               int
}

// handedOver writes the submissions of plan, in its order (ids growing), into
// the store under dir, before the broker starts on it.
func handedOver(t *testing.T, dir string, plan ...handed) {
	t.Helper()
	db, err := store.Open(dir+"/store", store.Options{BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	i := 0
	for _, h := range plan {
		for range h.n {
			handOverIn(t, db, i, h.office, h.channel)
			i++
		}
	}
}

// handOverIn writes a submission of office handed over to channel, the i-th of
// the test (its id grows with i), into db.
func handOverIn(t *testing.T, db *store.DB, i int, office, channel string) string {
	t.Helper()
	id := fmt.Sprintf("01900000-%04d-7000-8000-000000000000", i)
	s, evs := submission.New(submission.Params{ID: id, DeliveryID: "d" + id, MessageID: "m" + id, Sender: "amt24", SignerID: "amt24",
		LeikaKey: "99000000000000", ServiceName: "Test", Place: "Dresden", AreaName: "Dresden", OfficeID: office, OfficeName: "Amt",
		Targets: []submission.Target{{Channel: channel}}, PackageSHA256: fmt.Sprintf("%064x", i), PackageSize: 10}, time.Now().UTC())
	if _, _, _, err := db.Create(context.Background(), s, evs, ReceiptIntake, []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(id, func(c *submission.Submission) ([]submission.Event, error) {
		return c.HandOver(time.Now().UTC(), c.Generation, submission.Confirmation{Receiver: channel})
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// hungShare is a folder channel whose share hangs for one office: its question
// blocks until released, whatever the context says (a stat on a hung SMB or NFS
// server waits in the kernel).
type hungShare struct {
	scripted
	hungOffice string
	release    chan struct{}
	asked      sync.Map // office -> *atomic.Int64
}

func (h *hungShare) Confirmed(_ context.Context, d adapters.Delivery) (adapters.Confirmation, bool, error) {
	n, _ := h.asked.LoadOrStore(d.OfficeID, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	if d.OfficeID == h.hungOffice {
		<-h.release
	}
	return adapters.Confirmation{}, false, nil
}

func (h *hungShare) Changes() <-chan struct{} { return nil }

func (h *hungShare) count(office string) int64 {
	n, _ := h.asked.LoadOrStore(office, new(atomic.Int64))
	return n.(*atomic.Int64).Load()
}

// TestHungShareHoldsNoOtherOffice: the confirmation rounds asked one package
// after another and waited for each answer. A folder on a share whose server
// hangs does not heed the context (the stat waits in the kernel), so one
// office's hung share held every other office's confirmations for as long as
// it hung — for ever on a hard mount. Now a question that does not return
// within the attempt timeout goes on alone, the office's other packages wait
// for a later round, and no second question goes to the hung share until the
// first returns.
func TestHungShareHoldsNoOtherOffice(t *testing.T) {
	dir := t.TempDir()
	handedOver(t, dir, handed{"office-hung", "transfer", 3}, handed{"office-b", "transfer", 1})

	cfg := testConfig
	cfg.ConfirmEvery = time.Hour // the round at start, then the ones this test runs
	cfg.AttemptTimeout = 50 * time.Millisecond
	h := &hungShare{scripted: scripted{channel: "transfer"}, hungOffice: "office-hung", release: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
	})
	b := startOver(t, dir, cfg, nil, h)
	deadline := time.Now().Add(30 * time.Second)
	for h.count("office-b") < 1 { // the round at start got past the hung share
		if time.Now().After(deadline) {
			t.Fatalf("office-b was never asked: the hung share held the round (office-hung asked %d times)", h.count("office-hung"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := h.count("office-hung"); n != 1 {
		t.Fatalf("the hung share was asked %d times in a round, want once", n)
	}
	b.checkHandedOver() // still hung: nothing more goes to it
	if n, m := h.count("office-hung"), h.count("office-b"); n != 1 || m != 2 {
		t.Fatalf("second round: hung share asked %d times in all, office-b %d; want 1 and 2", n, m)
	}
	close(h.release)
	for h.asking(b) { // the first question has come back
		if time.Now().After(deadline) {
			t.Fatal("the released question never returned")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.checkHandedOver()
	if n := h.count("office-hung"); n != 4 {
		t.Fatalf("after the share came back: asked %d times in all, want 1 + its 3 packages", n)
	}
}

// asking reports whether b still waits for a question to the hung office.
func (h *hungShare) asking(b *Broker) bool {
	_, busy := b.asking.Load(askKey{h.hungOffice, "transfer"})
	return busy
}

// TestHandedOverOnAWithdrawnChannelGoesOn: an office moved from its transfer
// folder to its mailbox (the folder channel taken from its configuration) while
// cases waited handed over in the folder for the import's confirmation. The
// confirmation round asked the folder adapter with an empty address, logged "not
// an absolute folder path" for every such case every round, and the cases waited
// handed over for ever, with no Zustellbestaetigung (an audit, 2026-12-05). Now
// such a case goes on to the office's next channel, as a package still waiting
// for a removed channel does; a case on a channel still configured is asked as
// before, and one forwarded to a peer stays (the peer delivers it).
func TestHandedOverOnAWithdrawnChannelGoesOn(t *testing.T) {
	dir := t.TempDir()
	handedOver(t, dir, handed{"office-a", "transfer", 2}, handed{"office-b", "transfer", 1})
	cfg := testConfig
	cfg.ConfirmEvery = time.Hour
	l := &later{scripted: scripted{channel: "transfer"}, confirmed: map[string]bool{}, changes: make(chan struct{}, 1)}
	box := &scripted{channel: "mailbox"}
	// office-a's folder is gone from the configuration; office-b keeps its own.
	chans := ChannelsFunc(func(office, ch string) (adapters.Target, bool) {
		if office == "office-a" && ch == "transfer" {
			return adapters.Target{}, false
		}
		return testChannels(office, ch)
	})
	// The cases were handed over with the folder first; the mailbox is the office's
	// next channel (intake adds it last to every plan).
	db, err := store.Open(dir+"/store", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := fmt.Sprintf("01900000-%04d-7000-8000-000000000000", i)
		if _, err := db.Update(id, func(c *submission.Submission) ([]submission.Event, error) {
			c.Targets = append(c.Targets, submission.Target{Channel: "mailbox"})
			return []submission.Event{{At: time.Now().UTC(), Type: "note"}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, dir, cfg, chans, nil, l, box)
	e.b.checkHandedOver()
	deadline := time.Now().Add(30 * time.Second)
	for i := range 2 {
		id := fmt.Sprintf("01900000-%04d-7000-8000-000000000000", i)
		for {
			s, err := e.b.Submission(id)
			if err != nil {
				t.Fatal(err)
			}
			if s.State == submission.StateDelivered {
				if ref, _ := s.CurrentTarget(); ref.Channel != "mailbox" {
					t.Fatalf("%s delivered on %s, want the mailbox", id, ref.Channel)
				}
				break
			}
			if time.Now().After(deadline) {
				evs, _ := e.b.Log(id)
				t.Fatalf("%s is %s, want delivered by the office's next channel: %+v", id, s.State, evs)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if s, _ := e.b.Submission("01900000-0002-7000-8000-000000000000"); s.State != submission.StateHandedOver {
		t.Fatalf("office-b's case on its configured folder is %s, want still handed over", s.State)
	}
}
