package federation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestChangesValidatesAndRoundTrips: the Aenderungsmeldung a receiving gateway
// signs is valid by the XSD and reads back at the forwarding gateway as sent;
// one naming no package or more than MaxChanges is not made, nor read.
func TestChangesValidatesAndRoundTrips(t *testing.T) {
	w := newWorld(t)
	c := &Changes{From: w.a.Name, To: w.b.Name, At: time.Now().UTC(), Refs: []Ref{{"amt24", "m-1"}, {"amt24", "m-2"}}}
	doc, err := c.Sign(w.a.Signer)
	if err != nil {
		t.Fatal(err)
	}
	xmllint(t, map[string][]byte{"aenderungsmeldung": doc})
	v, peer, err := w.trustB.Verify(doc, "")
	if err != nil || peer.ID != w.a.Name {
		t.Fatalf("verify: %v %s", err, peer.ID)
	}
	back, err := ParseChanges(v.Root)
	if err != nil {
		t.Fatal(err)
	}
	if back.From != c.From || back.To != c.To || !back.At.Equal(c.At) || fmt.Sprint(back.Refs) != fmt.Sprint(c.Refs) {
		t.Errorf("read back %+v, sent %+v", back, c)
	}
	if _, err := ParseQuery(v.Root); !errors.Is(err, ErrMalformed) {
		t.Errorf("an Aenderungsmeldung read as a status question: %v", err)
	}

	for _, n := range []int{0, MaxChanges + 1} {
		c := &Changes{From: w.a.Name, To: w.b.Name, At: time.Now().UTC(), Refs: refsN(n)}
		if _, err := c.Sign(w.a.Signer); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d packages signed: %v", n, err)
		}
		// As a peer of another build might sign it: read nowhere.
		root := statusDoc("Aenderungsmeldung", c.From, c.To, c.At)
		for _, r := range c.Refs {
			addVorgang(root, r)
		}
		if _, err := ParseChanges(root); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d packages read: %v", n, err)
		}
	}
}

func refsN(n int) []Ref {
	refs := make([]Ref, n)
	for i := range refs {
		refs[i] = Ref{Sender: "amt24", MessageID: fmt.Sprintf("m-%d", i)}
	}
	return refs
}

// TestNudgeNamesChangesOnlyWhenSigned: an empty nudge kicks every peer as
// before; a signed Aenderungsmeldung hands its packages to Changed with the peer
// that signed it, and nothing else; a body that is no such document from a
// trusted peer (junk, another peer's, one addressed elsewhere, too large) is
// refused as any peer document is, and kicks nothing.
func TestNudgeNamesChangesOnlyWhenSigned(t *testing.T) {
	w := newWorld(t)
	var nudged int
	var changed []string
	h := &Receiver{Trust: w.trustB, Signer: w.b.Signer, Nudged: func() { nudged++ },
		Changed: func(_ context.Context, peer string, refs []Ref) { changed = append(changed, fmt.Sprint(peer, refs)) }}
	post := func(ctype string, body []byte) (int, string) { return postTo(h, PathNudge, ctype, body) }

	// The nudge of every build so far: empty, whatever it says its type is.
	if code, _ := post("", nil); code != http.StatusNoContent || nudged != 1 || len(changed) != 0 {
		t.Fatalf("empty nudge: %d, nudged %d, changed %v", code, nudged, changed)
	}
	if code, _ := post("application/x-www-form-urlencoded", nil); code != http.StatusNoContent || nudged != 2 {
		t.Fatalf("empty nudge as curl -d '' sends it: %d, nudged %d", code, nudged)
	}

	refs := []Ref{{"amt24", "m-1"}, {"amt24", "m-2"}}
	doc, err := (&Changes{From: w.a.Name, To: w.b.Name, At: time.Now().UTC(), Refs: refs}).Sign(w.a.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if code, typ := post(ContentType, doc); code != http.StatusNoContent || nudged != 2 || fmt.Sprint(changed) != fmt.Sprint([]string{fmt.Sprint(w.a.Name, refs)}) {
		t.Fatalf("signed Aenderungsmeldung: %d %s, nudged %d, changed %v", code, typ, nudged, changed)
	}

	untrusted, err := (&Changes{From: w.pki.Untrusted.Name, To: w.b.Name, At: time.Now().UTC(), Refs: refs}).Sign(w.pki.Untrusted.Signer)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := (&Changes{From: w.a.Name, To: "amtsbote-xx", At: time.Now().UTC(), Refs: refs}).Sign(w.a.Signer)
	if err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]struct {
		ctype string
		body  []byte
		code  int
	}{
		"junk":                   {ContentType, []byte("<x/>"), 0},
		"an untrusted gateway's": {ContentType, untrusted, http.StatusForbidden},
		"addressed elsewhere":    {ContentType, elsewhere, http.StatusMisdirectedRequest},
		"not XML":                {"text/plain", []byte("m-1"), http.StatusUnsupportedMediaType},
		"too large":              {ContentType, bytes.Repeat([]byte(" "), MaxChangesBytes+1), http.StatusRequestEntityTooLarge},
	} {
		code, typ := post(c.ctype, c.body)
		if code < 400 || code >= 500 || c.code != 0 && code != c.code || typ == "" {
			t.Errorf("%s: %d %q, want a problem (%d)", what, code, typ, c.code)
		}
	}
	if nudged != 2 || len(changed) != 1 {
		t.Errorf("refused nudges were taken: nudged %d, changed %v", nudged, changed)
	}
}

// TestChangedBringsOnlyThatPeersDecidedPackagesForward: the packages an
// Aenderungsmeldung names are due at once only if they are decided packages
// forwarded to the peer that signed it; others keep their turn. (One the
// tracker does not follow is looked up: gateway.TestPeerClusterNodeTakesUpAnotherNodesPackage.)
func TestChangedBringsOnlyThatPeersDecidedPackagesForward(t *testing.T) {
	tr := &Tracker{Peers: []config.Peer{{ID: "by"}, {ID: "nw"}}}
	later := time.Now().Add(7 * time.Hour)
	tr.late = map[string]*lateEntry{
		"s-by": {peer: "by", ref: Ref{"amt24", "m-by"}, next: later},
		"s-nw": {peer: "nw", ref: Ref{"amt24", "m-nw"}, next: later},
	}
	tr.lateRef = map[Ref]string{{"amt24", "m-by"}: "s-by", {"amt24", "m-nw"}: "s-nw"}

	tr.Changed(context.Background(), "by", []Ref{{"amt24", "m-by"}, {"amt24", "m-nw"}})
	if got := tr.openOf("by", false); fmt.Sprint(got) != "[s-by]" {
		t.Errorf("by's question names %v, want its decided package s-by", got)
	}
	if got := tr.openOf("nw", false); len(got) != 0 {
		t.Errorf("nw's question names %v: a package forwarded to nw was brought forward by by", got)
	}
	select {
	case <-tr.kickOf("by"):
	default:
		t.Error("by was not asked early")
	}
	tr.done("s-by")
	if len(tr.lateRef) != 1 {
		t.Errorf("done left the Ref of s-by: %v", tr.lateRef)
	}
}

// TestNudgeGivesTheBodyBackBeforeTheLookups: the Aenderungsmeldung's room in
// the body budget was held while Changed ran, which looks the packages up in
// the store (in a cluster without quorum up to its timeout a read): a
// forwarding meanwhile found no room and was refused 503. Here the budget holds
// one document, and a second one is posted while the first is in Changed: it
// is read (its room given back), and then waits for the peer's one slot the
// first holds (questions.go), 429 after QuestionWait, not 503 for room.
func TestNudgeGivesTheBodyBackBeforeTheLookups(t *testing.T) {
	w := newWorld(t)
	doc, err := (&Changes{From: w.a.Name, To: w.b.Name, At: time.Now().UTC(), Refs: refsN(3)}).Sign(w.a.Signer)
	if err != nil {
		t.Fatal(err)
	}
	post := func(h *Receiver) int {
		code, _ := postTo(h, PathNudge, ContentType, doc)
		return code
	}
	inner, calls := 0, 0
	h := &Receiver{Trust: w.trustB, Signer: w.b.Signer, Bodies: httpbody.NewBudget(int64(len(doc))*3/2, 0), QuestionWait: time.Millisecond}
	h.Changed = func(_ context.Context, peer string, refs []Ref) {
		if calls++; calls == 1 {
			inner = post(h) // while the first is being looked up
		}
	}
	if code := post(h); code != http.StatusNoContent {
		t.Fatalf("first Aenderungsmeldung: %d", code)
	}
	if inner != http.StatusTooManyRequests {
		t.Errorf("an Aenderungsmeldung while another was looked up: %d, want 429 (its room given back, the peer's slot taken)", inner)
	}
}

// TestChangedLooksNothingUpOnceTheAskerHasGone: a package an Aenderungsmeldung
// names that the tracker does not follow is read from the store, and in a
// cluster without quorum each read waits up to the store's timeout: the nudge's
// handler went on with up to 100 of them long after the peer had given up (and
// a shutdown waited for it). Once the request's context has ended nothing is
// read; while it lasts, the package forwarded to the signer is followed.
func TestChangedLooksNothingUpOnceTheAskerHasGone(t *testing.T) {
	db := storetest.OpenBolt(t)
	id := "01900000-0001-7000-8000-000000000000"
	s, evs := submission.New(submission.Params{ID: id, DeliveryID: "d" + id, MessageID: "m-1", Sender: "amt24", SignerID: "amt24",
		LeikaKey: "99000000000000", ServiceName: "Test", Place: "München", AreaName: "München", OfficeID: "peer-09", OfficeName: "peer-09",
		Targets: []submission.Target{{Channel: "peer"}}, PackageSHA256: fmt.Sprintf("%064x", 1), PackageSize: 10}, time.Now().UTC())
	if _, _, _, err := db.Create(context.Background(), s, evs, broker.ReceiptIntake, []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(id, func(c *submission.Submission) ([]submission.Event, error) {
		return c.Forwarded(time.Now().UTC(), submission.Forward{Peer: "by", PeerSubmissionID: "by-1"})
	}); err != nil {
		t.Fatal(err)
	}
	tr := &Tracker{Broker: broker.New(broker.Config{}, db, nil, nil, nil, nil, nil, nil), Peers: []config.Peer{{ID: "by"}, {ID: "nw"}}}
	ref := Ref{"amt24", "m-1"}

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	tr.Changed(gone, "by", []Ref{ref})
	if n := tr.Open(); n != 0 {
		t.Fatalf("after the peer had gone, %d package was looked up and followed", n)
	}
	tr.Changed(context.Background(), "nw", []Ref{ref, ref})
	if n := tr.Open(); n != 0 {
		t.Fatalf("a package forwarded to by was followed on nw's word")
	}
	tr.Changed(context.Background(), "by", []Ref{ref, ref})
	if got := tr.openOf("by", false); fmt.Sprint(got) != "["+id+"]" {
		t.Errorf("by's question names %v, want the package it named", got)
	}
}

// TestChangedFindsTheNewerOfTwoPackagesUnderOneRef: a decided package whose
// record is gone (erased) is dropped at its next question; a newer package
// under the same sender and NachrichtID had taken its place in the index by
// Ref, and dropping the old one took the new one's entry with it, so the
// peer's Aenderungsmeldung naming the new one brought nothing forward.
func TestChangedFindsTheNewerOfTwoPackagesUnderOneRef(t *testing.T) {
	tr := &Tracker{Broker: broker.New(broker.Config{}, storetest.OpenBolt(t), nil, nil, nil, nil, nil, nil), Peers: []config.Peer{{ID: "by"}}}
	later := time.Now().Add(7 * time.Hour)
	ref := Ref{"amt24", "m-1"}
	tr.late = map[string]*lateEntry{
		"s-old": {peer: "by", ref: ref, next: later},
		"s-new": {peer: "by", ref: ref, next: later},
	}
	tr.lateRef = map[Ref]string{ref: "s-new"}
	tr.done("s-old")
	tr.Changed(context.Background(), "by", []Ref{ref})
	if got := tr.openOf("by", false); fmt.Sprint(got) != "[s-new]" {
		t.Errorf("by's question names %v, want s-new, which it named", got)
	}
}

// TestReplyFetchRetriesWaitLongerEachTime: a reply whose fetch failed is not
// due until its wait has passed, 30 s after the first failure, doubling, at
// most half an hour (the failures alert's window is an hour); another reply of the package, or one after a stored one, is.
func TestReplyFetchRetriesWaitLongerEachTime(t *testing.T) {
	tr := &Tracker{}
	var waits []time.Duration
	for range 9 {
		waits = append(waits, tr.fetchFailed("s-1", "r-1"))
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if tr.fetchDue("s-1", "r-1") {
		t.Error("the failed reply is due before its wait has passed")
	}
	if !tr.fetchDue("s-1", "r-2") || !tr.fetchDue("s-2", "r-1") {
		t.Error("another reply, or another package's, waits for this one's failures")
	}
	tr.retries["s-1"]["r-1"].next = time.Now().Add(-time.Second)
	if !tr.fetchDue("s-1", "r-1") {
		t.Error("the failed reply is not due once its wait has passed")
	}
	if w := tr.fetchFailed("s-1", "r-2"); w != FetchRetryFirst {
		t.Errorf("a failure of the next reply waits %v, want the first wait", w)
	}
	if tr.fetchDue("s-1", "r-1") != true || tr.fetchDue("s-1", "r-2") {
		t.Error("a failure of the next reply changed the wait of the one before, or did not wait itself")
	}
	tr.fetchDone("s-1", "r-1")
	if tr.fetchDue("s-1", "r-2") {
		t.Error("the one reply stored forgot the failures of another")
	}
	tr.fetchDone("s-1", "r-2")
	tr.fetchFailed("s-2", "r-1")
	tr.done("s-2")
	if len(tr.retries) != 0 {
		t.Errorf("failures kept after a stored reply and a finished package: %v", tr.retries)
	}
}

// failingGets is a store whose reads of records fail while fail is set, as a
// cluster's store does without quorum.
type failingGets struct {
	store.Store
	fail atomic.Bool
}

func (f *failingGets) Get(id string) (*submission.Submission, error) {
	if f.fail.Load() {
		return nil, fmt.Errorf("jsstore: read %s: %w", id, store.ErrUnavailable)
	}
	return f.Store.Get(id)
}

// TestTrackerKeepsAPackageItCouldNotReadNow: a package whose record the store
// could not read at a question (a cluster without quorum for a moment) was
// dropped from the tracker, and nobody asked the peer about it again until a
// restart. It is asked about at the next question; one whose record is gone
// is dropped.
func TestTrackerKeepsAPackageItCouldNotReadNow(t *testing.T) {
	st := &failingGets{Store: storetest.OpenBolt(t)}
	tr := &Tracker{Broker: broker.New(broker.Config{}, st, nil, nil, nil, nil, nil, nil), Peers: []config.Peer{{ID: "by"}}}
	tr.open = map[string]string{"s-1": "by"}
	st.fail.Store(true)
	tr.poll(context.Background(), tr.Peers[0], []string{"s-1"})
	if got := tr.openOf("by", false); fmt.Sprint(got) != "[s-1]" {
		t.Fatalf("after a read the store could not answer, by's question names %v, want s-1 still", got)
	}
	st.fail.Store(false)
	tr.poll(context.Background(), tr.Peers[0], []string{"s-1"}) // not in the store at all
	if got := tr.openOf("by", false); len(got) != 0 {
		t.Fatalf("a package whose record is gone is still followed: %v", got)
	}
}

// TestHeldPrefixCountsFromThePeersFirstReply: the question asks for the
// replies after the first n the case holds; a reply fetched past a failed one
// keeps its place, so n stops before the gap. Replies without a place (a
// build that fetched them in order) are the peer's first ones.
func TestHeldPrefixCountsFromThePeersFirstReply(t *testing.T) {
	reply := func(seqs ...int) *submission.Submission {
		s := &submission.Submission{}
		for _, n := range seqs {
			s.Replies = append(s.Replies, submission.Reply{PeerSeq: n})
		}
		return s
	}
	for _, c := range []struct {
		seqs []int
		want int
	}{
		{nil, 0},
		{[]int{0, 0}, 2},       // stored by an older build
		{[]int{2}, 0},          // the first failed, the second stored
		{[]int{1, 3}, 1},       // the second failed
		{[]int{0, 0, 4}, 2},    // an older build's two, then a gap
		{[]int{2, 1}, 2},       // the failed one came later
		{[]int{0, 0, 3, 5}, 3}, // and a gap further on
	} {
		if got := heldPrefix(reply(c.seqs...)); got != c.want {
			t.Errorf("places %v: asks after %d, want %d", c.seqs, got, c.want)
		}
	}
}

// TestTurnsToAskTheLeaseDecides: with a lease (gateways sharing a store) a
// question on the timer is asked only in an interval whose lease this gateway
// got, or when the store cannot say (a question too many costs less than a
// portal waiting); intervals under a second are not leased. The next try
// falls in the first half of the next interval, a random moment.
func TestTurnsToAskTheLeaseDecides(t *testing.T) {
	var names []string
	var slots []time.Time
	answer, fail := false, error(nil)
	tr := &Tracker{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Lease: func(_ context.Context, name string, slot time.Time, ttl time.Duration) (bool, func(), error) {
		names, slots = append(names, name), append(slots, slot)
		if ttl != 20*time.Second {
			t.Errorf("lease for %s, want two intervals", ttl)
		}
		return answer, func() {}, fail
	}}
	by := config.Peer{ID: "by", PollInterval: 10 * time.Second}
	if mine(tr.takeTurn(context.Background(), by)) {
		t.Error("asked in an interval another gateway holds")
	}
	answer = true
	if !mine(tr.takeTurn(context.Background(), by)) {
		t.Error("did not ask in an interval it holds")
	}
	answer, fail = false, errors.New("no quorum")
	if !mine(tr.takeTurn(context.Background(), by)) {
		t.Error("did not ask when the store could not say whose turn it is")
	}
	if len(names) != 3 || names[0] != "federation-poll.by" || !slots[0].Equal(slots[0].Truncate(10*time.Second)) {
		t.Errorf("leases asked for %v at %v, want federation-poll.by at an interval's start", names, slots)
	}
	fast := config.Peer{ID: "nw", PollInterval: 500 * time.Millisecond}
	if !mine(tr.takeTurn(context.Background(), fast)) || len(names) != 3 {
		t.Error("an interval under a second was leased")
	}
	for range 50 {
		now := time.Now()
		next := now.Add(tr.nextTurn(by))
		if into := next.Sub(next.Truncate(10 * time.Second)); into >= 5*time.Second || !next.Truncate(10*time.Second).After(now) {
			t.Fatalf("next try at %s (%s into its interval) from %s, want in the first half of the next interval", next, into, now)
		}
	}
}

// mine is the first result of takeTurn and turn.
func mine(m bool, _ func()) bool { return m }

// TestCloseDuringALeaseAsksNothing: Close while the tracker waits for the
// store's answer whose turn it is (a cluster's store out of reach: up to its
// timeout) ends the wait with the context's error. That was taken as "the
// store cannot say", and the tracker went on to ask: it read every followed
// package's record first, each read bounded by the store's timeout alone, so
// with the store out of reach a shutdown waited for all of them.
func TestCloseDuringALeaseAsksNothing(t *testing.T) {
	st := &storetest.ReadCounting{Store: storetest.OpenBolt(t)}
	inLease := make(chan struct{})
	tr := &Tracker{Broker: broker.New(broker.Config{}, st, nil, nil, nil, nil, nil, nil),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Lease: func(ctx context.Context, _ string, _ time.Time, _ time.Duration) (bool, func(), error) {
			close(inLease)
			<-ctx.Done() // the store does not answer
			return false, nil, fmt.Errorf("jsstore: lease: %w", ctx.Err())
		}}
	p := config.Peer{ID: "by", PollInterval: time.Second}
	tr.open = map[string]string{"s-1": "by"}
	ctx, cancel := context.WithCancel(context.Background())
	tr.wg.Add(1)
	go tr.follow(ctx, p, make(chan struct{}))
	<-inLease
	cancel()
	tr.wg.Wait()
	if n := st.Reads.Load(); n != 0 {
		t.Errorf("closed while asking the store for its turn, the tracker read %d records to ask the peer", n)
	}
}

// cancelingGets is a store whose first read of a record ends ctx, as Close
// does while the tracker reads the records of a question.
type cancelingGets struct {
	*storetest.ReadCounting
	cancel context.CancelFunc
}

func (c *cancelingGets) Get(id string) (*submission.Submission, error) {
	c.cancel()
	return c.ReadCounting.Get(id)
}

// TestClosedTrackerReadsNoMoreRecordsForAQuestion: a question read the record
// of every package it names before it was sent, each read bounded by the
// store's timeout alone; closed meanwhile with the store out of reach, a
// shutdown waited for all of them (up to 500). It reads none after Close.
func TestClosedTrackerReadsNoMoreRecordsForAQuestion(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &cancelingGets{ReadCounting: &storetest.ReadCounting{Store: storetest.OpenBolt(t)}, cancel: cancel}
	tr := &Tracker{Broker: broker.New(broker.Config{}, st, nil, nil, nil, nil, nil, nil), Peers: []config.Peer{{ID: "by"}}}
	tr.open = map[string]string{"s-1": "by", "s-2": "by", "s-3": "by"}
	tr.poll(ctx, tr.Peers[0], []string{"s-1", "s-2", "s-3"})
	if n := st.Reads.Load(); n != 1 {
		t.Errorf("closed during the first read, the question read %d records, want 1", n)
	}
}

// TestTurnsLostInARowAreBounded: the first gateway to try takes the turn, by
// its own clock; one running half an interval ahead took nearly every turn,
// and a package another gateway followed alone waited for a kick. After
// MaxLostTurns turns lost in a row a gateway asks all the same, and counts
// afresh; one it took counts afresh too.
func TestTurnsLostInARowAreBounded(t *testing.T) {
	held := false
	tr := &Tracker{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Lease: func(context.Context, string, time.Time, time.Duration) (bool, func(), error) {
		return held, func() {}, nil
	}}
	by := config.Peer{ID: "by", PollInterval: 10 * time.Second}
	lost := 0
	var asked []int
	for i := range 3*MaxLostTurns + 3 {
		if i == MaxLostTurns+5 {
			held = true // this gateway's turn once
		}
		if mine(tr.turn(context.Background(), by, &lost)) {
			asked = append(asked, i)
		}
		held = false
	}
	want := []int{MaxLostTurns, MaxLostTurns + 5, 2*MaxLostTurns + 6}
	if fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("asked in the turns %v, want %v", asked, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	lost = MaxLostTurns
	if mine(tr.turn(ctx, by, &lost)) {
		t.Error("a closed tracker asked after its lost turns")
	}
}
