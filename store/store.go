// Package store keeps the gateway's durable truth: submissions, their event log, the
// outbox of deliveries still to do, idempotency keys, receipts (all in one bbolt file)
// and the package and attachment bytes (content-addressed blob files).
//
// A submission is durable once Accept has returned: its blobs were fsynced before the
// bbolt transaction that references them committed (bbolt fsyncs on commit). Everything
// else in the system — the JetStream queue, in-memory state — can be rebuilt from here.
package store

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/internal/keepjson"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Sentinel errors at the package boundary.
var (
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the store cannot be reached now (cluster mode: the NATS
	// cluster is out of reach or has no quorum); a later try may succeed. Faces
	// answer it as a 503 with Retry-After, not as a failure of the gateway.
	ErrUnavailable = errors.New("store cannot be reached now")
	// ErrConflict means the requested change does not fit the record's current state.
	ErrConflict = errors.New("conflict")
	// ErrTooLarge: PutStream read more than its limit; nothing was stored.
	ErrTooLarge = errors.New("blob larger than the limit")
	// ErrDigestMismatch: PutStream was told which digest to expect and the bytes
	// hash to another; nothing was stored under either name.
	ErrDigestMismatch = errors.New("blob digest differs from the expected one")
)

var (
	// bucketCases holds every submission's record, event log and receipts side
	// by side, under one time-ordered key space (caseKey). Until schema 4 they
	// were three buckets (bucketSubmissions, bucketEvents, bucketReceipts), and
	// bbolt rewrites every level of each tree a commit touches: with 100,000
	// submissions each of the three was four levels deep, and an intake and a
	// delivery wrote the same three paths twice over (docs/performance.md, "One
	// tree per case").
	bucketCases = []byte("cases")
	// bucketSubmissions and bucketReceipts are read only to upgrade a file of
	// schema 3 or older (upgradeCases). bucketEvents stays: its sequence numbers
	// the events, in every file.
	bucketSubmissions = []byte("submissions")
	bucketEvents      = []byte("events")
	bucketOutbox      = []byte("outbox")
	bucketIdempotency = []byte("idempotency")
	bucketReceipts    = []byte("receipts")
	bucketByOffice    = []byte("by_office")
	bucketMeta        = []byte("meta")
	// bucketHandedOver indexes submissions whose channel took the package and whose
	// office confirmation is still to come, so the broker can ask after them without
	// scanning every submission.
	bucketHandedOver = []byte("handed_over")
	// bucketHeld indexes submissions that wait for a person (every channel failed
	// for good): the admin's list and the held gauge count them without a scan.
	bucketHeld = []byte("held")
	// bucketReplies indexes the replies that carry the office's own message id
	// (XTA's XTAMessageID): key SHA-256(message id) then submission id, so a face
	// finds a reply by that id alone without reading every case of the office.
	bucketReplies = []byte("replies")
	// bucketUndecided indexes the delivered submissions whose office's decision
	// is still to come here (submission.AwaitsDecision): a Fachverfahren that
	// fetched a case and died before deciding leaves it so for good, and the
	// gauge, its alert and the admin's list find such cases without reading
	// every record. Files written before it get it filled on open (indexUndecided).
	bucketUndecided = []byte("undecided")
	// bucketFollowUps indexes the Nachreichungen by the case they belong to
	// (Submission.CaseID): key case id, a zero byte, then the Nachreichung's id,
	// so a case's page lists them without reading every case of its office.
	// Files written before it get it filled on open (indexFollowUps).
	bucketFollowUps = []byte("follow_ups")
)

// DefaultBatchDelay is the least time between the starts of two group commits
// (docs/performance.md has the measurements behind it).
const DefaultBatchDelay = 10 * time.Millisecond

// FileName is the bbolt file in the data folder.
const FileName = "amtsbote.db"

// DefaultBatchSize is how many waiting writes start a group commit before the
// delay is up (commit.go says why 16).
const DefaultBatchSize = 16

// schemaVersion is written on first open; a later incompatible layout bumps it.
// "2": inline blobs kept alone in nested buckets, certificate tokens (known.go).
// "3": records and receipts in S2 (pack).
// "4": records, events and receipts in one bucket (bucketCases).
// This build moves the cases of files of versions 1 to 3 into bucketCases when
// it opens them (upgradeCases) and marks them 4, so that an older build refuses
// the file instead of misreading what this one wrote.
const schemaVersion = "4"

// schemaReadable are the earlier versions this build opens (and upgrades).
var schemaReadable = map[string]bool{"1": true, "2": true, "3": true}

// schemaRefused is the error for a file marked with schema version v that this
// build cannot read (nil v: a file not marked yet, a new one or the first
// version's).
func schemaRefused(v []byte) error {
	if v == nil || string(v) == schemaVersion || schemaReadable[string(v)] {
		return nil
	}
	return fmt.Errorf("%w: schema version %q, this build reads %q: run the build that wrote it, "+
		"or go back with the backup taken before the upgrade (docs/operations.md, \"Upgrading\")", ErrNewerSchema, v, schemaVersion)
}

// ErrNewerSchema: the file was written by a newer build, which this one cannot
// read. (The start had said "is a gateway running on it?", sending an operator
// who went back to an older build after a failed upgrade to look for a lock.)
var ErrNewerSchema = errors.New("store: written by a newer build")

// ErrLocked: another process holds the store's file (a gateway running on it);
// nothing was opened.
var ErrLocked = errors.New("store: another process holds the file (is a gateway running on it?)")

// lockErr names a lock held by another process as ErrLocked.
func lockErr(err error) error {
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("%w: %w", ErrLocked, err)
	}
	return err
}

// Options tune the bbolt file. Zero values take the defaults.
type Options struct {
	// BatchSize and BatchDelay tune group commit (commit.go): a commit starts
	// at once when the last one started at least BatchDelay ago, otherwise when
	// that time is up or BatchSize writes wait. Unless BatchSize writes wait
	// sooner, the store then flushes at most 2 / BatchDelay times a second under
	// load; an idle store adds no delay.
	BatchSize  int
	BatchDelay time.Duration
	// OpenTimeout bounds waiting for the file lock of another process.
	OpenTimeout time.Duration
	// Known are certificates, as the base64 text of <ds:X509Certificate>, that
	// recur in receipts and packages (the gateway's chain, trusted senders'): kept
	// once in the file instead of in every value (known.go).
	Known [][]byte
	// Logger gets what opening the store cleaned up; nil: nothing.
	Logger *slog.Logger
	// ReadOnly opens the file for a command that only reads (`amtsbote gc
	// -dry-run`, `store verify`, `store export`): bbolt's shared lock, no
	// transaction committed, nothing created, upgraded or cleaned up, so the
	// file keeps its bytes and its time. A file this build would have to write
	// first (an older schema, a bucket missing) is refused (openReadOnly).
	// A write fails at its transaction (bbolt refuses it; a big blob's file
	// would be written before, so a reader must not write); Known is not added.
	ReadOnly bool
}

// Store is the gateway's durable truth as the broker uses it. DB (bbolt + blob files)
// implements it for a single node; a replicated implementation carries a cluster.
// Every implementation runs the one shared suite in store/storetest.
//
// The contract, beyond each method's comment on DB:
//   - Create is idempotent by (sender, message id), atomically: of two concurrent
//     Creates of the same pair exactly one creates, the other gets the first record
//     and its receipt with created=false;
//   - Update and UpdateWithReceipt apply fn to the current record and write the
//     record, its events (and the receipt) all or nothing; fn returning no events
//     writes nothing; fn may run more than once (a retried transaction), so it must
//     not have side effects beyond the record;
//   - fn does not change a record's Sender, MessageID, OfficeID or CaseID, nor
//     remove a reply or change a reply's MessageID: the idempotency key and the
//     by-office, reply and follow-up indexes are keyed by them, an update only
//     adds to those indexes, and Delete removes the entries the record names
//     then — a changed office would keep the case's old entry for good (no
//     caller changes them: intake sets them before Create);
//   - events are never removed while their record exists, and change only
//     through UpdateRedacting: their Detail and Note, in the transaction of the
//     change that removes the case's bytes;
//   - the outbox holds a submission exactly while its state is dispatchable, the
//     handed-over index exactly while it is handed_over, the held index exactly
//     while it is held, the undecided index exactly while it awaits its office's
//     decision (submission.AwaitsDecision);
//   - when a method returns without error, what it wrote is durable;
//   - Collectors include amtsbote_store_write_wait_seconds (WriteWaitMetric),
//     which times every write of a record (create, update, delete) until
//     durable: operators read the disk from it.
type Store interface {
	Create(ctx context.Context, sub *submission.Submission, events []submission.Event, receiptKind string, receipt []byte) (stored *submission.Submission, storedReceipt []byte, created bool, err error)
	FindByMessage(sender, messageID string) (*submission.Submission, error)
	// RepliesByMessage returns the ids of the submissions that hold a reply with
	// this message id (Reply.MessageID: the office's own id for it), in id order;
	// none is an empty list, not an error. The index follows the records: a reply
	// is found as soon as the write that added it returned, and not after Delete.
	RepliesByMessage(messageID string) ([]string, error)
	// FollowUps returns the ids of the Nachreichungen to the case caseID —
	// the submissions whose CaseID it is — in id order; none is an empty
	// list, not an error. It reads an index, not the office's cases (the web
	// mailbox's case page asks it on every view), which follows the records
	// as RepliesByMessage's does.
	FollowUps(caseID string) ([]string, error)
	Get(id string) (*submission.Submission, error)
	Update(id string, fn func(s *submission.Submission) ([]submission.Event, error)) (*submission.Submission, error)
	// UpdateRedacting is Update that, when fn records a change (returns events),
	// also passes each event stored before that change to redact and writes
	// those it changed in place of the old ones, in the same transaction: the
	// removal of a case's bytes, whose earlier events may quote the applicant
	// (an office's error text, submission.DropOutsideText), takes that text
	// with it. redact may change an event's Detail and Note and nothing else
	// (the store keeps every other field as stored) and reports whether it
	// changed them; fn's new events are not passed to it. As with Update, fn
	// returning no events or an error writes nothing, rewritten events
	// included, and fn and redact may run more than once. The replaced values
	// may stay in the store's files until their space is reused, as removed
	// bytes do: a store.DB's caller overwrites its free pages (FreeWiper).
	UpdateRedacting(id string, fn func(s *submission.Submission) ([]submission.Event, error), redact func(e *submission.Event) bool) (*submission.Submission, error)
	UpdateWithReceipt(id, kind string, receipt []byte, fn func(s *submission.Submission) ([]submission.Event, error)) (*submission.Submission, bool, error)
	Receipt(id, kind string) ([]byte, error)
	// Events returns a submission's event log, oldest first. Seq rises along
	// one log and says nothing beyond it: bbolt numbers the events of all cases
	// from one counter, JetStream each case's from 1 (the status API shows it).
	Events(id string) ([]submission.Event, error)
	// GetWithEvents is Get and Events as one write left them: the record and
	// its event log from one read (bbolt: one read transaction; JetStream: the
	// document, which holds the record and the log's newest events). A status
	// answer built from two reads could pair the state "queued" with a log
	// that already ends in "delivered" when a write came between them.
	GetWithEvents(id string) (*submission.Submission, []submission.Event, error)
	// Outbox lists the ids of the submissions that still need a delivery
	// attempt. It and the three listings below are in no particular order
	// (bbolt's is the ids', JetStream's that of the entries' last writes): a
	// caller that needs one sorts, as the ids are time-ordered.
	Outbox() ([]string, error)
	// HandedOver lists the handed-over index with each entry's value (Waiting):
	// the broker asks only the channels that confirm later about their packages,
	// and reads no record of the others' (a mailbox's or an XTA box's thousands).
	HandedOver() ([]Waiting, error)
	// Held lists the held index with each entry's value (Waiting), as HandedOver:
	// a case erased while held waits for nobody, and the held gauge, the backlog
	// and the dead letters leave it out without reading its record.
	Held() ([]Waiting, error)
	// Undecided lists the undecided index with each entry's value (Waiting, as
	// HandedOver): the delivered submissions whose office's decision is still to
	// come here (submission.AwaitsDecision — not those taken by XTA, a transfer
	// folder or a peer gateway, which never decide here, nor erased ones). An
	// entry leaves it in the write that decides the case, marks it processed,
	// removes its bytes or deletes it; a store of an earlier build gets it filled
	// when it is opened. Like the others it reflects every write that returned
	// before the call.
	Undecided() ([]Waiting, error)
	// Waiting lists the entries of the three indexes above whose submission is
	// addressed to officeID, each id once, in id order (oldest first), with
	// whether an erasure removed its bytes — and the entries that do not say
	// (Known false: written before the indexes kept it). What an office's listing
	// of its waiting submissions and XTA's MessagesPending need, from the indexes
	// alone: reading every waiting record to find one office's cost each poll of
	// each office the whole gateway's backlog. Like the three it reflects every
	// write that returned before the call, and a submission that waits
	// throughout the call is named once however it moves between the three
	// meanwhile (a delivery attempt hands it over, a failed one brings it back).
	Waiting(officeID string) ([]Waiting, error)
	// WalkOffice calls fn for the office's submissions after the id after (""
	// from the first), oldest first, until fn returns false; like Scan it need
	// not be a snapshot. An entry of the office's index whose record is gone or
	// names another office is passed over: a damaged index costs the office
	// neither its list nor another office's case.
	WalkOffice(officeID, after string, fn func(*submission.Submission) bool) error
	// Scan calls fn for every submission, in no particular order (bbolt's is
	// the ids', JetStream's that of the last writes), until fn returns false.
	// It need not be a snapshot (a store may read in parts, so as not to hold
	// back writers): a submission changed meanwhile is seen as it was or as it
	// is, one created or deleted meanwhile may be seen or not, none twice. The
	// retention's blob sweep is safe with that because it spares blobs written
	// within its grace.
	Scan(fn func(*submission.Submission) bool) error
	// Delete removes a submission for good — record, events, receipts, idempotency
	// key and its index and set entries — all or nothing (retention: records are kept
	// long, but not forever). Its blobs stay: they are named by content and may be
	// shared; the blob sweep removes what no record references. ErrNotFound if there
	// is no such submission.
	Delete(id string) error
	Blobs() BlobStore
	// Collectors are the store's Prometheus series, for the gateway to register.
	Collectors() []prometheus.Collector
	Close() error
}

// BlobStore keeps package, attachment and reply bytes, named by their hex SHA-256.
// Put returns only when the bytes are durable; Open fails with ErrNotFound for a
// digest never put and ErrBadDigest for a malformed one.
type BlobStore interface {
	Put(b []byte) (digest string, err error)
	// PutStream stores what r yields, hashing while it writes, and never holds the
	// whole content in memory (attachments of gigabytes arrive this way). More than
	// limit bytes (limit < 0: no limit) is ErrTooLarge; a want digest that is not
	// "" and differs from the content's is ErrDigestMismatch. Either way, and on
	// any error of r or ctx, nothing is stored (no temporary data stays behind)
	// and a blob of the same name that was there before is left as it was. Like
	// Put it returns only when the bytes are durable, and content that is already
	// stored is refreshed (the retention sweep's clock), not written twice.
	PutStream(ctx context.Context, r io.Reader, limit int64, want string) (StreamPut, error)
	Open(ctx context.Context, digest string) (io.ReadCloser, error)
	// Delete removes a blob; ErrNotFound if there is none.
	Delete(digest string) error
	// Walk calls fn for every blob with its size and the time it was written, until
	// fn returns false (the sweep never removes a blob written recently: its record
	// may be about to commit).
	Walk(fn func(digest string, size int64, written time.Time) bool) error
}

// StreamPut is what PutStream stored.
type StreamPut struct {
	Digest string
	Size   int64
	// Created: the content was not stored before this call (and, as far as the
	// store could tell, nobody put it again before the call returned). Only then
	// may a caller whose request fails afterwards remove it again (DiscardNew);
	// content that was there already belongs to records that reference it.
	Created bool
	// Written is the blob's time as the retention sweep sees it right after the
	// put. A put or refresh of the same content by anyone later moves it forward,
	// past Written even when its clock reads earlier (NTP stepped it back, another
	// node's clock is behind): DiscardNew takes a blob's time for its version.
	Written time.Time
}

// CondDeleter is a blob store that deletes a blob only if nobody put the same
// content again since before (Put refreshes a blob's time): what the retention's
// sweep, an erasure and DiscardNew need, so that a blob a concurrent request
// references is kept. A store without it leaves blobs to the sweep.
type CondDeleter interface {
	DeleteIfOlder(digest string, before time.Time) (deleted bool, err error)
}

// Refresher is a blob store that can move a stored blob's time to now without
// touching its bytes: what a request does for the blobs it has stored and whose
// record is not committed yet. A multipart upload stores its first attachment
// long before its record commits (the later parts may take hours at the upload's
// minimum rate), and every deleter — the retention's sweep, an erasure — decides
// from records committed before it looked and from the blob's time: without
// fresh times the blob of an upload still under way looked unreferenced and old,
// was removed, and the package was then acknowledged without it. Refresh returns
// the blob's new time (a later DeleteIfOlder with an earlier cut-off keeps it),
// which is after its previous one whatever the clock reads (StreamPut.Written),
// ErrNotFound when the blob is gone.
type Refresher interface {
	Refresh(ctx context.Context, digest string) (time.Time, error)
}

// HoldRefresh is how often a request refreshes the blobs it holds until its
// record is committed (Refresher), and HoldGrace how far in the past every
// deleter's cut-off must lie: three refreshes, so a slow disk or a busy cluster
// delaying one refresh does not expose a held blob. The retention's sweep keeps
// an hour (broker.Retention.BlobGrace), an erasure HoldGrace.
const (
	HoldRefresh = 5 * time.Minute
	HoldGrace   = 3 * HoldRefresh
)

// Leaser is a store that several gateways share (the JetStream store) and that
// can hand one of them a piece of periodic work for one period: the retention
// job reads every record, and N gateways each doing it read the store N times a
// period. TryLease reports whether this caller got name for the period that
// begins at slot (the first caller of the slot gets it; the lease lasts at least
// ttl). release gives it back so that another gateway may take the same slot, as
// a holder whose run failed does: a gateway that fails every time must not keep
// the work from the others. A store without it (bbolt, one gateway) runs the
// work itself.
type Leaser interface {
	TryLease(ctx context.Context, name string, slot time.Time, ttl time.Duration) (held bool, release func(), err error)
}

// DiscardNew removes a blob this request created (p.Created) and that no record
// references, because the request failed after PutStream: an attachment whose
// package was refused must leave no bytes behind. It deletes only if nobody put the
// same content since (DeleteIfOlder with p's own time), so a concurrent request
// that references the same bytes keeps them. That is sound only because a store
// never moves a blob's time backwards (StreamPut.Written): with the wall clock
// alone, a put after an NTP step back looked older than p, and p's discard removed
// the bytes that other request had been acknowledged with. A store without
// DeleteIfOlder leaves the blob to the retention sweep.
func DiscardNew(bs BlobStore, p StreamPut) error {
	if !p.Created {
		return nil
	}
	cond, ok := bs.(CondDeleter)
	if !ok {
		return nil
	}
	if _, err := cond.DeleteIfOlder(p.Digest, p.Written.Add(time.Nanosecond)); err != nil {
		return fmt.Errorf("store: discard blob %s: %w", p.Digest, err)
	}
	return nil
}

var _ Store = (*DB)(nil)

// Waiting is one entry of the waiting indexes (Store.Waiting).
type Waiting struct {
	ID string
	// Known: the entry names Office, Erased and Channel. An entry written by a
	// version before the index kept them does not (its record tells); each store
	// writes them whenever it writes the entry, and again when one of them
	// changes while the entry stays (an erasure, a fallback to another channel).
	Known  bool
	Office string // the submission's OfficeID ("" if it has none)
	Erased bool   // BytesRemovedAt is set: an erasure removed the package's bytes
	// Channel is the channel of the submission's current target ("" if none).
	Channel string
	// Fetched: the office's system read the package once (FetchedAt; XTA's
	// getMessage), so the status list of new messages leaves it out.
	Fetched bool
}

// WaitingValue is the value both store implementations keep with an entry of
// the waiting indexes: a flag byte (4: known, 2: erased, 8: fetched), the length of the
// channel name in a byte and the name, then the office id. Before it the value
// was empty, which reads as not known, and so does the first form of it (flag
// 1, no channel; written by builds of 2026-12-05 morning only): an office id
// read as a channel length would have named another office.
func WaitingValue(s *submission.Submission) []byte {
	flags := byte(waitingKnown)
	if s.BytesRemovedAt != nil {
		flags |= waitingErased
	}
	if s.FetchedAt != nil {
		flags |= waitingFetched
	}
	t, _ := s.CurrentTarget()
	ch := t.Channel
	if len(ch) > 255 {
		flags &^= waitingKnown // no such channel name; the record tells
		ch = ""
	}
	v := make([]byte, 0, 2+len(ch)+len(s.OfficeID))
	v = append(v, flags, byte(len(ch)))
	v = append(v, ch...)
	return append(v, s.OfficeID...)
}

const (
	waitingErased  = 2
	waitingKnown   = 4 // 1 was the first form's (see WaitingValue)
	waitingFetched = 8
)

// IDs returns the ids of entries, in their order.
func IDs(entries []Waiting) []string {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	return ids
}

// IDsOf turns a listing of entries (Store.HandedOver) into one of their ids,
// for what counts or walks an index by id.
func IDsOf(list func() ([]Waiting, error)) func() ([]string, error) {
	return func() ([]string, error) {
		entries, err := list()
		return IDs(entries), err
	}
}

// WaitingFor reports whether an entry's value names officeID or names none
// (not known): the entries Store.Waiting returns.
func WaitingFor(v []byte, officeID string) bool {
	_, office, ok := splitWaiting(v)
	return !ok || string(office) == officeID
}

// splitWaiting returns the channel and office of a value WaitingValue wrote;
// ok is false for a value that names neither.
func splitWaiting(v []byte) (channel, office []byte, ok bool) {
	if len(v) < 2 || v[0]&waitingKnown == 0 || len(v) < 2+int(v[1]) {
		return nil, nil, false
	}
	return v[2 : 2+int(v[1])], v[2+int(v[1]):], true
}

// ParseWaiting reads an entry's value as WaitingValue wrote it.
func ParseWaiting(id string, v []byte) Waiting {
	ch, office, ok := splitWaiting(v)
	if !ok {
		return Waiting{ID: id}
	}
	return Waiting{ID: id, Known: true, Office: string(office), Channel: string(ch), Erased: v[0]&waitingErased != 0, Fetched: v[0]&waitingFetched != 0}
}

// DB is the single-node store. It is safe for concurrent use.
type DB struct {
	dir   string
	opts  Options
	blobs *Blobs
	known *knownSet // certificates kept once (known.go)

	// sw guards the bbolt handle, which an online compaction swaps: every
	// operation holds it shared for its whole transaction, the swap exclusively
	// (compact.go).
	sw   sync.RWMutex
	bolt *bolt.DB
	// dirty, while a compaction copies the file, notes every key a write changes,
	// so the keys written during the copy are copied again under the swap lock.
	dirty atomic.Pointer[dirtyKeys]
	// compacting serialises compactions, WipeFree and a backup's copy of the
	// file (backup.go says why the copy does not hold sw).
	compacting sync.Mutex
	// commit group-commits the writes of batch (commit.go).
	commit *committer
	// recent holds the records read last, decoded (recent.go).
	recent *recent
	// deletions notes the blob files deleted while a backup runs (backup.go).
	deletions deletionLog
	// wiped are the free pages of the file of bolt `of` that WipeFree zeroed
	// (wipe.go); guarded by compacting and sw together.
	wiped struct {
		// walked: the last WipeFree found the free pages by the walk, not
		// from the freelist page (wipe.go).
		walked bool
	}
}

// view, update and batch run a bbolt transaction on the current file.
func (db *DB) view(fn func(*bolt.Tx) error) error {
	db.sw.RLock()
	defer db.sw.RUnlock()
	return db.bolt.View(fn)
}

func (db *DB) update(fn func(*wtx) error) error {
	db.sw.RLock()
	defer db.sw.RUnlock()
	d := db.dirty.Load()
	return db.bolt.Update(func(tx *bolt.Tx) error { return fn(&wtx{Tx: tx, dirty: d}) })
}

func (db *DB) batch(fn func(*wtx) error) error {
	db.sw.RLock()
	defer db.sw.RUnlock()
	return db.commit.do(fn)
}

// Blobs returns the content-addressed blobs: small ones in the bbolt file, bigger
// ones as files (inline.go).
func (db *DB) Blobs() BlobStore { return dbBlobs{db} }

// Files returns the blob files with their file-level extras (Read).
func (db *DB) Files() *Blobs { return db.blobs }

// initialMap is the memory map bbolt opens the file at path with: for a file of
// mapRoomFrom or more, room for it to double, at least 1 GiB. bbolt can map a
// grown file only while no read transaction is open, and a backup (one read
// transaction over the whole file) or a compaction's copy takes as long as
// reading the file — on a million submissions not in memory, minutes, during
// which every commit that needed a bigger map would wait (docs/performance.md,
// "The retention's scan in chunks"; bbolt's own advice for long readers). The
// map is address space, not memory: only pages read count toward the process's
// RSS. A smaller file keeps bbolt's default: it is read in seconds, and with a
// map above 16 MiB bbolt grows a file by 16 MiB at a time, so even a test's
// store would take 16 MiB on disk. A 32-bit build keeps the default too,
// having no address space to spare.
func initialMap(path string) int {
	if strconv.IntSize < 64 {
		return 0
	}
	var size int64
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	if size < mapRoomFrom {
		return 0
	}
	return int(max(2*size, 1<<30))
}

// mapRoomFrom is the file size from which initialMap gives room (a variable for tests).
var mapRoomFrom int64 = 64 << 20

// Open opens (creating if needed) the store under dir: dir/amtsbote.db and dir/blobs.
func Open(dir string, opts Options) (*DB, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BatchDelay <= 0 {
		opts.BatchDelay = DefaultBatchDelay
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 5 * time.Second
	}
	if opts.ReadOnly {
		return openReadOnly(dir, opts)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", dir, err)
	}
	blobs, err := OpenBlobs(filepath.Join(dir, "blobs"))
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, FileName)
	b, err := bolt.Open(file, 0o600, &bolt.Options{Timeout: opts.OpenTimeout, InitialMmapSize: initialMap(file)})
	if err != nil {
		return nil, fmt.Errorf("store: open bbolt: %w", lockErr(err))
	}
	// The file lock is ours: a backup's temporary copy left here is a dead process's,
	// and so is a blob's temporary file.
	removeStaleBackups(dir)
	if n, size := blobs.removeStale(); n > 0 && opts.Logger != nil {
		opts.Logger.Info("store: removed temporary blob files of an earlier process", "files", n, "bytes", size)
	}
	if err := upgradeCases(b, opts.Logger); errors.Is(err, ErrNewerSchema) {
		// Nothing was upgraded: "upgrade" here read as if this build changed the
		// newer file, which is what the message rules out (an audit).
		_ = b.Close()
		return nil, err
	} else if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("store: upgrade: %w", err)
	}
	var known *knownSet
	err = b.Update(func(tx *bolt.Tx) error {
		noHeld, noReplies, noUndecided := tx.Bucket(bucketHeld) == nil, tx.Bucket(bucketReplies) == nil, tx.Bucket(bucketUndecided) == nil
		noFollowUps := tx.Bucket(bucketFollowUps) == nil
		for _, name := range buckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if noHeld {
			if err := indexHeld(tx); err != nil {
				return err
			}
		}
		if noUndecided {
			if err := indexUndecided(tx, opts.Logger); err != nil {
				return err
			}
		}
		if noReplies {
			if err := indexReplies(tx); err != nil {
				return err
			}
		}
		if noFollowUps {
			if err := indexFollowUps(tx); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get([]byte("schema"))
		if err := schemaRefused(v); err != nil {
			return err
		}
		if string(v) != schemaVersion {
			if err := meta.Put([]byte("schema"), []byte(schemaVersion)); err != nil {
				return err
			}
		}
		var err error
		known, err = loadKnown(tx, opts.Known)
		return err
	})
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("store: init: %w", err)
	}
	db := &DB{dir: dir, opts: opts, bolt: b, blobs: blobs, known: known, commit: newCommitter(opts.BatchDelay, opts.BatchSize), recent: newRecent(recentRecords)}
	go db.commit.run(db)
	return db, nil
}

// Close closes the bbolt file.
func (db *DB) Close() error {
	db.sw.Lock()
	defer db.sw.Unlock()
	// Every write holds sw shared until its commit returned, so none is queued.
	select {
	case <-db.commit.stop:
	default:
		close(db.commit.stop)
		<-db.commit.done
	}
	return db.bolt.Close()
}

// Create stores a new submission with its first events and receipt in one fsynced
// transaction, together with its idempotency key and (if dispatchable) its outbox
// entry. If the sender already submitted the same message id, nothing is written and
// the first submission and its intake receipt are returned with created=false.
//
// Create uses the store's group commit (commit.go), so concurrent callers share fsyncs.
func (db *DB) Create(ctx context.Context, sub *submission.Submission, events []submission.Event, receiptKind string, receipt []byte) (stored *submission.Submission, storedReceipt []byte, created bool, err error) {
	return db.CreateWithBlobs(ctx, sub, events, receiptKind, receipt, nil)
}

// Blob is content to store with a record, named by its hex SHA-256. The caller
// hashed it already (the digests are in the record and its signed receipt), so the
// store does not hash it again.
type Blob struct {
	SHA256 string
	Data   []byte
	// Recurring are certificate texts in Data (the base64 of a
	// <ds:X509Certificate>) that will recur in later blobs: the certificate intake
	// verified a package with. The store may keep them once (known.go).
	Recurring [][]byte
}

// CreateWithBlobs is Create that also stores the submission's bytes (package,
// attachments): those of at most
// InlineMax bytes in the same transaction, bigger ones as blob files before it. An
// intake is then one group-committed transaction instead of a blob file (two
// fsyncs of its own) plus a transaction. A repeat of the same message writes no
// bytes: the first submission's are there.
func (db *DB) CreateWithBlobs(ctx context.Context, sub *submission.Submission, events []submission.Event, receiptKind string, receipt []byte, blobs []Blob) (stored *submission.Submission, storedReceipt []byte, created bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, false, err
	}
	type inline struct{ key, value []byte }
	var small []inline
	var rows []learned // certificates learned here whose rows this transaction writes
	for _, b := range blobs {
		if !IsHexDigest(b.SHA256) {
			return nil, nil, false, fmt.Errorf("store: create: blob %q: %w", b.SHA256, ErrBadDigest)
		}
		if len(b.Data) > InlineMax {
			if _, err := db.blobs.Put(b.Data); err != nil {
				return nil, nil, false, fmt.Errorf("store: create: %w", err)
			}
			continue
		}
		var own []learned
		for _, text := range b.Recurring {
			if l, row, ok := db.known.learn(text); ok {
				own = append(own, l)
				if row {
					rows = append(rows, l)
				}
			}
		}
		small = append(small, inline{[]byte(b.SHA256), db.inlineValue(b.Data, own...)})
	}
	idem := idempotencyKey(sub.Sender, sub.MessageID)
	record, err := encodeSubmission(sub)
	if err != nil {
		return nil, nil, false, fmt.Errorf("store: create: %w", err)
	}
	packedReceipt := db.packCerts(receipt, pack)
	err = db.batch(func(tx *wtx) error {
		// Batch may run this function twice; every write below is keyed so a rerun
		// (after the first run's rollback) writes the same state.
		stored, storedReceipt, created = nil, nil, false
		if id := tx.Bucket(bucketIdempotency).Get(idem); id != nil {
			s, err := getSubmission(tx.Tx, string(id))
			if err != nil {
				return err
			}
			stored = s
			storedReceipt, err = db.known.unpack(tx.Bucket(bucketCases).Get(receiptKey(s.ID, receiptKind)))
			if err != nil {
				return err
			}
			return nil
		}
		if tx.Bucket(bucketCases).Get(recordKey(sub.ID)) != nil {
			return fmt.Errorf("%w: submission id %s exists", ErrConflict, sub.ID)
		}
		if err := putEncoded(tx, sub, record); err != nil {
			return err
		}
		if err := tx.bucket(bucketIdempotency).Put(idem, []byte(sub.ID)); err != nil {
			return err
		}
		if err := tx.bucket(bucketCases).Put(receiptKey(sub.ID, receiptKind), packedReceipt); err != nil {
			return err
		}
		if err := appendEvents(tx, sub.ID, events); err != nil {
			return err
		}
		for _, l := range rows {
			if err := writeRow(tx, l); err != nil {
				return err
			}
		}
		if len(small) > 0 {
			now := uint64(time.Now().UnixNano())
			for _, b := range small {
				binary.BigEndian.PutUint64(b.value, now)
				if err := tx.bucket(bucketBlobs).PutAlone(b.key, b.value); err != nil {
					return err
				}
			}
		}
		stored, storedReceipt, created = sub, receipt, true
		return nil
	})
	if err != nil {
		return nil, nil, false, fmt.Errorf("store: create: %w", err)
	}
	if created { // a repeat returns before the rows are written
		db.known.durable(rows)
	}
	return stored, storedReceipt, created, nil
}

// FindByMessage returns the submission a sender made with a message id.
func (db *DB) FindByMessage(sender, messageID string) (*submission.Submission, error) {
	var s *submission.Submission
	err := db.view(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketIdempotency).Get(idempotencyKey(sender, messageID))
		if id == nil {
			return ErrNotFound
		}
		var err error
		s, err = getSubmission(tx, string(id))
		return err
	})
	return s, err
}

// Get returns one submission.
func (db *DB) Get(id string) (*submission.Submission, error) {
	var s *submission.Submission
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		s, err = db.record(tx, id)
		return err
	})
	return s, err
}

// Update reads a submission, lets fn change it and name the events that record the
// change, and writes both in one transaction. Every change has its events: fn
// returning no events writes nothing (a no-op costs no fsync); fn returning an error
// aborts. The outbox follows the new state: an entry exists exactly while the
// submission still needs a delivery attempt.
func (db *DB) Update(id string, fn func(s *submission.Submission) ([]submission.Event, error)) (*submission.Submission, error) {
	s, _, err := db.change(id, "", nil, fn, nil)
	return s, err
}

// UpdateRedacting implements Store: Update that rewrites, in its transaction,
// the case's earlier events that redact changes (the keys stay, and so do the
// sequence numbers). The old values are in free pages afterwards: WipeFree.
func (db *DB) UpdateRedacting(id string, fn func(s *submission.Submission) ([]submission.Event, error), redact func(e *submission.Event) bool) (*submission.Submission, error) {
	s, _, err := db.change(id, "", nil, fn, redact)
	return s, err
}

// UpdateWithReceipt is Update that also stores a receipt of the given kind in the
// same transaction, if fn recorded a change. Two racing writers (a push confirmation
// and a pull by the office) can both sign a receipt; only the one whose change wins
// leaves its receipt, so the receipt always matches the event log.
func (db *DB) UpdateWithReceipt(id, kind string, receipt []byte, fn func(s *submission.Submission) ([]submission.Event, error)) (*submission.Submission, bool, error) {
	return db.change(id, kind, receipt, fn, nil)
}

func (db *DB) change(id, kind string, receipt []byte, fn func(s *submission.Submission) ([]submission.Event, error), redact func(e *submission.Event) bool) (*submission.Submission, bool, error) {
	var packedReceipt []byte
	if receipt != nil {
		packedReceipt = db.packCerts(receipt, pack)
	}
	// The work is done outside the commit first: read the record, apply fn, encode
	// the result. Transactions run one after another in the committer's goroutine,
	// and decoding and encoding a record there (zstd and JSON, twice per delivery)
	// made every writer wait for them in turn. Inside the transaction the stored
	// value is compared with the one read: unchanged, the result stands; changed
	// meanwhile (a racing writer), fn runs again on the current record. A read that
	// ends without a change (fn's error, no events, no such record) is the answer
	// as of that read, with no commit to wait for.
	var raw []byte
	err := db.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCases).Get(recordKey(id))
		if v == nil {
			return fmt.Errorf("submission %s: %w", id, ErrNotFound)
		}
		raw = copyBytes(v)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	s, newer := db.recent.get(id, raw)
	if s == nil {
		if s, newer, err = decodeRecord(id, raw); err != nil {
			return nil, false, err
		}
		db.recent.put(id, raw, s, newer) // a clone: fn changes s
	}
	// A record a newer build wrote keeps the keys this one does not know
	// (keepjson), unless the change erases: what those keys hold is not known.
	keep := func(newer bool, stored []byte) []byte {
		if newer && redact == nil {
			return stored
		}
		return nil
	}
	evs, err := fn(s)
	if err != nil {
		return nil, false, err
	}
	if len(evs) == 0 {
		return s, false, nil
	}
	s.UpdatedAt = time.Now().UTC()
	enc, err := encodeRecord(s, keep(newer, raw))
	if err != nil {
		return nil, false, err
	}

	var out *submission.Submission
	changed := false
	// Group commit, as Create: concurrent deliveries, confirmations and decisions
	// share fsyncs. The committer may run this again after a rolled-back batch (the
	// contract allows that), so what it reports is reset first.
	err = db.batch(func(tx *wtx) error {
		out, changed = nil, false
		cur, curEvs, curEnc := s, evs, enc
		if v := tx.Bucket(bucketCases).Get(recordKey(id)); !bytes.Equal(v, raw) {
			var stored []byte
			var newer bool
			var err error
			if cur, stored, newer, err = db.recordAsStored(tx.Tx, id); err != nil {
				return err
			}
			if curEvs, err = fn(cur); err != nil {
				return err
			}
			if len(curEvs) == 0 {
				out = cur
				return nil
			}
			cur.UpdatedAt = time.Now().UTC()
			if curEnc, err = encodeRecord(cur, keep(newer, stored)); err != nil {
				return err
			}
		}
		out, changed = cur, true
		if err := putEncoded(tx, cur, curEnc); err != nil {
			return err
		}
		if receipt != nil {
			if err := tx.bucket(bucketCases).Put(receiptKey(id, kind), packedReceipt); err != nil {
				return err
			}
		}
		if redact != nil {
			if err := redactEvents(tx, id, redact); err != nil {
				return err
			}
		}
		return appendEvents(tx, id, curEvs)
	})
	if err != nil {
		return nil, false, err
	}
	if changed {
		db.recent.forget(id)
	}
	return out, changed, nil
}

// Receipt returns a stored receipt.
func (db *DB) Receipt(id, kind string) ([]byte, error) {
	var out []byte
	err := db.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCases).Get(receiptKey(id, kind))
		if v == nil {
			return ErrNotFound
		}
		var err error
		out, err = db.known.unpack(v)
		return err
	})
	return out, err
}

// Events returns a submission's event log, oldest first.
func (db *DB) Events(id string) ([]submission.Event, error) {
	var out []submission.Event
	err := db.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketCases).Get(recordKey(id)) == nil {
			return ErrNotFound
		}
		var err error
		out, err = eventsIn(tx, id)
		return err
	})
	return out, err
}

// GetWithEvents implements Store: the record and its events in one read
// transaction.
func (db *DB) GetWithEvents(id string) (*submission.Submission, []submission.Event, error) {
	var s *submission.Submission
	var out []submission.Event
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		if s, err = db.record(tx, id); err != nil {
			return err
		}
		out, err = eventsIn(tx, id)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return s, out, nil
}

// eventsIn reads the event log of id, oldest first, in tx.
func eventsIn(tx *bolt.Tx, id string) ([]submission.Event, error) {
	var out []submission.Event
	prefix := caseKey(id, tagEvent)
	c := tx.Bucket(bucketCases).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var e submission.Event
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("store: event %x: %w", k, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Outbox lists the ids of submissions that still need a delivery attempt.
func (db *DB) Outbox() ([]string, error) { return db.keys(bucketOutbox) }

// HandedOver lists the submissions handed over to a channel whose office has
// not confirmed yet, with their entries' values.
func (db *DB) HandedOver() ([]Waiting, error) {
	var out []Waiting
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHandedOver).ForEach(func(k, v []byte) error {
			out = append(out, ParseWaiting(string(k), v))
			return nil
		})
	})
	return out, err
}

// Held lists the submissions that wait for a person, with each entry's value.
func (db *DB) Held() ([]Waiting, error) {
	var out []Waiting
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHeld).ForEach(func(k, v []byte) error {
			out = append(out, ParseWaiting(string(k), v))
			return nil
		})
	})
	return out, err
}

// Undecided lists the delivered submissions whose office's decision is still to
// come here, with each entry's value.
func (db *DB) Undecided() ([]Waiting, error) {
	var out []Waiting
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUndecided).ForEach(func(k, v []byte) error {
			out = append(out, ParseWaiting(string(k), v))
			return nil
		})
	})
	return out, err
}

// Waiting implements Store: the three indexes read in one transaction, so an
// entry that moved from one to another meanwhile is not named twice. Other
// offices' entries are compared in place, not copied.
func (db *DB) Waiting(officeID string) ([]Waiting, error) {
	var out []Waiting
	err := db.view(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketOutbox, bucketHandedOver, bucketHeld} {
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				if WaitingFor(v, officeID) {
					out = append(out, ParseWaiting(string(k), v))
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	// An id is in at most one index at a time; sorted, the three lists are one.
	slices.SortFunc(out, func(a, b Waiting) int { return strings.Compare(a.ID, b.ID) })
	return out, err
}

// indexHeld fills the held index of a file written before it existed, once.
func indexHeld(tx *bolt.Tx) error {
	_, err := fillSet(tx, setHeld)
	return err
}

// fillSet puts every record that belongs in set into its bucket, with its value,
// and returns how many: a one-time fill at open of an index that a file written
// before it lacks (Reindex repairs one that an older build let drift).
func fillSet(tx *bolt.Tx, set waitingSet) (int, error) {
	b, n := tx.Bucket(set.bucket), 0
	err := forEachRecord(tx, func(id string, v []byte) error {
		s, err := decodeSubmission(id, v)
		if err != nil {
			return err
		}
		if set.in(s) {
			n++
			return b.Put([]byte(id), WaitingValue(s))
		}
		return nil
	})
	return n, err
}

// indexUndecided fills the undecided index of a file written before it existed,
// once (Open creates the bucket in the same transaction). It reads every record,
// as indexHeld does; it writes only the few entries of cases that await a
// decision, so the transaction's dirty pages stay small.
func indexUndecided(tx *bolt.Tx, log *slog.Logger) error {
	tx.Bucket(bucketUndecided).FillPercent = 1
	n, err := fillSet(tx, setUndecided)
	if err == nil && log != nil && n > 0 {
		log.Info("store: indexed the delivered cases that await their office's decision, once", "cases", n)
	}
	return err
}

// indexReplies fills the reply index of a file written before it existed.
func indexReplies(tx *bolt.Tx) error {
	replies := tx.Bucket(bucketReplies)
	return forEachRecord(tx, func(id string, v []byte) error {
		s, err := decodeSubmission(id, v)
		if err != nil {
			return err
		}
		for _, r := range s.Replies {
			if r.MessageID != "" {
				if err := replies.Put(replyKey(r.MessageID, s.ID), nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// indexFollowUps fills the index of Nachreichungen of a file written before it
// existed (by a build that already kept Submission.CaseID).
func indexFollowUps(tx *bolt.Tx) error {
	followUps := tx.Bucket(bucketFollowUps)
	return forEachRecord(tx, func(id string, v []byte) error {
		s, err := decodeSubmission(id, v)
		if err != nil || s.CaseID == "" {
			return err
		}
		return followUps.Put(followUpKey(s.CaseID, s.ID), nil)
	})
}

// followUpKey is a Nachreichung's key in bucketFollowUps: its case's id, a zero
// byte (no id holds one: ids are the gateway's own), then its own id.
func followUpKey(caseID, id string) []byte { return []byte(caseID + "\x00" + id) }

// replyKey is a reply's key in bucketReplies: the message id hashed, so any id
// (XTA sets no bound on its length) makes a key of one size that no id can
// confuse with another, then the submission id.
func replyKey(messageID, id string) []byte {
	h := ReplyIndexHash(messageID)
	return append(h[:], id...)
}

// ReplyIndexHash is how both store implementations name a message id in their
// reply index.
func ReplyIndexHash(messageID string) [sha256.Size]byte {
	return sha256.Sum256([]byte("reply\x00" + messageID))
}

// RepliesByMessage returns the ids of the submissions that hold a reply with
// this message id (Reply.MessageID), in id order; none: an empty list.
func (db *DB) RepliesByMessage(messageID string) ([]string, error) {
	h := ReplyIndexHash(messageID)
	return db.idsUnder(bucketReplies, h[:])
}

// idsUnder returns what follows prefix in the keys of bucket that begin with
// it — the submission ids of an index keyed by something, then the id — in key
// order.
func (db *DB) idsUnder(bucket, prefix []byte) ([]string, error) {
	var ids []string
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			ids = append(ids, string(k[len(prefix):]))
		}
		return nil
	})
	return ids, err
}

// FollowUps returns the ids of the Nachreichungen to the case caseID (the
// submissions whose CaseID it is), in id order; none: an empty list.
func (db *DB) FollowUps(caseID string) ([]string, error) {
	return db.idsUnder(bucketFollowUps, followUpKey(caseID, ""))
}

func (db *DB) keys(bucket []byte) ([]string, error) {
	var ids []string
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	return ids, err
}

// WalkOffice calls fn for the submissions addressed to an office, oldest first,
// starting after the submission id `after` (for paging), until fn returns false.
func (db *DB) WalkOffice(officeID, after string, fn func(*submission.Submission) bool) error {
	// In chunks of scanChunk cases, as Scan: a search of an office's list that
	// matches little reads all its cases.
	prefix := officeKey(officeID, "")
	return db.viewInChunks(func(tx *bolt.Tx) (bool, error) {
		c := tx.Bucket(bucketByOffice).Cursor()
		n := 0
		for k, _ := c.Seek(officeKey(officeID, after)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := string(k[len(prefix):])
			if id == after {
				continue
			}
			if scanChunk > 0 && n == scanChunk {
				return true, nil
			}
			s, err := getSubmission(tx, id)
			after, n = id, n+1
			if errors.Is(err, ErrNotFound) || err == nil && s.OfficeID != officeID {
				// An entry no record accounts for (a disk fault, a bug; `store
				// reindex` removes it) neither fails the office's whole list nor
				// hands it another office's case, as in the JetStream store.
				continue
			}
			if err != nil {
				return false, err
			}
			if !fn(s) {
				return false, nil
			}
		}
		return false, nil
	})
}

// Delete implements Store.
//
// Deletes share fsyncs (the store's group commit), so a retention run can delete many
// records at once; the transaction only removes keys, so running it again after a
// rolled-back batch is harmless.
func (db *DB) Delete(id string) error {
	defer db.recent.forget(id)
	return db.batch(func(tx *wtx) error {
		s, err := getSubmission(tx.Tx, id)
		if err != nil {
			return err
		}
		if v := tx.Bucket(bucketIdempotency).Get(idempotencyKey(s.Sender, s.MessageID)); string(v) == id {
			if err := tx.bucket(bucketIdempotency).Delete(idempotencyKey(s.Sender, s.MessageID)); err != nil {
				return err
			}
		}
		for _, set := range waitingSets {
			if err := tx.bucket(set.bucket).Delete([]byte(id)); err != nil {
				return err
			}
		}
		if s.OfficeID != "" {
			if err := tx.bucket(bucketByOffice).Delete(officeKey(s.OfficeID, id)); err != nil {
				return err
			}
		}
		for _, r := range s.Replies {
			if r.MessageID != "" {
				if err := tx.bucket(bucketReplies).Delete(replyKey(r.MessageID, id)); err != nil {
					return err
				}
			}
		}
		if s.CaseID != "" {
			if err := tx.bucket(bucketFollowUps).Delete(followUpKey(s.CaseID, id)); err != nil {
				return err
			}
		}
		// The record, its events and its receipts: every key of the case.
		prefix := casePrefix(id)
		c := tx.Bucket(bucketCases).Cursor()
		var keys [][]byte
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, copyBytes(k))
		}
		for _, k := range keys {
			if err := tx.bucket(bucketCases).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Scan calls fn for every submission (admin listings, statistics). fn must not block.
//
// It reads scanChunk cases per read transaction, not all in one: bbolt cannot
// reuse a page freed while a reader is open, and it cannot grow its memory map
// until every reader has ended, so a commit that needs a bigger file waited for
// the whole scan. The retention's hourly scan of a million submissions read for
// 1 min 51 s from a file not in memory, and a writer beside it waited 88 s
// (docs/performance.md, "The retention's scan in chunks"). So Scan is no
// snapshot: a record that changes meanwhile is seen as it was or as it is, one
// created or deleted meanwhile may be seen or not, none twice.
func (db *DB) Scan(fn func(*submission.Submission) bool) error {
	errStop := errors.New("stop")
	var from []byte
	err := db.viewInChunks(func(tx *bolt.Tx) (bool, error) {
		var err error
		from, err = forRecordsFrom(tx, from, scanChunk, func(id string, v []byte) error {
			s, err := decodeSubmission(id, v)
			if err != nil {
				return err
			}
			if !fn(s) {
				return errStop
			}
			return nil
		})
		return from != nil, err
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// viewInChunks runs step in one read transaction after another until it reports
// that nothing more is to be read: how Scan, WalkOffice and the blob walk read a
// whole bucket without holding back writers (Scan says why). step keeps its own
// place between calls.
func (db *DB) viewInChunks(step func(tx *bolt.Tx) (more bool, err error)) error {
	for {
		var more bool
		err := db.view(func(tx *bolt.Tx) error {
			var err error
			more, err = step(tx)
			return err
		})
		if err != nil || !more {
			return err
		}
		if scanBetween != nil {
			scanBetween()
		}
	}
}

// scanBetween, when set (tests), runs between two read transactions of viewInChunks.
var scanBetween func()

// scanChunk is how many cases one read transaction of Scan reads: a few
// milliseconds' worth from memory, a fraction of a second from a cold disk.
var scanChunk = 256

func getSubmission(tx *bolt.Tx, id string) (*submission.Submission, error) {
	v := tx.Bucket(bucketCases).Get(recordKey(id))
	if v == nil {
		return nil, fmt.Errorf("submission %s: %w", id, ErrNotFound)
	}
	return decodeSubmission(id, v)
}

// decodeSubmission reads a stored record value, for a read that does not write
// it back (Scan, the index fills): whether it holds a newer build's keys does
// not matter there, and keepjson.Decode's decoder costs more than
// json.Unmarshal for each record of a walk over all of them.
func decodeSubmission(id string, v []byte) (*submission.Submission, error) {
	s, _, err := decodeWith(id, v, func(raw []byte, s any) (bool, error) { return false, json.Unmarshal(raw, s) })
	return s, err
}

// decodeRecord is decodeSubmission that also says whether the record holds
// keys a newer build wrote (keepjson.Decode): a rewrite keeps them
// (encodeRecord).
func decodeRecord(id string, v []byte) (*submission.Submission, bool, error) {
	return decodeWith(id, v, keepjson.Decode)
}

// decodeWith unpacks the stored record value v and decodes it with decode.
func decodeWith(id string, v []byte, decode func([]byte, any) (bool, error)) (*submission.Submission, bool, error) {
	var s submission.Submission
	raw, err := unpack(v)
	if err != nil {
		return nil, false, fmt.Errorf("store: decode submission %s: %w", id, err)
	}
	newer, err := decode(raw, &s)
	if err != nil {
		return nil, false, fmt.Errorf("store: decode submission %s: %w", id, err)
	}
	return &s, newer, nil
}

// encodeSubmission is a record as it is stored. Callers that know the record
// before the transaction encode it there: the transaction runs in the committer's
// one goroutine, where every microsecond is spent serially.
//
// The JSON is only compressed, so it is written into a scratch buffer; the stored
// bytes are pack's (or a copy, when packing does not help).
func encodeSubmission(s *submission.Submission) ([]byte, error) {
	return encodeRecord(s, nil)
}

// encodeRecord is encodeSubmission that, given the value a newer build stored
// (decodeRecord said so), keeps the keys of it this build does not know.
func encodeRecord(s *submission.Submission, newer []byte) ([]byte, error) {
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	buf := bytes.NewBuffer((*bp)[:0])
	if err := json.NewEncoder(buf).Encode(s); err != nil { // as json.Marshal, plus a newline
		return nil, err
	}
	keepScratch(bp, buf.Bytes())
	v := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if newer != nil {
		old, err := unpack(newer)
		if err != nil {
			return nil, err
		}
		if v, err = keepjson.Merge(submissionType, old, v, recordKeys); err != nil {
			return nil, err
		}
	}
	p := pack(v)
	if len(p) == len(v) && &p[0] == &v[0] {
		p = bytes.Clone(v)
	}
	return p, nil
}

var submissionType = reflect.TypeFor[submission.Submission]()

// recordKeys are the lists of a record whose elements keepjson matches by
// what they are, not by their place: a new plan (replan) puts the channels in
// another order or leaves one out, and a newer key of one channel went to
// the channel in its place. The JSON store's docKeys have them too.
var recordKeys = keepjson.Keys{reflect.TypeFor[submission.Target](): "channel"}

// scratch holds buffers for bytes that live only until they are packed: a
// record's JSON, a value with its certificates replaced by tokens.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// keepScratch keeps b, the scratch buffer as its user grew it, for the next use;
// one grown beyond 1 MiB (a big inline package) is left to the collector.
func keepScratch(bp *[]byte, b []byte) {
	if cap(b) <= 1<<20 {
		*bp = b[:0]
	}
}

// putEncoded writes record s, encoded as v, with its index and set entries.
func putEncoded(tx *wtx, s *submission.Submission, v []byte) error {
	if err := tx.bucket(bucketCases).Put(recordKey(s.ID), v); err != nil {
		return err
	}
	return putIndexes(tx, s, nil)
}

// index keeps id in a set bucket exactly while in is true, with the value v. It
// writes only what changes: a Put or Delete dirties the key's page, present or
// not, and the value changes only on an erasure (or once for an entry written
// before values were kept).
func index(b wbucket, id string, in bool, v []byte) (change, error) {
	k := []byte(id)
	ck, cv := b.b.Cursor().Seek(k)
	there := ck != nil && bytes.Equal(ck, k)
	switch {
	case in && there && bytes.Equal(cv, v), !in && !there:
		return unchanged, nil
	case in:
		c := added
		if there {
			c = rewritten
		}
		return c, b.Put(k, v)
	}
	return removed, b.Delete(k)
}

// keyExists tells a set member (an empty value) from a missing key, which Get cannot.
func keyExists(c *bolt.Cursor, k []byte) bool {
	ck, _ := c.Seek(k)
	return ck != nil && bytes.Equal(ck, k)
}

func appendEvents(tx *wtx, id string, evs []submission.Event) error {
	b, numbers := tx.bucket(bucketCases), tx.Bucket(bucketEvents)
	for i := range evs {
		seq, err := numbers.NextSequence()
		if err != nil {
			return err
		}
		e := evs[i]
		e.Seq = seq
		e.SubmissionID = id
		if e.At.IsZero() {
			e.At = time.Now().UTC()
		}
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(caseKey(id, tagEvent), seq), v); err != nil {
			return err
		}
	}
	return nil
}

// redactEvents rewrites the stored events of case id that redact changes
// (UpdateRedacting): only their Detail and Note, under their own keys. An
// event a newer build wrote with keys this one does not know is written again
// without them, changed or not: an erasure cannot know what they hold
// (keepjson; the record's are dropped likewise).
func redactEvents(tx *wtx, id string, redact func(e *submission.Event) bool) error {
	type rewrite struct{ k, v []byte }
	var out []rewrite
	prefix := caseKey(id, tagEvent)
	c := tx.Bucket(bucketCases).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var e submission.Event
		newer, err := keepjson.Decode(v, &e)
		if err != nil {
			return fmt.Errorf("store: event %x: %w", k, err)
		}
		r := e
		if redact(&r) && (r.Detail != e.Detail || r.Note != e.Note) {
			e.Detail, e.Note = r.Detail, r.Note
		} else if !newer {
			continue
		}
		nv, err := json.Marshal(e)
		if err != nil {
			return err
		}
		out = append(out, rewrite{copyBytes(k), nv})
	}
	// Written after the walk: a Put moves what a cursor walks.
	for _, w := range out {
		if err := tx.bucket(bucketCases).Put(w.k, w.v); err != nil {
			return err
		}
	}
	return nil
}

func idempotencyKey(sender, messageID string) []byte {
	return []byte(sender + "\x00" + messageID)
}

// A case's keys in bucketCases: the id's length (a uvarint: one byte below
// 128), the id, a tag, and for an event its sequence number (8 bytes,
// big-endian), for a receipt its kind. The length first makes the id's end
// unambiguous whatever bytes follow it; ids are UUIDv7s of one length, so the
// keys stay in time order and a new case lands at the end of the tree, its
// record, events and receipts on one path.
const (
	tagRecord  byte = 0
	tagEvent   byte = 1
	tagReceipt byte = 2
)

// casePrefix is what every key of case id starts with.
func casePrefix(id string) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(id)+9)
	return append(binary.AppendUvarint(k, uint64(len(id))), id...)
}

func caseKey(id string, tag byte) []byte { return append(casePrefix(id), tag) }

func recordKey(id string) []byte { return caseKey(id, tagRecord) }

func receiptKey(id, kind string) []byte { return append(caseKey(id, tagReceipt), kind...) }

// splitCaseKey returns the id and tag of a key in bucketCases.
func splitCaseKey(k []byte) (id []byte, tag byte, rest []byte, err error) {
	n, w := binary.Uvarint(k)
	if w <= 0 || uint64(len(k)-w) < n+1 {
		return nil, 0, nil, fmt.Errorf("store: malformed case key %x", k)
	}
	end := w + int(n)
	return k[w:end], k[end], k[end+1:], nil
}

// forEachRecord calls fn with every record in bucketCases, in id order, skipping
// each case's events and receipts with one seek. v lives as long as tx.
func forEachRecord(tx *bolt.Tx, fn func(id string, v []byte) error) error {
	_, err := forRecordsFrom(tx, nil, 0, fn)
	return err
}

// forRecordsFrom is forEachRecord from the key from on (nil: the first), for at
// most limit cases (0: all); next is where the following call resumes, nil when
// the bucket is done.
func forRecordsFrom(tx *bolt.Tx, from []byte, limit int, fn func(id string, v []byte) error) (next []byte, err error) {
	c := tx.Bucket(bucketCases).Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	for n := 0; k != nil; n++ {
		if limit > 0 && n == limit {
			return copyBytes(k), nil
		}
		idb, tag, rest, err := splitCaseKey(k)
		if err != nil {
			return nil, err
		}
		id := string(idb)
		if tag == tagRecord && len(rest) == 0 {
			if err := fn(id, v); err != nil {
				return nil, err
			}
		}
		// The next case: past every key with this id's prefix.
		k, v = c.Seek(append(casePrefix(id), 0xff))
	}
	return nil, nil
}

func officeKey(office, id string) []byte { return []byte(office + "\x00" + id) }

func copyBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// Receipts and submission records are stored compressed: a signed receipt is about
// 2–3 KB of XML with a base64 signature and certificate, a record about 1.2 KB of
// JSON, and together they were most of the ~17 KB a submission took in the file
// (store.TestBytesPerSubmission, docs/performance.md). The first byte of a stored
// value says how: packedS2 and packedS2Certs for records and receipts (pack) and,
// in their header's flag byte, for inline blobs (inline.go); packedZstd and
// packedZstdCerts for what builds before 2026-12-03 wrote, packedDeflate for what
// builds before zstd wrote; anything else ('<' or '{', what the first versions
// wrote) is stored as it is.
//
// Why S2 and not zstd: for a 1–2 KB value zstd's fixed cost per call (its entropy
// tables, a 256 KB match table that falls out of the cache between calls)
// dominates: records and receipts were ~60 % of the gateway's zstd time, 6 % of its
// CPU, for a few hundred bytes each that S2, at a fifth of the cost, leaves more
// (docs/performance.md, "Small values in S2"). The package stayed zstd while that
// packed it into one page where S2 needed two; with the sender's certificate kept
// once (known.go) S2's package fits one page too, and zstd's ~90 µs per package,
// the store's largest CPU cost, became ~15 (docs/performance.md, "The package in
// S2").
const (
	packedDeflate = 0x01
	packedZstd    = 0x02
	// packedZstdCerts is zstd of the value with its known certificates replaced
	// (known.go); inline blobs were written so before 2026-12-03.
	packedZstdCerts = 0x03
	// packedS2 and packedS2Certs: S2 (github.com/klauspost/compress/s2), without
	// and with known certificates replaced; records, receipts and inline blobs are
	// written so.
	packedS2      = 0x04
	packedS2Certs = 0x05
)

// maxUnpacked bounds what a stored value may expand to: a corrupt or hostile value
// must not take the process's memory.
const maxUnpacked = 64 << 20

// zdec reads the zstd values of earlier builds; DecodeAll is safe for concurrent
// use and keeps its state in internal pools.
var zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(maxUnpacked))

// pack returns a record or receipt compressed (S2) behind its marker, or v itself
// when that is not smaller.
func pack(v []byte) []byte { return packInto(nil, v) }

// packInto is pack writing into buf's room (grown when short), for a caller that
// copies the result and keeps buf for the next use (inlineValue).
func packInto(buf, v []byte) []byte {
	n := 1 + s2.MaxEncodedLen(len(v))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	out := buf[:n]
	out[0] = packedS2
	out = out[:1+len(s2.Encode(out[1:], v))]
	if len(out) >= len(v) {
		return v
	}
	return out
}

// certsMarker is, for each packing, the marker of the same packing with known
// certificates replaced.
var certsMarker = map[byte]byte{packedS2: packedS2Certs, packedZstd: packedZstdCerts}

// packCerts is pack for a value that may hold known certificates: a
// receipt or a package.
//
// The shrunk copy lives only until it is packed (pack never returns a buffer that
// aliases its input unless it returns the input itself, which is not used), so it
// is a scratch buffer: it was 5 % of the gateway's allocations.
//
// own are learned certificates whose rows the caller's transaction writes
// (known.go): only those of the not yet durable ones are replaced.
func (db *DB) packCerts(v []byte, pack func([]byte) []byte, own ...learned) []byte {
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	if short, ok := db.known.shrink(*bp, v, own...); ok {
		keepScratch(bp, short)
		if p := pack(short); len(p) < len(short) {
			p[0] = certsMarker[p[0]]
			return p
		}
	}
	return pack(v)
}

// unpack reads what pack or packCerts wrote (or zstd, as earlier builds did), putting back the known
// certificates of ks (a nil ks for records, which never hold tokens).
func (ks *knownSet) unpack(v []byte) ([]byte, error) {
	if len(v) == 0 || !isPacked(v[0]) {
		return copyBytes(v), nil // stored as it was
	}
	return ks.unpackAs(v[0], v[1:])
}

// unpack reads a record.
func unpack(v []byte) ([]byte, error) { return (*knownSet)(nil).unpack(v) }

// isPacked reports whether b is one of the markers above.
func isPacked(b byte) bool { return b >= packedDeflate && b <= packedS2Certs }

// unpackAs decompresses p, packed as marker says, and puts known certificates back.
func (ks *knownSet) unpackAs(marker byte, p []byte) ([]byte, error) {
	for plain, certs := range certsMarker {
		if marker == certs {
			short, err := unpackAs(plain, p)
			if err != nil {
				return nil, err
			}
			return ks.expand(short)
		}
	}
	return unpackAs(marker, p)
}

// unpackAs decompresses p, packed as marker (packedS2, packedZstd, packedDeflate) says.
func unpackAs(marker byte, p []byte) ([]byte, error) {
	switch marker {
	case packedS2:
		if n, err := s2.DecodedLen(p); err != nil {
			return nil, fmt.Errorf("store: decompress: %w", err)
		} else if n > maxUnpacked {
			return nil, fmt.Errorf("store: decompress: %d bytes, more than a value may hold", n)
		}
		out, err := s2.Decode(nil, p)
		if err != nil {
			return nil, fmt.Errorf("store: decompress: %w", err)
		}
		return out, nil
	case packedZstd:
		out, err := zdec.DecodeAll(p, nil)
		if err != nil {
			return nil, fmt.Errorf("store: decompress: %w", err)
		}
		return out, nil
	case packedDeflate:
		out, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(p)), maxUnpacked))
		if err != nil {
			return nil, fmt.Errorf("store: inflate: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("store: value packed as %#x, which this build does not know", marker)
}
