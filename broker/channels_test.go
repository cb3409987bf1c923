package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// rotating is a channel configuration the test changes while packages wait.
type rotating struct {
	mu       sync.Mutex
	endpoint string
	secret   string
}

func (r *rotating) Target(office, ch string) (adapters.Target, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return adapters.Target{Channel: ch, Endpoint: r.endpoint, Secret: r.secret}, true
}

func (r *rotating) set(endpoint, secret string) {
	r.mu.Lock()
	r.endpoint, r.secret = endpoint, secret
	r.mu.Unlock()
}

// TestRotationReachesTheAttempt: endpoint and secret are read together at each
// attempt, so packages queued before a rotation go to the new endpoint with the new
// secret — never to the old endpoint signed with the new secret.
func TestRotationReachesTheAttempt(t *testing.T) {
	cfg := &rotating{endpoint: "https://old.example/hook", secret: "whsec_old"}
	rx := &scripted{channel: "primary", answers: []error{errors.New("503"), errors.New("503")}}
	dir := t.TempDir()
	e := startWithChannels(t, dir, testConfig, cfg, rx)
	a, err := e.b.Receive(context.Background(), intake("m1", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, a.Submission.ID, submission.StateRetrying)
	cfg.set("https://new.example/hook", "whsec_new")
	waitState(t, e.b, a.Submission.ID, submission.StateDelivered)
	ds := rx.deliveries()
	first, last := ds[0].Target, ds[len(ds)-1].Target
	if first.Endpoint != "https://old.example/hook" || first.Secret != "whsec_old" {
		t.Fatalf("first attempt %v secret %q", first, first.Secret)
	}
	if last.Endpoint != "https://new.example/hook" || last.Secret != "whsec_new" {
		t.Fatalf("attempt after rotation went to %v with secret %q", last, last.Secret)
	}
	for _, d := range ds {
		if (d.Target.Endpoint == "https://old.example/hook") != (d.Target.Secret == "whsec_old") {
			t.Fatalf("endpoint and secret of different generations in one attempt: %v %q", d.Target, d.Target.Secret)
		}
	}
}

// TestChannelNoLongerConfiguredFallsBack: a channel removed from the configuration
// while packages wait is a permanent failure of that channel, not a stuck package.
func TestChannelNoLongerConfiguredFallsBack(t *testing.T) {
	only := ChannelsFunc(func(office, ch string) (adapters.Target, bool) {
		return adapters.Target{Channel: ch}, ch == "fallback"
	})
	primary, fallback := &scripted{channel: "primary"}, &scripted{channel: "fallback"}
	e := startWithChannels(t, t.TempDir(), testConfig, only, primary, fallback)
	a, err := e.b.Receive(context.Background(), intake("m1", "primary", "fallback"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, a.Submission.ID, submission.StateDelivered)
	if got := fmt.Sprint(eventTypes(t, e.b, a.Submission.ID)); got != "[received routed queued:primary channel_failed:primary fallback:fallback delivered:fallback]" {
		t.Fatalf("log %s", got)
	}
	if len(primary.deliveries()) != 0 {
		t.Fatal("an unconfigured channel was called")
	}
}

// later hands packages over and confirms them when the test says so.
type later struct {
	scripted
	mu        sync.Mutex
	confirmed map[string]bool
	changes   chan struct{}
	asked     atomic.Int64
}

func (l *later) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	c, err := l.scripted.Deliver(ctx, d)
	c.Pending = true
	return c, err
}

func (l *later) Confirmed(_ context.Context, d adapters.Delivery) (adapters.Confirmation, bool, error) {
	l.asked.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.confirmed[d.ID] {
		return adapters.Confirmation{}, false, nil
	}
	return adapters.Confirmation{Receiver: "folder import", At: time.Now(), Reference: "case-1"}, true, nil
}

func (l *later) Changes() <-chan struct{} { return l.changes }

func (l *later) confirm(id string) {
	l.mu.Lock()
	l.confirmed[id] = true
	l.mu.Unlock()
	l.changes <- struct{}{}
}

// TestLateConfirmation: a channel that hands over (a folder) leaves the package
// handed_over until the office confirms; the broker then records the delivery with
// its receipt — also after a restart in between.
func TestLateConfirmation(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig
	cfg.ConfirmEvery = time.Hour // only the change signal may trigger the question
	l := &later{scripted: scripted{channel: "transfer"}, confirmed: map[string]bool{}, changes: make(chan struct{}, 1)}
	e := startWith(t, dir, cfg, l)
	a, err := e.b.Receive(context.Background(), intake("m1", "transfer"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, a.Submission.ID, submission.StateHandedOver)
	if _, err := e.db.Receipt(a.Submission.ID, ReceiptDelivery); err == nil {
		t.Fatal("a hand-over must not issue the Zustellbestaetigung")
	}
	e.stop()

	l2 := &later{scripted: scripted{channel: "transfer"}, confirmed: map[string]bool{}, changes: make(chan struct{}, 1)}
	e2 := startWith(t, dir, cfg, l2)
	l2.confirm(a.Submission.DeliveryID)
	s := waitState(t, e2.b, a.Submission.ID, submission.StateDelivered)
	if s.Receiver != "folder import" {
		t.Fatalf("receiver %q", s.Receiver)
	}
	if r, err := e2.db.Receipt(a.Submission.ID, ReceiptDelivery); err != nil || len(r) == 0 {
		t.Fatalf("no delivery receipt: %v", err)
	}
	if got := fmt.Sprint(eventTypes(t, e2.b, a.Submission.ID)); got != "[received routed queued:transfer handed_over:transfer delivered:transfer]" {
		t.Fatalf("log %s", got)
	}
	if len(l2.deliveries()) != 0 {
		t.Fatal("a handed-over package was delivered again after the restart")
	}
}

// The office list's text search finds a case the way people type the place or the
// service (as the directory's search does: "goerlitz", "strassen"), and finds a place
// a portal sent decomposed (NFD). Lower-casing alone found none of these. What it
// found before it still finds: folding is not substring-faithful ("Quelle" folds to
// "qulle"), so the text as typed still counts.
func TestDeskListTextFolds(t *testing.T) {
	e := start(t, t.TempDir())
	ctx := context.Background()
	in := intake("m-place")
	in.ServiceName = "Sondernutzung \u00f6ffentlicher Stra\u00dfen (Quelle)"
	in.Place, in.AreaName = "02826 Go\u0308rlitz", "G\u00f6rlitz, Stadt"
	if _, err := e.b.Receive(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Receive(ctx, intake("m-other")); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"goerlitz", "Gorlitz", "strassen", "oeffentlicher", "02826 g\u00f6rlitz", "02826 go\u0308rlitz", "elle", "Stra\u00dfen"} {
		page, err := e.b.List(ctx, "office-a", ListQuery{Text: q})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 1 || page.Items[0].MessageID != "m-place" {
			var got []string
			for _, s := range page.Items {
				got = append(got, s.MessageID)
			}
			t.Errorf("search %+q found %v, want [m-place]", q, got)
		}
	}
}

// TestDeskListFullLastPageHasNoNext: a page is followed by a next link only
// when more entries follow, also when it is full and ends the listing (with a
// state filter too), as api/openapi.yaml (OfficeList.next) tells office
// clients; a client that paged on count = limit asked for an empty page.
func TestDeskListFullLastPageHasNoNext(t *testing.T) {
	e := start(t, t.TempDir())
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		if _, err := e.b.Receive(ctx, intake(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []ListQuery{{Limit: 4}, {Limit: 2, After: ""}} {
		p, err := e.b.List(ctx, "office-a", q)
		if err != nil {
			t.Fatal(err)
		}
		for p.Next != "" {
			if p, err = e.b.List(ctx, "office-a", ListQuery{Limit: q.Limit, After: p.Next}); err != nil {
				t.Fatal(err)
			}
			if len(p.Items) == 0 {
				t.Fatalf("limit %d: a next link led to an empty page", q.Limit)
			}
		}
		if len(p.Items) != q.Limit {
			t.Errorf("limit %d: the last page has %d entries, want a full one", q.Limit, len(p.Items))
		}
	}
	all, err := e.b.List(ctx, "office-a", ListQuery{})
	if err != nil || len(all.Items) != 4 {
		t.Fatalf("the office's list: %d %v", len(all.Items), err)
	}
	st := all.Items[0].State
	p, err := e.b.List(ctx, "office-a", ListQuery{Limit: 4, States: []submission.State{st}})
	if err != nil || len(p.Items) != 4 || p.Next != "" {
		t.Errorf("state %s, limit 4: %d entries, next %q, %v; want 4 and no next", st, len(p.Items), p.Next, err)
	}
}

// TestDeskListsFiltersAndPages: the office side lists only its own submissions,
// filters by state and text, and pages.
func TestDeskListsFiltersAndPages(t *testing.T) {
	e := start(t, t.TempDir())
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		in := intake(fmt.Sprintf("m%d", i))
		if i == 4 {
			in.OfficeID = "office-b"
		}
		if i == 1 {
			in.ServiceName = "Gewerbeanmeldung"
		}
		if _, err := e.b.Receive(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	p1, err := e.b.List(ctx, "office-a", ListQuery{Limit: 3})
	if err != nil || len(p1.Items) != 3 || p1.Next == "" {
		t.Fatalf("page 1: %d next %q %v", len(p1.Items), p1.Next, err)
	}
	p2, _ := e.b.List(ctx, "office-a", ListQuery{Limit: 3, After: p1.Next})
	if len(p2.Items) != 1 || p2.Next != "" {
		t.Fatalf("page 2: %d next %q", len(p2.Items), p2.Next)
	}
	found, _ := e.b.List(ctx, "office-a", ListQuery{Text: "gewerbe"})
	if len(found.Items) != 1 || found.Items[0].MessageID != "m1" {
		t.Fatalf("search: %v", found.Items)
	}
	// Pick one up; the state filter then finds it alone.
	if _, rc, err := e.b.OpenPackage(ctx, "office-a", found.Items[0].ID, Pickup{Channel: "api", Receiver: "test"}); err != nil {
		t.Fatal(err)
	} else {
		rc.Close()
	}
	delivered, _ := e.b.List(ctx, "office-a", ListQuery{States: []submission.State{submission.StateDelivered}})
	if len(delivered.Items) != 1 {
		t.Fatalf("state filter: %d", len(delivered.Items))
	}
	other, _ := e.b.List(ctx, "office-b", ListQuery{})
	if len(other.Items) != 1 || other.Items[0].OfficeID != "office-b" {
		t.Fatalf("office-b sees %v", other.Items)
	}
	if _, _, err := e.b.OpenPackage(ctx, "office-b", found.Items[0].ID, Pickup{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another office opened the package: %v", err)
	}
	if _, _, err := e.b.OpenAttachment(ctx, "office-b", found.Items[0].ID, "a1", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another office opened the attachment: %v", err)
	}
}

// TestPortalSeesNoOperatorNotes: the receiver's own error text stays with operators.
func TestPortalSeesNoOperatorNotes(t *testing.T) {
	leaky := errors.New("HTTP 500: <pre>java.lang.NullPointerException at de.stadt.Fachverfahren</pre>")
	e := start(t, t.TempDir(), &scripted{channel: "primary", answers: []error{leaky}})
	a, err := e.b.Receive(context.Background(), intake("m1", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.b, a.Submission.ID, submission.StateDelivered)
	_, portal, err := e.b.PortalStatus("amt24", a.Submission.ID)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := e.b.Log(a.Submission.ID)
	for i, ev := range portal {
		if ev.Note != "" || (ev.Type == submission.EventAttemptFailed && (all[i].Note == "" || strings.Contains(ev.Detail, "NullPointer"))) {
			t.Fatalf("portal event %+v (operator sees %+v)", ev, all[i])
		}
	}
	if _, _, err := e.b.PortalStatus("other-portal", a.Submission.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another portal reads the log: %v", err)
	}
}

// TestReplyStoredOnceAndSeenByThePortal: an office's reply is stored durably, a
// repeat with the same message id is stored once, and the portal can open it.
func TestReplyStoredOnceAndSeenByThePortal(t *testing.T) {
	e := start(t, t.TempDir())
	ctx := context.Background()
	a, err := e.b.Receive(ctx, intake("m1"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	in := ReplyIn{Kind: "Bescheid", MessageID: "urn:de:xta:messageid:1", ContentType: "application/xml", Content: []byte("<Bescheid/>"), Actor: "Fachverfahren", Channel: "xta"}
	if _, err := e.b.Reply(ctx, "office-a", id, in); !errors.Is(err, ErrConflict) {
		t.Fatalf("a reply before the office has the package: %v", err)
	}
	if _, err := e.b.Confirm(ctx, "office-a", id, Pickup{Channel: "xta", Receiver: "Fachverfahren"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Reply(ctx, "office-b", id, in); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another office replied: %v", err)
	}
	r1, err := e.b.Reply(ctx, "office-a", id, in)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.b.Reply(ctx, "office-a", id, in)
	if err != nil || r2.ID != r1.ID {
		t.Fatalf("repeat: %v %v %v", r1, r2, err)
	}
	s, _ := e.b.Submission(id)
	if len(s.Replies) != 1 {
		t.Fatalf("replies %v", s.Replies)
	}
	_, rc, err := e.b.PortalReply(ctx, "amt24", id, r1.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "<Bescheid/>" {
		t.Fatalf("reply bytes %q", b)
	}
	if _, _, err := e.b.PortalReply(ctx, "other", id, r1.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another portal opened the reply: %v", err)
	}
}

// slowOutbox is a store whose outbox listing blocks until the test releases it: a
// stand-in for a backlog so large that reading it takes long.
type slowOutbox struct {
	store.Store
	release chan struct{}
	asked   chan struct{}
}

func (s *slowOutbox) Outbox() ([]string, error) {
	select {
	case s.asked <- struct{}{}:
	default:
	}
	<-s.release
	return s.Store.Outbox()
}

// TestStartDoesNotWaitForTheBacklog: Start returns, and new packages are received and
// delivered, while the outbox of the previous run is still being read; afterwards
// every waiting package is delivered exactly once.
func TestStartDoesNotWaitForTheBacklog(t *testing.T) {
	dir := t.TempDir()
	blocked := &scripted{channel: "primary", block: make(chan struct{})}
	e := start(t, dir, blocked)
	var waiting []string
	for i := 0; i < 20; i++ {
		a, err := e.b.Receive(context.Background(), intake(fmt.Sprintf("old-%d", i), "primary"))
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, a.Submission.ID)
	}
	e.stop()

	var slow *slowOutbox
	rx := &scripted{channel: "primary"}
	b := startOver(t, dir, testConfig, func(db *store.DB) store.Store { // Start must not wait for Outbox
		slow = &slowOutbox{Store: db, release: make(chan struct{}), asked: make(chan struct{}, 1)}
		return slow
	}, rx)
	<-slow.asked
	a, err := b.Receive(context.Background(), intake("new", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, b, a.Submission.ID, submission.StateDelivered)
	close(slow.release)
	for _, id := range waiting {
		waitState(t, b, id, submission.StateDelivered)
	}
	count := map[string]int{}
	for _, d := range rx.deliveries() {
		count[d.SubmissionID]++
	}
	for _, id := range append(waiting, a.Submission.ID) {
		if count[id] != 1 {
			t.Fatalf("%s delivered %d times", id, count[id])
		}
	}
}

// TestDeskListIdentifiersAreNotFolded: an id fragment is compared as typed. Folded,
// "ae" is "a", and "m-0ae1" found the case "m-0a1" too.
func TestDeskListIdentifiersAreNotFolded(t *testing.T) {
	e := start(t, t.TempDir())
	ctx := context.Background()
	for _, id := range []string{"m-0ae1", "m-0a1"} {
		if _, err := e.b.Receive(ctx, intake(id)); err != nil {
			t.Fatal(err)
		}
	}
	page, err := e.b.List(ctx, "office-a", ListQuery{Text: "m-0ae1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].MessageID != "m-0ae1" {
		var got []string
		for _, s := range page.Items {
			got = append(got, s.MessageID)
		}
		t.Fatalf("search for one message id found %v", got)
	}
}
