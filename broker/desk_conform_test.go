package broker_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/broker/desktest"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// TestBrokerDeskConforms runs the OfficeDesk conformance suite against the
// broker itself, over a real bbolt store on disk: the desk every face uses, and
// the rules MemDesk (the mailbox's page tests) is held to as well.
func TestBrokerDeskConforms(t *testing.T) {
	desktest.Run(t, deskHarness{})
}

type deskHarness struct{}

func (deskHarness) NewDesk(t testing.TB) desktest.Desk {
	tt, ok := t.(*testing.T)
	if !ok {
		t.Fatal("the broker's desk harness needs a *testing.T")
	}
	d := &brokerDesk{damaged: &damagedBlobs{cut: map[string]bool{}}}
	d.Broker = broker.StartForTest(tt, t.TempDir(), func(db *store.DB) store.Store {
		d.db = db
		return damagingStore{Store: db, cut: d.damaged}
	}, waitsForTheOffice{waitsChannel}, waitsForTheOffice{channel.API}, waitsForTheOffice{channel.XTA}, waitsForTheOffice{channel.Webhook})
	return d
}

// Features: the broker signs the intake receipt of every case it takes.
func (deskHarness) Features() desktest.Features { return desktest.Features{Receipts: true} }

// brokerDesk is a broker with the suite's way to hand it a case: Receive, then
// the hand-over to a channel that waits for the office.
type brokerDesk struct {
	*broker.Broker
	damaged *damagedBlobs
	db      *store.DB // under the damaging wrapper: StoresBytes looks here
	n       int
}

func (d *brokerDesk) HandOver(t testing.TB, c desktest.Case) string {
	t.Helper()
	d.n++
	place, service := cmp.Or(c.Place, "Dresden"), cmp.Or(c.Service, "Test")
	in := broker.Intake{MessageID: fmt.Sprintf("msg-%d", d.n), Sender: "amt24", SignerID: "amt24", LeikaKey: "99000000000000",
		ServiceName: service, Place: place, AreaName: place, OfficeID: c.Office, OfficeName: c.Office,
		Package: c.Package, Targets: []submission.Target{{Channel: cmp.Or(c.Channel, waitsChannel)}}, CaseID: c.CaseID}
	for _, a := range c.Attachments {
		in.Attachments = append(in.Attachments, broker.AttachmentIn{Meta: submission.Attachment{ID: a.ID, FileName: a.FileName, MimeType: a.MimeType}, Content: a.Content})
	}
	acc, err := d.Receive(context.Background(), in)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	id := acc.Submission.ID
	// A liveness bound, not a timing assertion: the hand-over takes
	// milliseconds.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s, err := d.Submission(id)
		if err == nil && s.State == submission.StateHandedOver {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("case %s not handed over: %v (%v)", id, s.State, err)
		}
	}
	if c.Damaged {
		d.damaged.add(acc.Submission.PackageSHA256)
	}
	return id
}

// StoresBytes looks the bytes up in the store's blobs by their SHA-256.
func (d *brokerDesk) StoresBytes(t testing.TB, b []byte) bool {
	t.Helper()
	sum := sha256.Sum256(b)
	rc, err := d.db.Blobs().Open(context.Background(), hex.EncodeToString(sum[:]))
	if err != nil {
		return false
	}
	_ = rc.Close()
	return true
}

// Erase erases the case as an operator does.
func (d *brokerDesk) Erase(t testing.TB, id string) {
	t.Helper()
	if _, err := d.Broker.Erase(context.Background(), id, "operator", ""); err != nil {
		t.Fatalf("Erase: %v", err)
	}
}

// Forward records the peer's receipt as the peer adapter does once the peer
// took the package.
func (d *brokerDesk) Forward(t testing.TB, id string) {
	t.Helper()
	f := submission.Forward{Peer: "amtsbote-by", PeerSubmissionID: "p-" + id, At: time.Now().UTC()}
	if _, err := d.RecordForwarded(id, f, []byte("<PeerEingangsbestaetigung/>")); err != nil {
		t.Fatalf("RecordForwarded: %v", err)
	}
}

// PeerDelivered records the peer's report that its office has the case, as
// the forwarding gateway's poll of the peer does.
func (d *brokerDesk) PeerDelivered(t testing.TB, id string) {
	t.Helper()
	now := time.Now().UTC()
	u := submission.PeerStatus{Peer: "amtsbote-by", State: submission.StateDelivered, Receiver: "office", DeliveredAt: &now}
	if _, err := d.RecordPeerStatus(id, u); err != nil {
		t.Fatalf("RecordPeerStatus: %v", err)
	}
}

// PeerDecided records the peer's report that its office decided the case,
// as the forwarding gateway's poll of the peer does.
func (d *brokerDesk) PeerDecided(t testing.TB, id, outcome string) {
	t.Helper()
	u := submission.PeerStatus{Peer: "amtsbote-by", State: submission.State(outcome), Receiver: "office",
		Decision: &submission.Decision{Outcome: outcome, Actor: "office", At: time.Now().UTC()}}
	if _, err := d.RecordPeerStatus(id, u); err != nil {
		t.Fatalf("RecordPeerStatus: %v", err)
	}
}

// waitsChannel is the channel of a case handed over not on the office's own
// system (desktest.Case.Channel "").
const waitsChannel = "waits"

// waitsForTheOffice, on its channel ch, hands every package over and never
// confirms: it waits for the office to take it through its desk, as the
// mailbox and the pull API do. On api, xta and webhook the case is on its way
// to the office's system, as desktest.Case.Channel says.
type waitsForTheOffice struct{ ch string }

func (w waitsForTheOffice) Channel() string { return w.ch }
func (waitsForTheOffice) Close() error      { return nil }
func (waitsForTheOffice) Deliver(context.Context, adapters.Delivery) (adapters.Confirmation, error) {
	return adapters.Confirmation{Receiver: "waits for the office", At: time.Now(), Pending: true}, nil
}
func (waitsForTheOffice) Confirmed(context.Context, adapters.Delivery) (adapters.Confirmation, bool, error) {
	return adapters.Confirmation{}, false, nil
}
func (waitsForTheOffice) Changes() <-chan struct{} { return nil }

// damagedBlobs are the digests whose bytes end early (desktest.Case.Damaged).
type damagedBlobs struct {
	mu  sync.Mutex
	cut map[string]bool
}

func (d *damagedBlobs) add(digest string) {
	d.mu.Lock()
	d.cut[digest] = true
	d.mu.Unlock()
}

func (d *damagedBlobs) has(digest string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cut[digest]
}

// damagingStore is the store with the blobs of damagedBlobs cut in half.
type damagingStore struct {
	store.Store
	cut *damagedBlobs
}

func (s damagingStore) Blobs() store.BlobStore {
	return damagingBlobs{BlobStore: s.Store.Blobs(), cut: s.cut}
}

type damagingBlobs struct {
	store.BlobStore
	cut *damagedBlobs
}

func (b damagingBlobs) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	rc, err := b.BlobStore.Open(ctx, digest)
	if err != nil || !b.cut.has(digest) {
		return rc, err
	}
	defer rc.Close()
	all, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(all[:len(all)/2])), nil
}
