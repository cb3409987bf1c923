package desktest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/textfold"
	"github.com/amtsbote/amtsbote/submission"
)

// MemDesk is the reference in-memory broker.OfficeDesk: the desk's rules (office
// scoping, the pickup, final decisions, the event log, replies) on the
// submission model, without a store. Tests of a face that need no broker (the
// mailbox's page tests) run on it; Run checks it keeps the real desk's rules
// (TestMemDeskConforms), so a face's test cannot pass against a rule the broker
// does not have. It is safe for concurrent use.
type MemDesk struct {
	mu      sync.Mutex
	subs    map[string]*submission.Submission
	events  map[string][]submission.Event
	blobs   map[string][]byte // package by "pkg:"+submission id, attachments by sha256, replies by "reply:"+reply id
	order   []string
	n       int // cases handed over by HandOver, for their ids
	replyID int
}

var _ broker.OfficeDesk = (*MemDesk)(nil)

// NewMemDesk returns an empty MemDesk.
func NewMemDesk() *MemDesk {
	return &MemDesk{subs: map[string]*submission.Submission{}, events: map[string][]submission.Event{}, blobs: map[string][]byte{}}
}

// Add stores s as given (its state too) with its package and attachments
// (by their SHA-256), and its received and handed-over events. A record
// without its package's SHA-256 and size is given those of pkg, so that
// ReadCase can check the bytes as the broker does. An id it holds already is
// left as it is.
func (d *MemDesk) Add(s *submission.Submission, pkg []byte, atts map[string][]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.subs[s.ID]; ok {
		return
	}
	cp := s.Clone()
	if cp.PackageSHA256 == "" {
		cp.PackageSHA256, cp.PackageSize = sha256Hex(pkg), int64(len(pkg))
	}
	d.subs[s.ID] = cp
	d.order = append(d.order, s.ID)
	d.blobs["pkg:"+s.ID] = pkg
	for sum, b := range atts {
		d.blobs[sum] = b
	}
	d.record(s.ID, []submission.Event{{At: s.ReceivedAt, Type: submission.EventReceived}, {At: s.ReceivedAt, Type: submission.EventHandedOver, Channel: "mailbox"}})
}

// HandOver implements Desk.
func (d *MemDesk) HandOver(_ testing.TB, c Case) string {
	d.mu.Lock()
	d.n++
	id := fmt.Sprintf("case-%06d", d.n)
	d.mu.Unlock()
	now := time.Now().UTC()
	place, service := cmp.Or(c.Place, "Dresden"), cmp.Or(c.Service, "Test")
	s := &submission.Submission{ID: id, OfficeID: c.Office, MessageID: "msg-" + id, CaseID: c.CaseID, ServiceName: service, Place: place, AreaName: place,
		State: submission.StateHandedOver, ReceivedAt: now, HandedOverAt: &now,
		PackageSHA256: sha256Hex(c.Package), PackageSize: int64(len(c.Package))}
	if c.Channel != "" {
		s.Targets = []submission.Target{{Channel: c.Channel}}
	}
	atts := map[string][]byte{}
	for _, a := range c.Attachments {
		sum := sha256Hex(a.Content)
		s.Attachments = append(s.Attachments, submission.Attachment{ID: a.ID, FileName: a.FileName, MimeType: a.MimeType, SHA256: sum, Size: int64(len(a.Content))})
		atts[sum] = a.Content
	}
	pkg := c.Package
	if c.Damaged {
		pkg = pkg[:len(pkg)/2]
	}
	d.Add(s, pkg, atts)
	return id
}

// Erase implements Desk: the bytes go as broker.Broker.Erase removes them,
// the record and its log stay.
func (d *MemDesk) Erase(t testing.TB, id string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.setUp(t, "Erase", id)
	if s.BytesRemovedAt != nil {
		return
	}
	if err := d.change(s, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		cur.BytesGone(now)
		return []submission.Event{{At: now, Type: submission.EventBytesRemoved, Actor: "operator", Detail: broker.ErasedDetail}}, nil
	}); err != nil {
		t.Fatalf("Erase: %v", err)
	}
	delete(d.blobs, "pkg:"+id)
	for _, a := range s.Attachments {
		delete(d.blobs, a.SHA256)
	}
	for _, r := range s.Replies {
		delete(d.blobs, "reply:"+r.ID)
	}
}

// setUp is the case id a set-up hook (Erase, Forward) works on, with d.mu
// held; a case the suite never handed over fails the test.
func (d *MemDesk) setUp(t testing.TB, hook, id string) *submission.Submission {
	t.Helper()
	s, ok := d.subs[id]
	if !ok {
		t.Fatalf("%s: no case %s", hook, id)
	}
	return s
}

// Forward implements Desk: a peer gateway received the case
// (submission.Submission.Forwarded), as broker.Broker.RecordForwarded records.
func (d *MemDesk) Forward(t testing.TB, id string) {
	t.Helper()
	f := submission.Forward{Peer: "amtsbote-by", PeerSubmissionID: "p-" + id}
	d.setUpChange(t, "Forward", id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.Forwarded(now, f)
	})
}

// setUpChange applies a set-up hook's transition to case id, with d.mu held;
// a case the suite never handed over, or a transition refused, fails the test.
func (d *MemDesk) setUpChange(t testing.TB, hook, id string, fn func(cur *submission.Submission, now time.Time) ([]submission.Event, error)) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.change(d.setUp(t, hook, id), fn); err != nil {
		t.Fatalf("%s: %v", hook, err)
	}
}

// HandOverAfterTakeover is the hand-over of a transfer attempt that lands on
// case id after a clerk took it over (its case folder renamed into the share
// all the same), as the broker's dispatcher records it
// (submission.Submission.HandOver); a case that was no such takeover fails the
// test. Not part of Desk: the mailbox's page tests set such a case up.
func (d *MemDesk) HandOverAfterTakeover(t testing.TB, id string) {
	t.Helper()
	d.setUpChange(t, "HandOverAfterTakeover", id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.HandOver(now, cur.Generation, submission.Confirmation{Receiver: "transfer folder /srv/uebergabe", Reference: "20261201-" + id})
	})
}

// LateFolderWithdrawal is the gateway's withdrawal of the case folder that
// the late hand-over of case id (HandOverAfterTakeover) put into the share,
// with outcome (adapters.WithdrawRemoved, adapters.WithdrawTaken,
// broker.WithdrawUnreachable, adapters.WithdrawNothing), recorded as the
// broker records it
// (broker.LateFolderEvent). Not part of Desk: the mailbox's page tests set
// such a case up.
func (d *MemDesk) LateFolderWithdrawal(t testing.TB, id, outcome string) {
	t.Helper()
	d.setUpChange(t, "LateFolderWithdrawal", id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		got := broker.ChannelWithdrawal{Channel: channel.Transfer, Outcome: outcome, Reference: "20261201-" + id}
		if outcome == broker.WithdrawUnreachable {
			got.Reference, got.Err = "", errors.New("transfer: the share is not mounted")
		}
		ev, ok := broker.LateFolderEvent(got, cur.BytesRemovedAt != nil, "gateway (after the takeover)", now)
		if !ok {
			return nil, fmt.Errorf("no withdrawal event for outcome %q", outcome)
		}
		return []submission.Event{ev}, nil
	})
}

// StoresBytes implements Desk.
func (d *MemDesk) StoresBytes(_ testing.TB, b []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, have := range d.blobs {
		if bytes.Equal(have, b) {
			return true
		}
	}
	return false
}

// PeerDelivered implements Desk: the peer reported that its office has the
// forwarded case (submission.Submission.PeerUpdate), as
// broker.Broker.RecordPeerStatus records.
func (d *MemDesk) PeerDelivered(t testing.TB, id string) {
	t.Helper()
	now := time.Now().UTC()
	u := submission.PeerStatus{Peer: "amtsbote-by", State: submission.StateDelivered, Receiver: "office", DeliveredAt: &now}
	d.setUpChange(t, "PeerDelivered", id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.PeerUpdate(now, u)
	})
}

// PeerDecided implements Desk: the peer reported its office's decision
// (submission.Submission.PeerUpdate), as broker.Broker.RecordPeerStatus
// records.
func (d *MemDesk) PeerDecided(t testing.TB, id, outcome string) {
	t.Helper()
	u := submission.PeerStatus{Peer: "amtsbote-by", State: submission.State(outcome), Receiver: "office",
		Decision: &submission.Decision{Outcome: outcome, Actor: "office"}}
	d.setUpChange(t, "PeerDecided", id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.PeerUpdate(now, u)
	})
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// forOffice returns the stored record (not a copy) of the office's case.
func (d *MemDesk) forOffice(office, id string) (*submission.Submission, error) {
	s, ok := d.subs[id]
	if !ok || office == "" || s.OfficeID != office {
		return nil, fmt.Errorf("submission %s: %w", id, broker.ErrNotFound)
	}
	return s, nil
}

// admitted is forOffice, then the face's admit (if not nil) on a copy, as the
// broker asks it.
func (d *MemDesk) admitted(office, id string, admit broker.Admit) (*submission.Submission, error) {
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, err
	}
	if admit != nil {
		if err := admit(s.Clone()); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (d *MemDesk) record(id string, evs []submission.Event) {
	for i := range evs {
		evs[i].SubmissionID = id
		evs[i].Seq = uint64(len(d.events[id]) + 1)
		d.events[id] = append(d.events[id], evs[i])
	}
}

// change runs one transition on s and records its events; the transition's
// refusal (submission.ErrIllegal) is ErrConflict, as the broker's commit says.
// A refused transition leaves the record as it was.
func (d *MemDesk) change(s *submission.Submission, fn func(cur *submission.Submission, now time.Time) ([]submission.Event, error)) error {
	cur := s.Clone()
	evs, err := fn(cur, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("%w: %w", broker.ErrConflict, err)
	}
	*s = *cur
	d.record(s.ID, evs)
	return nil
}

// Waiting implements broker.OfficeDesk.
func (d *MemDesk) Waiting(_ context.Context, office string) ([]broker.WaitingEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []broker.WaitingEntry
	for _, id := range d.order {
		s := d.subs[id]
		w := s.State.Dispatchable() || s.State == submission.StateHandedOver || s.State == submission.StateHeld
		if s.OfficeID == office && w && s.BytesRemovedAt == nil {
			out = append(out, broker.WaitingEntry{ID: id, Fetched: s.FetchedAt != nil})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// List implements broker.OfficeDesk. Its text search is the broker's
// (matchesText): it compared as typed only, so a page test could not show that
// "Goerlitz" finds a case in Görlitz, which the mailbox promises.
func (d *MemDesk) List(_ context.Context, office string, q broker.ListQuery) (broker.Page, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[submission.State]bool{}
	for _, s := range q.States {
		want[s] = true
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	ids := append([]string(nil), d.order...)
	sort.SliceStable(ids, func(i, j int) bool { return d.subs[ids[i]].ReceivedAt.Before(d.subs[ids[j]].ReceivedAt) })
	var p broker.Page
	started := q.After == ""
	for _, id := range ids {
		s := d.subs[id]
		if !started {
			started = id == q.After
			continue
		}
		if s.OfficeID != office || (len(want) > 0 && !want[s.State]) {
			continue
		}
		if q.AwaitingDecision && !s.AwaitsDecision() {
			continue
		}
		if q.Case != "" && s.CaseID != q.Case {
			continue
		}
		if len(q.DeliveredVia) > 0 && !slices.Contains(q.DeliveredVia, s.DeliveryChannel()) {
			continue
		}
		if !matchesText(s, q.Text) {
			continue
		}
		if len(p.Items) == limit {
			p.Next = p.Items[limit-1].ID
			break
		}
		p.Items = append(p.Items, s.Clone())
	}
	return p, nil
}

// matchesText is ListQuery.Text's rule as the broker keeps it: an empty text
// matches every case; the identifiers (the case's and the message's id, the
// id of the case a Nachreichung belongs to, the service key, the portal) match when they contain the text as typed, ignoring
// case; the names (service, place, area) also in Unicode NFC, and when both
// fold alike the way the directory folds (textfold: "goerlitz" finds Görlitz,
// "strasse" Straße). Identifiers are not folded: "ae" folds to "a", and a
// fragment of one id would find others.
func matchesText(s *submission.Submission, text string) bool {
	lower := strings.ToLower(norm.NFC.String(strings.TrimSpace(text)))
	if lower == "" {
		return true
	}
	for _, f := range []string{s.ID, s.MessageID, s.CaseID, s.LeikaKey, s.Sender} {
		if strings.Contains(strings.ToLower(f), lower) {
			return true
		}
	}
	folded := textfold.Fold(lower)
	for _, f := range []string{s.ServiceName, s.Place, s.AreaName} {
		if strings.Contains(strings.ToLower(norm.NFC.String(f)), lower) || folded != "" && strings.Contains(textfold.Fold(f), folded) {
			return true
		}
	}
	return false
}

// Get implements broker.OfficeDesk.
func (d *MemDesk) Get(_ context.Context, office, id string) (*submission.Submission, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

// Events implements broker.OfficeDesk.
func (d *MemDesk) Events(_ context.Context, office, id string) ([]submission.Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.forOffice(office, id); err != nil {
		return nil, err
	}
	return slices.Clone(d.events[id]), nil
}

// GetWithEvents implements broker.OfficeDesk.
func (d *MemDesk) GetWithEvents(_ context.Context, office, id string) (*submission.Submission, []submission.Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, nil, err
	}
	return s.Clone(), slices.Clone(d.events[id]), nil
}

// OpenPackage implements broker.OfficeDesk.
func (d *MemDesk) OpenPackage(_ context.Context, office, id string, p broker.Pickup) (*submission.Submission, io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.admitted(office, id, p.Admit)
	if err != nil {
		return nil, nil, err
	}
	// The bytes first, as the broker: erased bytes are no pickup.
	if err := broker.PackageGone(s); err != nil {
		return nil, nil, err
	}
	if err := d.pickedUp(s, p); err != nil {
		return nil, nil, err
	}
	return s.Clone(), io.NopCloser(bytes.NewReader(d.blobs["pkg:"+id])), nil
}

// pickedUp records the office's pickup of s unless it has one. A case whose
// bytes were erased before the office's system read them is no pickup, as at
// the broker (its pickedUp says why): ErrConflict and ErrBytesRemoved.
func (d *MemDesk) pickedUp(s *submission.Submission, p broker.Pickup) error {
	return d.change(s, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		if cur.DeliveredAt == nil && cur.BytesRemovedAt != nil && cur.FetchedAt == nil {
			return nil, fmt.Errorf("%w: submission %s: %w before the office had it", submission.ErrIllegal, cur.ID, broker.ErrBytesRemoved)
		}
		return cur.Confirm(now, p.Channel, submission.Confirmation{Receiver: p.Receiver, At: now})
	})
}

// ReadCase implements broker.OfficeDesk.
func (d *MemDesk) ReadCase(_ context.Context, office, id string, o broker.CaseRead) (*broker.Case, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.admitted(office, id, o.Pickup.Admit)
	if err != nil {
		return nil, err
	}
	c := &broker.Case{Sub: s.Clone()}
	if o.Open == nil || o.Open(s.Clone()) {
		b := d.blobs["pkg:"+id]
		switch gone := broker.PackageGone(s); {
		case gone != nil:
			c.Unread = gone
		case s.PackageSize > o.Max:
			c.Unread = fmt.Errorf("submission %s: package of %d bytes: %w", id, s.PackageSize, broker.ErrTooLarge)
		case int64(len(b)) != s.PackageSize || sha256Hex(b) != s.PackageSHA256:
			c.Unread = fmt.Errorf("%w: package of %s does not match its SHA-256", broker.ErrUnreadable, id)
		default:
			if err := d.pickedUp(s, broker.Pickup{Channel: o.Pickup.Channel, Receiver: o.Pickup.Receiver}); err != nil {
				c.Unread = err
			} else {
				c.Sub, c.Package = s.Clone(), bytes.Clone(b)
			}
		}
	}
	c.Events = slices.Clone(d.events[id])
	return c, nil
}

// MarkProcessed implements broker.OfficeDesk.
func (d *MemDesk) MarkProcessed(_ context.Context, office, id string, done bool, actor, ch string) (*submission.Submission, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, err
	}
	if err := d.change(s, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.MarkProcessed(now, done, actor, ch)
	}); err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

// FetchPackage implements broker.OfficeDesk: it records nothing.
func (d *MemDesk) FetchPackage(_ context.Context, office, id, ch string) (*submission.Submission, io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, nil, err
	}
	if err := s.PickupAllowed(ch); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", broker.ErrConflict, err)
	}
	if err := broker.PackageGone(s); err != nil {
		return nil, nil, err
	}
	return s.Clone(), io.NopCloser(bytes.NewReader(d.blobs["pkg:"+id])), nil
}

// RecordFetch implements broker.OfficeDesk: the first fetch before the
// delivery, or of a case taken over from ch while it was under way, is
// recorded; any other changes nothing.
func (d *MemDesk) RecordFetch(_ context.Context, office, id, ch string, at time.Time) (*submission.Submission, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return nil, err
	}
	// The transition's rule: nothing after the delivery, but for a fetch
	// under way when a clerk took the case over from ch.
	if err := d.change(s, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.Fetched(at, now, ch)
	}); err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

// OpenAttachment implements broker.OfficeDesk: it records nothing.
func (d *MemDesk) OpenAttachment(_ context.Context, office, id, aid string, admit broker.Admit) (submission.Attachment, io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.admitted(office, id, admit)
	if err != nil {
		return submission.Attachment{}, nil, err
	}
	for _, a := range s.Attachments {
		if a.ID == aid {
			// As the broker: the record names its attachments after the
			// erasure, so only a name it has is removed.
			if err := broker.PackageGone(s); err != nil {
				return submission.Attachment{}, nil, err
			}
			return a, io.NopCloser(bytes.NewReader(d.blobs[a.SHA256])), nil
		}
	}
	return submission.Attachment{}, nil, fmt.Errorf("attachment %s: %w", aid, broker.ErrNotFound)
}

// Receipt implements broker.OfficeDesk. MemDesk signs nothing: every receipt
// is ErrNotFound.
func (d *MemDesk) Receipt(_ context.Context, office, id, kind string) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.forOffice(office, id); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("receipt %s of %s: %w", kind, id, broker.ErrNotFound)
}

// Confirm implements broker.OfficeDesk.
func (d *MemDesk) Confirm(_ context.Context, office, id string, p broker.Pickup) (*submission.Submission, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.admitted(office, id, p.Admit)
	if err != nil {
		return nil, err
	}
	if err := d.pickedUp(s, p); err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

// Decide implements broker.OfficeDesk: the office check, dec.Admit, the
// outcome, the pickup the decision implies, the decision — in that order, as
// the broker.
func (d *MemDesk) Decide(_ context.Context, office, id string, dec broker.Decision) (*submission.Submission, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.admitted(office, id, dec.Admit)
	if err != nil {
		return nil, err
	}
	if dec.Outcome != broker.OutcomeAccepted && dec.Outcome != broker.OutcomeRejected {
		return nil, fmt.Errorf("%w: outcome %q", broker.ErrConflict, dec.Outcome)
	}
	if err := d.pickedUp(s, broker.Pickup{Channel: dec.Channel, Receiver: dec.Actor}); err != nil {
		return nil, err
	}
	if err := d.change(s, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		return cur.Decide(now, dec.Channel, dec.Outcome, dec.Reason, dec.Actor)
	}); err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

// Reply implements broker.OfficeDesk.
func (d *MemDesk) Reply(_ context.Context, office, id string, in broker.ReplyIn) (submission.Reply, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return submission.Reply{}, err
	}
	if err := acceptsReply(s, in.MessageID); err != nil {
		return submission.Reply{}, err
	}
	d.replyID++
	r := submission.Reply{ID: fmt.Sprintf("reply-%06d", d.replyID), Kind: in.Kind, MessageID: in.MessageID, ContentType: in.ContentType,
		FileName: in.FileName, Size: int64(len(in.Content)), SHA256: sha256Hex(in.Content), Channel: in.Channel, Actor: in.Actor}
	if err := d.change(s, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		r.At = now
		return cur.AddReply(now, r)
	}); err != nil {
		return submission.Reply{}, err
	}
	for _, have := range s.Replies {
		if have.ID == r.ID {
			d.blobs["reply:"+r.ID] = bytes.Clone(in.Content)
		}
		if have.ID == r.ID || (r.MessageID != "" && have.MessageID == r.MessageID) {
			return have, nil // a repeat returns the reply stored the first time
		}
	}
	return r, nil
}

// acceptsReply refuses a new reply to a case whose bytes were removed, as the
// broker does: nobody could read it, yet the office would be told it was
// stored. A repeat of one the case holds passes.
func acceptsReply(s *submission.Submission, messageID string) error {
	if s.BytesRemovedAt == nil {
		return nil
	}
	for _, have := range s.Replies {
		if messageID != "" && have.MessageID == messageID {
			return nil
		}
	}
	return fmt.Errorf("submission %s: a reply to it could not be read: %w", s.ID, broker.ErrBytesRemoved)
}

// OpenReply implements broker.OfficeDesk.
func (d *MemDesk) OpenReply(_ context.Context, office, id, replyID string) (submission.Reply, io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.forOffice(office, id)
	if err != nil {
		return submission.Reply{}, nil, err
	}
	for _, r := range s.Replies {
		if r.ID == replyID {
			if err := broker.PackageGone(s); err != nil { // as OpenAttachment
				return submission.Reply{}, nil, err
			}
			return r, io.NopCloser(bytes.NewReader(d.blobs["reply:"+r.ID])), nil
		}
	}
	return submission.Reply{}, nil, fmt.Errorf("reply %s: %w", replyID, broker.ErrNotFound)
}

// FindReply implements broker.OfficeDesk.
func (d *MemDesk) FindReply(_ context.Context, office, messageID string) (*submission.Submission, submission.Reply, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if messageID != "" {
		for _, id := range d.order {
			s := d.subs[id]
			if s.OfficeID != office {
				continue
			}
			for _, r := range s.Replies {
				if r.MessageID == messageID {
					return s.Clone(), r, nil
				}
			}
		}
	}
	return nil, submission.Reply{}, fmt.Errorf("reply %s: %w", messageID, broker.ErrNotFound)
}
