// Package desktest is the conformance suite of broker.OfficeDesk, the one port
// through which every office-facing face (the REST pull API, the XTA face, the
// web mailbox) reads and decides.
//
// The desk's rules are written once, in the comment of broker.OfficeDesk, and
// there are two desks: the broker itself over its store, and MemDesk, the
// in-memory desk the mailbox's page tests run on. Nothing checked that the two
// keep the same rules, so a page test could pass against a desk behaviour the
// real one does not have (a decision without the pickup, another office's case
// shown). Run checks each rule, one subtest per rule, against any desk a
// Harness builds: the broker runs it over a real bbolt store
// (broker.TestBrokerDeskConforms) and MemDesk runs it here
// (TestMemDeskConforms), and each defect planted in an otherwise correct desk
// fails the case of its rule (TestPlantedDefectsFail).
package desktest

import (
	"testing"

	"github.com/amtsbote/amtsbote/broker"
)

// Harness builds the desks the suite checks.
type Harness interface {
	// NewDesk returns a fresh desk that holds no case. Its teardown is
	// registered with t.Cleanup.
	NewDesk(t testing.TB) Desk
	// Features says what its desks hold that not every desk does.
	Features() Features
}

// Features says what a desk holds beyond the rules every desk keeps, so that
// one suite fits the broker and MemDesk, as adaptertest.Features does for the
// channels.
type Features struct {
	// Receipts: the desk signs and keeps the intake receipt of every case it
	// takes (the broker). Without it (MemDesk signs nothing) every Receipt is
	// ErrNotFound, and the suite checks only that another office gets none.
	Receipts bool
}

// Desk is a desk under test with the one way the suite gives it cases.
type Desk interface {
	broker.OfficeDesk
	// HandOver makes the desk hold c as a channel that waits for the office
	// hands it over (the mailbox, the pull API): received, handed over, not
	// picked up, fetched or decided, with no event written after the hand-over.
	// It returns once that is so, with the case's id. Cases handed over one
	// after the other are oldest first in that order.
	HandOver(t testing.TB, c Case) string
	// Erase removes the bytes of the handed-over case id as an operator's
	// erasure does (broker.Broker.Erase; the retention's removal leaves the
	// same record): package and attachments gone, the record and its log kept,
	// BytesRemovedAt set with a bytes_removed event.
	Erase(t testing.TB, id string)
	// Forward records that a peer gateway received the handed-over case id
	// (broker.Broker.RecordForwarded): it is forwarded, and its delivery is the
	// peer's.
	Forward(t testing.TB, id string)
	// PeerDelivered records the peer's report that its office has the
	// forwarded case id (broker.Broker.RecordPeerStatus, state delivered): it
	// is delivered, by channel peer.
	PeerDelivered(t testing.TB, id string)
	// PeerDecided records the peer's report that its office decided the
	// forwarded case id with outcome (broker.Broker.RecordPeerStatus, state
	// accepted or rejected, with the decision): the one way a forwarded case
	// is decided.
	PeerDecided(t testing.TB, id, outcome string)
	// StoresBytes reports whether the desk holds bytes equal to b (a
	// package's, an attachment's, a reply's): a Reply it refuses must leave
	// none behind.
	StoresBytes(t testing.TB, b []byte) bool
}

// Case is one application as the suite hands it over.
type Case struct {
	Office      string
	Package     []byte // the signed package; its SHA-256 and size are the record's
	Attachments []Attachment
	// Place and Service are the record's place (as the citizen gave it, and
	// its area's name) and service name, which ListQuery.Text searches; ""
	// is "Dresden" and "Test".
	Place, Service string
	// CaseID makes it a Nachreichung to that case (the record's CaseID,
	// which ListQuery.Text searches too); "" a new case.
	CaseID string
	// Channel is the office's channel the case is handed over on: "" one
	// that is not the office's own system (the mailbox's way: a clerk opening
	// the case is its pickup, no takeover); channel.API, channel.XTA or
	// channel.Webhook the system's, so that the case is on its way to it
	// (submission.Submission.BoundForSystem) until that system reads it or a
	// clerk takes it over in the mailbox.
	Channel string
	// Damaged: the stored package bytes end early (a disk fault, a cluster blob
	// missing a chunk), while the record names the whole package: they open,
	// but reading them whole fails their check (broker.ErrUnreadable).
	Damaged bool
}

// Attachment is one attachment of a Case.
type Attachment struct {
	ID       string
	FileName string
	MimeType string
	Content  []byte
}
