package mailbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
)

// The office of adaptertest.NewDelivery.
const suiteOffice = "sn-14612000-bauamt"

// harness runs the mailbox channel through the conformance suite. Each adapter is a
// fresh Mailbox over an in-memory desk; a receiver is one notice address. The
// receiver's view of an attempt is what the mailbox recorded in its own store (the
// arrival), read back from mailbox.db, not what Deliver returned.
//
//   - ModeAccept: a valid notice address.
//   - ModePermanent: a notice address that is not one (no retry can cure it).
//   - ModeTransient: the mailbox's store fails the write for this address (as a full
//     disk would); the transaction is rolled back, nothing is recorded.
//   - The office confirms (ConfirmingReceiver) the way a person does: log in and open
//     the detail page.
type harness struct {
	desk *memDesk

	mu        sync.Mutex
	n         int
	mailboxes []*harnessMailbox
	failing   map[string]bool
}

type harnessMailbox struct {
	m      *Mailbox
	closed bool
}

func newHarness() *harness { return &harness{desk: newMemDesk(), failing: map[string]bool{}} }

func (h *harness) Features() adaptertest.Features {
	return adaptertest.Features{NoHang: true, ConfirmsLater: true}
}

func (h *harness) NewAdapter(t testing.TB, logger *slog.Logger) adapters.Adapter {
	opts := Options{
		Desk:    h.desk,
		Users:   []User{{Name: "anna", Office: suiteOffice, PasswordHash: fastHash(t, "geheim-anna")}},
		DataDir: t.TempDir(),
		Logger:  logger,
		storeFault: func(endpoint string) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.failing[endpoint] {
				return errors.New("disk full (simulated)")
			}
			return nil
		},
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hm := &harnessMailbox{m: m}
	h.mu.Lock()
	h.mailboxes = append(h.mailboxes, hm)
	h.mu.Unlock()
	t.Cleanup(func() {
		h.mu.Lock()
		hm.closed = true
		h.mu.Unlock()
		if err := m.Close(); err != nil {
			t.Errorf("close mailbox: %v", err)
		}
	})
	return m.Adapter()
}

func (h *harness) NewReceiver(t testing.TB, mode adaptertest.Mode) adaptertest.Receiver {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	ep := fmt.Sprintf("poststelle-%d@bauamt.example", h.n)
	switch mode {
	case adaptertest.ModePermanent:
		ep = fmt.Sprintf("Poststelle %d ohne Adresse", h.n)
	case adaptertest.ModeTransient:
		h.failing[ep] = true
	case adaptertest.ModeHang:
		t.Fatal("the mailbox channel cannot hang (NoHang)")
	}
	return &receiver{h: h, endpoint: ep}
}

// PrepareDelivery makes the suite's submission known to the desk, as the broker
// would have it when it calls Deliver.
func (h *harness) PrepareDelivery(d *adapters.Delivery) {
	pkg, _ := adaptertest.ReadAll(context.Background(), d.Package)
	s := &submission.Submission{
		ID: d.SubmissionID, DeliveryID: d.ID, MessageID: d.MessageID, Sender: d.Sender,
		LeikaKey: d.LeikaKey, ServiceName: d.ServiceName, OfficeID: d.OfficeID, OfficeName: d.OfficeName,
		Targets: []submission.Target{{Channel: channel.Mailbox}}, State: submission.StateHandedOver,
		PackageSHA256: d.PackageSHA256, PackageSize: d.PackageSize, ReceivedAt: d.CreatedAt, Generation: 1,
	}
	h.desk.Add(s, pkg, nil)
}

type receiver struct {
	h        *harness
	endpoint string
}

func (r *receiver) Target() adapters.Target {
	return adapters.Target{Channel: channel.Mailbox, Endpoint: r.endpoint}
}

type seen struct {
	at  time.Time
	got adaptertest.Received
	m   *Mailbox
}

func (r *receiver) seen() []seen {
	r.h.mu.Lock()
	var open []*Mailbox
	for _, hm := range r.h.mailboxes {
		if !hm.closed {
			open = append(open, hm.m)
		}
	}
	r.h.mu.Unlock()
	var out []seen
	for _, m := range open {
		as, err := m.db.arrivals()
		if err != nil {
			continue // closed meanwhile
		}
		for _, a := range as {
			for _, ho := range a.HandOvers {
				if ho.Endpoint == r.endpoint {
					out = append(out, seen{at: ho.At, m: m, got: adaptertest.Received{DeliveryID: ho.DeliveryID, SubmissionID: a.SubmissionID}})
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

func (r *receiver) Received() []adaptertest.Received {
	var out []adaptertest.Received
	for _, s := range r.seen() {
		out = append(out, s.got)
	}
	return out
}

// Confirm: a person of the office logs in and opens the package.
func (r *receiver) Confirm(t testing.TB, deliveryID string) {
	t.Helper()
	for _, s := range r.seen() {
		if s.got.DeliveryID != deliveryID {
			continue
		}
		c := newClient(t, s.m.Handler())
		c.mustLogin("anna", "geheim-anna")
		if rec := c.get("/postfach/s/" + s.got.SubmissionID); rec.Code != http.StatusOK {
			t.Fatalf("open detail page: %d\n%s", rec.Code, rec.Body)
		}
		return
	}
	t.Fatalf("delivery %s never reached the mailbox", deliveryID)
}

func TestMailboxChannelConforms(t *testing.T) {
	adaptertest.Run(t, newHarness())
}

func TestDeliverChecks(t *testing.T) {
	h := newHarness()
	a := h.NewAdapter(t, slog.New(slog.DiscardHandler))
	r := h.NewReceiver(t, adaptertest.ModeAccept)
	d := adaptertest.NewDelivery(r.Target())
	h.PrepareDelivery(&d)

	// An office without a mailbox user: nobody could open it, so the broker must fall
	// back instead of waiting for a confirmation that cannot come.
	other := d
	other.OfficeID = "sn-unbekannt"
	if _, err := a.Deliver(t.Context(), other); !adapters.IsPermanent(err) {
		t.Errorf("office without users: err = %v, want permanent", err)
	}
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Pending || c.Receiver != "Behördenpostfach "+suiteOffice {
		t.Errorf("confirmation %+v, want Pending from Behördenpostfach %s", c, suiteOffice)
	}
	ck := a.(adapters.Checker)
	for ep, ok := range map[string]bool{"": true, "poststelle@amt.example": true, "Poststelle <p@amt.example>": false, "a@b.example, c@d.example": false, "kein-at": false} {
		err := ck.CheckTarget(adapters.Target{Channel: channel.Mailbox, Endpoint: ep})
		if (err == nil) != ok {
			t.Errorf("CheckTarget(%q) = %v, want ok=%v", ep, err, ok)
		}
		var te *adapters.TargetError
		if err != nil && (!errors.As(err, &te) || te.Field != "endpoint") {
			t.Errorf("CheckTarget(%q) = %v, want a TargetError on endpoint", ep, err)
		}
	}
	if _, ok, _ := a.(adapters.Confirmer).Confirmed(t.Context(), d); ok {
		t.Error("confirmed before anyone opened it")
	}
	if !strings.Contains(fmt.Sprint(a.Channel()), channel.Mailbox) {
		t.Errorf("channel %q", a.Channel())
	}
}
