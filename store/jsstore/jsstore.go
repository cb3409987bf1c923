// Package jsstore is store.Store on replicated JetStream storage, for cluster mode:
// no node holds the only copy, and any node can serve any submission.
//
// Layout (docs/cluster.md gives the reasons):
//
//   - one stream in KV layout (KV_<prefix>, subjects $KV.<prefix>.<key>, one value per
//     key), so `nats kv get <prefix> sub.<id>` works for operators. Keys:
//     sub.<id> the submission document (record + event log + receipts),
//     idem.<sha256(sender, message id)> the id created for a message,
//     office.<office>.<id> the office index, outbox.<id>, handed.<id> and held.<id>
//     the waiting sets (each value is store.WaitingValue: office, channel, erasure,
//     first fetch — an office's count of what waits reads no document),
//     undecided.<id> the delivered cases whose office's decision is still to come
//     (submission.AwaitsDecision; the same value);
//   - every change that touches more than one key is ONE atomic batch (JetStream
//     atomic batch publish, nats-server ≥ 2.12): all of its messages are stored or
//     none. Creates carry "expected last subject sequence 0" on the idempotency key
//     and the document, so exactly one Create per message wins cluster-wide; updates
//     carry the document's last sequence (optimistic concurrency) and rerun fn on a
//     conflict, which the store.Store contract allows;
//   - blob bytes in an Object Store bucket (<prefix>_blobs), chunked, named by their
//     SHA-256.
//
// A method returns only after the stream leader acknowledged, which for R3 means a
// quorum of servers has stored it. Reads go to the stream leader (direct get is off),
// so a read after an acknowledged write sees it.
package jsstore

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/internal/keepjson"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure the store. Zero values take the defaults.
type Options struct {
	// Replicas of the streams: 3 in a three-node cluster (a write is acknowledged by
	// a quorum of 2), 1 on a single server. Default 1.
	Replicas int
	// Prefix names the buckets: KV_<Prefix> and OBJ_<Prefix>_blobs. Default "amtsbote".
	// Letters, digits, '-' and '_'.
	Prefix string
	// Timeout bounds one store call including its retries (leader elections after a
	// server loss take seconds). Default 30 s.
	Timeout time.Duration
	// RequestTimeout bounds one request to the cluster. Default 5 s.
	RequestTimeout time.Duration
	// MaxRecordBytes bounds one submission document (record, newest events,
	// receipts) and, halved, one page of its older events. Default: the server's max
	// payload (1 MiB unless configured).
	MaxRecordBytes int
	// MarkerTTL is how long a removal marker (of a set key, or of anything Delete
	// removes) stays before the server drops it. Default 1 h.
	MarkerTTL time.Duration
}

var errFewerReplicas = errors.New("refusing to lower replicas")

// ErrTooLarge is returned when a submission document would exceed MaxRecordBytes
// even with its older events moved to pages, or one event alone would not fit a page.
var ErrTooLarge = errors.New("jsstore: submission document too large")

// Store is store.Store on JetStream. It is safe for concurrent use.
type Store struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	kv     jetstream.Stream
	bucket string
	blobs  *Blobs
	opts   Options
	stats  struct {
		conflicts, ambiguous, recognised, staleListings, newerDropped atomic.Int64
		// listedKeys counts the index keys the listings read (no metric: the
		// tests' measure of what a page of WalkOffice costs).
		listedKeys atomic.Int64
		// officeConsumers counts the listings of an office's index through a
		// consumer (the fallback of officeIDs' first listing; no metric).
		officeConsumers atomic.Int64
	}
	// waited times each write from sent to acknowledged (stored by the stream's
	// quorum), whatever its outcome.
	waited prometheus.Histogram
	// loseAck, set by tests, turns a successful write into a lost acknowledgement.
	loseAck func() bool
	// afterFillScan, set by tests (openWith), runs in indexOnce between the scan
	// of the records and the first put, with the index's name: another node's
	// change lands there.
	afterFillScan func(what string)
	// beforeLeaseWrite, set by tests, runs in TryLease between its read of the
	// lease and its write: another gateway's TryLease lands there.
	beforeLeaseWrite func()
	// beforeReindexWrite, set by tests, runs in reindexCase between its reads
	// of a case and its index keys and the batch that repairs them, with the
	// case's id: a gateway's write of the case lands there.
	beforeReindexWrite func(id string)
	// afterStrayScan, set by tests, runs in StrayEntries after its listing of
	// the index keys and its scan of the records, before the second listing
	// and the second look at each candidate: a gateway's write lands there.
	afterStrayScan func()
	// offices are the office indexes WalkOffice pages through (officelist.go).
	offices *officeLists
	// midListing, set by tests (storetest.Harness.MidListing), runs once in
	// the next listing of an index, after its first message (eachIn).
	midListing atomic.Pointer[func()]
}

// Stats counts what the retry loops saw, for metrics.
type Stats struct {
	// Conflicts: writes refused because another writer changed the key first (the
	// change was read again and fn rerun), and batches of an index fill at open
	// refused because another writer changed one of their records (indexOnce).
	// Not a lease another gateway took first (TryLease): that is the lease
	// doing its work, one race lost per gateway and period at most, and not a
	// write read again and rerun.
	Conflicts int64
	// Ambiguous: writes without an acknowledgement (timeouts, leader changes).
	Ambiguous int64
	// Recognised: ambiguous writes later found committed by their op id, so not
	// applied a second time.
	Recognised int64
	// StaleListings: index listings started again because the replica that served
	// them had not applied the latest writes yet (see ids), and blob listings the
	// stream's leader completed for the same reason (see Blobs.eachMeta).
	StaleListings int64
	// NewerDropped: documents written without the keys a newer build had
	// written into them (keepjson), because with them the document exceeded
	// MaxRecordBytes (encode).
	NewerDropped int64
}

// Collectors are the store's Prometheus histogram of write times, for the
// gateway to register.
func (s *Store) Collectors() []prometheus.Collector { return []prometheus.Collector{s.waited} }

// Stats returns the counters since Open.
func (s *Store) Stats() Stats {
	return Stats{Conflicts: s.stats.conflicts.Load(), Ambiguous: s.stats.ambiguous.Load(), Recognised: s.stats.recognised.Load(),
		StaleListings: s.stats.staleListings.Load(), NewerDropped: s.stats.newerDropped.Load()}
}

var _ store.Store = (*Store)(nil)

var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Open creates the streams if needed (or brings their replicas and settings to
// opts) and returns the store. It retries while the cluster has no meta leader yet.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	return openWith(ctx, js, opts, nil)
}

// openWith is Open that lets a test set the store's hooks (setup) before the
// index fills run.
func openWith(ctx context.Context, js jetstream.JetStream, opts Options, setup func(*Store)) (*Store, error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Prefix == "" {
		opts.Prefix = "amtsbote"
	}
	if !validPrefix.MatchString(opts.Prefix) {
		return nil, fmt.Errorf("jsstore: prefix %q: only letters, digits, - and _", opts.Prefix)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	if opts.MarkerTTL <= 0 {
		opts.MarkerTTL = time.Hour
	}
	nc := js.Conn()
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = int(nc.MaxPayload())
		if opts.MaxRecordBytes <= 0 {
			opts.MaxRecordBytes = 1 << 20
		}
	}
	s := &Store{nc: nc, js: js, bucket: opts.Prefix, opts: opts, offices: newOfficeLists(opts.MarkerTTL),
		waited: store.WriteWaitMetric("Time of one write from sent to stored by the stream's quorum (cluster mode), or to its failure.")}
	kvCfg := jetstream.StreamConfig{
		Name:               "KV_" + s.bucket,
		Description:        "amtsbote submissions, event logs, receipts, idempotency keys and indexes",
		Subjects:           []string{"$KV." + s.bucket + ".>"},
		MaxMsgsPerSubject:  1,
		MaxBytes:           -1,
		Discard:            jetstream.DiscardNew,
		Storage:            jetstream.FileStorage,
		Replicas:           opts.Replicas,
		AllowRollup:        true,
		DenyDelete:         true,
		AllowDirect:        false, // reads go to the leader: read-your-writes
		AllowAtomicPublish: true,
		AllowMsgTTL:        true,
		Duplicates:         2 * time.Minute,
	}
	objCfg := jetstream.StreamConfig{
		Name:        "OBJ_" + s.bucket + "_blobs",
		Description: "amtsbote package, attachment and reply bytes by SHA-256",
		Subjects:    []string{"$O." + s.bucket + "_blobs.C.>", "$O." + s.bucket + "_blobs.M.>"},
		MaxBytes:    -1,
		Discard:     jetstream.DiscardNew,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		AllowRollup: true,
		AllowDirect: false,
	}
	deadline := time.Now().Add(opts.Timeout)
	var err error
	for attempt := 0; ; attempt++ {
		err = s.ensure(ctx, kvCfg, objCfg)
		if err == nil || errors.Is(err, errFewerReplicas) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleep(ctx, backoff(attempt))
	}
	if err != nil {
		return nil, fmt.Errorf("jsstore: open: %w", err)
	}
	if setup != nil {
		setup(s)
	}
	if err := s.indexHeld(ctx); err != nil {
		return nil, fmt.Errorf("jsstore: open: %w", err)
	}
	if err := s.indexReplies(ctx); err != nil {
		return nil, fmt.Errorf("jsstore: open: %w", err)
	}
	if err := s.indexUndecided(ctx); err != nil {
		return nil, fmt.Errorf("jsstore: open: %w", err)
	}
	if err := s.indexFollowUps(ctx); err != nil {
		return nil, fmt.Errorf("jsstore: open: %w", err)
	}
	return s, nil
}

// indexHeld fills the held index of a bucket written before it existed, once: it
// puts the key of every held submission, then the marker that says so. Nodes
// opening at once do the same work and write the same keys.
//
// Other nodes may change a record between this node's scan and its put: a node
// that delivers a case the scan saw held removes held.<id> in the batch that
// changes the record, and an unconditional put after it brought the key back,
// for good (the held gauge and the admin list named a delivered case). So each
// put expects its record at the sequence the scan read (indexOnce); a put whose
// record moved is decided again from the record as it is now.
//
// (Nodes of an older build that still run beside this one do not keep the index:
// a package they hold meanwhile is missing from it until the next such run, which
// only a bucket without the marker gets — restart every node on the new build.)
func (s *Store) indexHeld(ctx context.Context) error {
	return s.indexOnce(ctx, s.heldIndexedKey(), "held submissions", func(sub *submission.Submission) []*nats.Msg {
		if sub.State == submission.StateHeld {
			return []*nats.Msg{putValue(s.heldKey(sub.ID), store.WaitingValue(sub))}
		}
		return nil
	})
}

// indexUndecided fills the undecided index the same way, with the same
// condition on each put (see indexHeld: a case decided on another node between
// the scan and the put would otherwise stay listed as undecided). Nodes of an
// older build running beside this one do not keep it: a case they deliver
// meanwhile is missing from it, one they decide stays in it, until `amtsbote
// store verify` names it — restart every node on the new build.
func (s *Store) indexUndecided(ctx context.Context) error {
	return s.indexOnce(ctx, s.undecidedIndexedKey(), "undecided submissions", func(sub *submission.Submission) []*nats.Msg {
		if sub.AwaitsDecision() {
			return []*nats.Msg{putValue(s.undecidedKey(sub.ID), store.WaitingValue(sub))}
		}
		return nil
	})
}

// indexReplies fills the reply index the same way (see indexHeld). A reply is
// never taken back, but a case deleted between the scan and the put would leave
// its reply keys naming a case that is gone: the condition keeps them out.
func (s *Store) indexReplies(ctx context.Context) error {
	return s.indexOnce(ctx, s.repliesIndexedKey(), "replies", func(sub *submission.Submission) []*nats.Msg {
		return s.replyPuts(sub, nil)
	})
}

// indexFollowUps fills the index of Nachreichungen by their case the same way
// (see indexHeld; the condition keeps out a case deleted meanwhile).
func (s *Store) indexFollowUps(ctx context.Context) error {
	return s.indexOnce(ctx, s.followUpsIndexedKey(), "Nachreichungen", func(sub *submission.Submission) []*nats.Msg {
		if sub.CaseID != "" {
			return []*nats.Msg{put(s.followUpKey(sub.CaseID, sub.ID))}
		}
		return nil
	})
}

// fillPut is one index key indexOnce puts and the record it follows from: the
// put may land only while sub.<id> is still at seq.
type fillPut struct {
	id  string
	seq uint64
	msg *nats.Msg // subject and value; the headers are set for each try
}

// indexOnce writes keys(sub) of every submission and then marker, unless marker
// is there already. Every put carries the expectation that its record is still
// at the sequence the scan listed (Nats-Expected-Last-Subject-Sequence on the
// record's subject, named by Nats-Expected-Last-Subject-Sequence-Subject; the
// server checks it for each message of an atomic batch): a node that changed the
// record meanwhile changed its index keys in the same batch, and the fill must
// not write over that. docs/architecture.md says why this and not another way.
func (s *Store) indexOnce(ctx context.Context, marker, what string, keys func(*submission.Submission) []*nats.Msg) error {
	c, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	_, err := s.last(c, marker)
	cancel()
	if err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("%s index marker: %w", what, err)
	}
	var puts []fillPut
	// A stale listing (a node catching up) would write the marker over an index
	// that lacks the records it missed, for good: list again, within Timeout.
	began := time.Now()
	for round := 0; ; round++ {
		puts = puts[:0]
		err := s.scan(func(sub *submission.Submission, seq uint64) bool {
			for _, m := range keys(sub) {
				puts = append(puts, fillPut{id: sub.ID, seq: seq, msg: m})
			}
			return true
		})
		if err == nil {
			break
		}
		if !errors.Is(err, ErrStaleListing) || time.Since(began) > s.opts.Timeout || !sleep(ctx, backoff(round)) {
			return fmt.Errorf("index %s: %w", what, err)
		}
	}
	if s.afterFillScan != nil {
		s.afterFillScan(what)
	}
	// In atomic batches of at most heldBatch puts, each its own request bounded by
	// RequestTimeout (a large store's first open must not run out of one overall
	// deadline). The marker goes last, with the last batch: the index is complete.
	for {
		n := min(len(puts), heldBatch)
		last := n == len(puts)
		m := ""
		if last {
			m = marker
		}
		if err := s.fillBatch(ctx, puts[:n], m, keys); err != nil {
			return fmt.Errorf("index %s: %w", what, err)
		}
		if last {
			return nil
		}
		puts = puts[n:]
	}
}

// fillTries bounds the tries of one batch of indexOnce. A conflict costs a try
// only when a record of the batch changed between its (re-)read and the write,
// which the re-read right before each try keeps short; past the bound the open
// fails and the gateway's restart tries again.
const fillTries = 8

// fillBatch writes one batch of indexOnce's puts, and marker after them unless
// it is "". A put is safe to repeat after a lost acknowledgement: the same
// value, under the same expectation. A conflict means that a record of the
// batch moved: its puts are decided again from the record as it is now (refill)
// and the batch is sent again, so one moved record costs one more try, never
// the open.
func (s *Store) fillBatch(ctx context.Context, batch []fillPut, marker string, keys func(*submission.Submission) []*nats.Msg) error {
	for attempt := 0; ; attempt++ {
		msgs := make([]*nats.Msg, 0, len(batch)+1)
		for _, p := range batch {
			// A new message for each try: write stamps the batch headers on what
			// it sends, and the batch may be shorter now.
			m := putValue(p.msg.Subject, p.msg.Data)
			m.Header.Set(hdrExpectedSubSeq, strconv.FormatUint(p.seq, 10))
			m.Header.Set(hdrExpectedSubSeqSubj, s.subKey(p.id))
			msgs = append(msgs, m)
		}
		if marker != "" {
			msgs = append(msgs, put(marker))
		}
		if len(msgs) == 0 {
			return nil
		}
		err := s.write(ctx, msgs)
		switch {
		case err == nil:
			return nil
		case attempt+1 == fillTries || !(errors.Is(err, errConflict) || errors.Is(err, errAmbiguous)):
			return err
		case !sleep(ctx, backoff(attempt)):
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		}
		if errors.Is(err, errConflict) {
			var rerr error
			if batch, rerr = s.refill(ctx, batch, keys); rerr != nil {
				return rerr
			}
		}
	}
}

// refill decides the puts of batch again after a conflict: those of a record
// still at the sequence they expect stay; a record that moved gives its puts
// from its current value and sequence, and those its keys no longer name (it is
// no longer held, decided, deleted) are dropped. A key the record names now but
// did not at the scan is not added: the change that made it so wrote it.
func (s *Store) refill(ctx context.Context, batch []fillPut, keys func(*submission.Submission) []*nats.Msg) ([]fillPut, error) {
	type now struct {
		seq  uint64
		keys map[string]*nats.Msg // nil: the record is gone
	}
	read := map[string]*now{}
	out := batch[:0:0]
	for _, p := range batch {
		r, ok := read[p.id]
		if !ok {
			r = &now{}
			d, seq, err := s.readDoc(ctx, p.id)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return nil, err
			case seq == p.seq:
				r.seq = seq // unchanged: its puts stay as they are
			default:
				r.seq, r.keys = seq, map[string]*nats.Msg{}
				for _, m := range keys(d.Sub) {
					r.keys[m.Subject] = m
				}
			}
			read[p.id] = r
		}
		switch {
		case r.seq == p.seq:
			out = append(out, p)
		case r.keys[p.msg.Subject] != nil:
			out = append(out, fillPut{id: p.id, seq: r.seq, msg: r.keys[p.msg.Subject]})
		}
	}
	return out, nil
}

// heldBatch is how many index keys one batch of indexOnce puts (the server takes
// at most 1000 messages in an atomic batch).
const heldBatch = 500

func (s *Store) ensure(ctx context.Context, cfgs ...jetstream.StreamConfig) error {
	var objStream jetstream.Stream
	for _, cfg := range cfgs {
		c, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		st, err := s.js.Stream(c, cfg.Name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			st, err = s.js.CreateStream(c, cfg)
		case err == nil:
			have := st.CachedInfo().Config
			if have.Replicas > cfg.Replicas {
				// One misconfigured node must not take copies away from all.
				cancel()
				return fmt.Errorf("%w: stream %s has %d replicas, this node asks for %d; lower it on purpose with the nats CLI",
					errFewerReplicas, cfg.Name, have.Replicas, cfg.Replicas)
			}
			if have.Replicas != cfg.Replicas || have.AllowDirect != cfg.AllowDirect || have.AllowAtomicPublish != cfg.AllowAtomicPublish ||
				have.AllowMsgTTL != cfg.AllowMsgTTL || have.MaxMsgsPerSubject != cfg.MaxMsgsPerSubject {
				st, err = s.js.UpdateStream(c, cfg)
			}
		}
		cancel()
		if err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
		if strings.HasPrefix(cfg.Name, "KV_") {
			s.kv = st
		} else {
			objStream = st
		}
	}
	c, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	obs, err := s.js.ObjectStore(c, s.bucket+"_blobs")
	if err != nil {
		return err
	}
	s.blobs = &Blobs{obs: obs, nc: s.nc, stream: objStream, bucket: s.bucket + "_blobs", opts: s.opts, stale: &s.stats.staleListings}
	return nil
}

// Close releases nothing the caller did not give: the connection stays the caller's.
func (s *Store) Close() error { return nil }

// Blobs returns the object store of package and attachment bytes.
func (s *Store) Blobs() store.BlobStore { return s.blobs }

// doc is what one sub.<id> key holds. It is bounded by MaxRecordBytes.
type doc struct {
	V   int                    `json:"v"`
	Sub *submission.Submission `json:"submission"`
	// Events are the newest events; the older ones are in Pages pages of their own
	// (see encode), oldest first.
	Events   []submission.Event `json:"events"`
	Pages    int                `json:"pages,omitempty"`
	Receipts map[string][]byte  `json:"receipts,omitempty"`
	// Ops are the ids of the latest writes, so a write whose acknowledgement was lost
	// (a server died after the commit) is recognised instead of applied twice.
	Ops []string `json:"ops,omitempty"`

	// newer is the document as read when a newer build wrote keys this one does
	// not know (readDoc, keepjson.Decode): encode keeps them, in the document and
	// in the events it moves to pages. update clears it for an erasure, which
	// cannot know what those keys hold.
	newer []byte
}

var (
	docType    = reflect.TypeFor[doc]()
	eventType  = reflect.TypeFor[submission.Event]()
	eventsType = reflect.TypeFor[[]submission.Event]()
	// docKeys: the document's newest events are matched by their sequence
	// number, not their place (encode moves the older ones to pages); the
	// record's targets by their channel, as the bbolt store's recordKeys (a
	// new plan puts them in another order).
	docKeys = keepjson.Keys{eventType: "seq", reflect.TypeFor[submission.Target](): "channel"}
)

const (
	docVersion = 1
	keepOps    = 32
	// spillEvents: a document whose receipts alone are large does not move every
	// change's events to a page of their own.
	spillEvents = 16
)

// keys

// encodeKey makes an id or office usable as one subject token: kept as is when it is
// letters, digits, - and _ (uuids), otherwise "=" + base64url, which no plain token
// starts with.
func encodeKey(s string) string {
	if s != "" && len(s) <= 128 && plainToken(s) {
		return s
	}
	return "=" + base64.RawURLEncoding.EncodeToString([]byte(s))
}

func decodeKey(tok string) (string, error) {
	if rest, ok := strings.CutPrefix(tok, "="); ok {
		b, err := base64.RawURLEncoding.DecodeString(rest)
		return string(b), err
	}
	return tok, nil
}

func plainToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s *Store) subject(key string) string { return "$KV." + s.bucket + "." + key }

func (s *Store) subKey(id string) string       { return s.subject("sub." + encodeKey(id)) }
func (s *Store) outboxKey(id string) string    { return s.subject("outbox." + encodeKey(id)) }
func (s *Store) handedKey(id string) string    { return s.subject("handed." + encodeKey(id)) }
func (s *Store) heldKey(id string) string      { return s.subject("held." + encodeKey(id)) }
func (s *Store) undecidedKey(id string) string { return s.subject("undecided." + encodeKey(id)) }

// eventsKey holds page n (from 1) of a submission's older events.
func (s *Store) eventsKey(id string, n int) string {
	return s.subject("events." + encodeKey(id) + "." + strconv.Itoa(n))
}

// heldIndexedKey marks a bucket whose held index is complete (see indexHeld).
func (s *Store) heldIndexedKey() string { return s.subject("meta.held_indexed") }

// undecidedIndexedKey marks a bucket whose undecided index is complete
// (indexUndecided).
func (s *Store) undecidedIndexedKey() string { return s.subject("meta.undecided_indexed") }

// repliesIndexedKey marks a bucket whose reply index is complete (indexReplies).
func (s *Store) repliesIndexedKey() string { return s.subject("meta.replies_indexed") }

// followUpsIndexedKey marks a bucket whose index of Nachreichungen is complete
// (indexFollowUps).
func (s *Store) followUpsIndexedKey() string { return s.subject("meta.followups_indexed") }

// followUpKey is a Nachreichung's key in the index by case: its case's id, then
// its own.
func (s *Store) followUpKey(caseID, id string) string {
	return s.followUpPrefix(caseID) + encodeKey(id)
}

func (s *Store) followUpPrefix(caseID string) string {
	return s.subject("followup." + encodeKey(caseID) + ".")
}

// replyKey is a reply's key in the reply index: the message id hashed (one
// token of one size for any id), then the submission id.
func (s *Store) replyKey(messageID, id string) string {
	return s.replyPrefix(messageID) + encodeKey(id)
}

func (s *Store) replyPrefix(messageID string) string {
	h := store.ReplyIndexHash(messageID)
	return s.subject("reply." + hex.EncodeToString(h[:]) + ".")
}

// replyPuts are the index keys of sub's replies with a message id that are not
// in had (message ids indexed before).
func (s *Store) replyPuts(sub *submission.Submission, had map[string]bool) []*nats.Msg {
	var msgs []*nats.Msg
	for _, r := range sub.Replies {
		if r.MessageID != "" && !had[r.MessageID] {
			msgs = append(msgs, put(s.replyKey(r.MessageID, sub.ID)))
		}
	}
	return msgs
}

func (s *Store) officeKey(o, id string) string {
	return s.subject("office." + encodeKey(o) + "." + encodeKey(id))
}
func (s *Store) idemKey(sender, messageID string) string {
	sum := sha256.Sum256([]byte(sender + "\x00" + messageID))
	return s.subject("idem." + hex.EncodeToString(sum[:]))
}

// reads

const (
	hdrKVOp           = "KV-Operation"
	hdrExpectedSubSeq = "Nats-Expected-Last-Subject-Sequence"
	// hdrExpectedSubSeqSubj names the subject hdrExpectedSubSeq is about when it
	// is not the message's own (indexOnce: an index key expects its record).
	hdrExpectedSubSeqSubj = "Nats-Expected-Last-Subject-Sequence-Subject"
	hdrTTL                = "Nats-TTL"
)

// last reads the value of one key from the stream leader. A deleted key is
// ErrMsgNotFound like a missing one.
func (s *Store) last(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	m, err := s.lastRaw(ctx, subject)
	if err == nil && removed(m) {
		return nil, jetstream.ErrMsgNotFound
	}
	return m, err
}

// removed reports whether m is a removal marker.
func removed(m *jetstream.RawStreamMsg) bool {
	op := m.Header.Get(hdrKVOp)
	return op == "DEL" || op == "PURGE"
}

// lastRaw is last that also returns a removal marker (whose sequence a write that
// takes the key again must expect).
func (s *Store) lastRaw(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		c, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		m, err := s.kv.GetLastMsgForSubject(c, subject)
		cancel()
		if err == nil {
			return m, nil
		}
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, err
		}
		lastErr = err
		if !transient(err) || ctx.Err() != nil {
			return nil, unavailable(err)
		}
		if !sleep(ctx, backoff(attempt)) {
			return nil, fmt.Errorf("%w: %w (last error: %v)", store.ErrUnavailable, ctx.Err(), lastErr)
		}
	}
}

// ErrNoLeader: the store's stream has no leader (a cluster without quorum).
var ErrNoLeader = errors.New("the store's stream has no leader")

// Reachable asks the store's stream for its state: with the cluster out of reach
// or without quorum (no leader) it fails, and a gateway is not ready. It is one
// small request, for a probe every few seconds.
//
// An answer alone does not say the stream has a leader: once a replica has been
// without one for a while (about 10 s), the server answers the info request
// itself, from its own copy, with an empty leader. Only a named leader counts.
// A stream of one replica, or on a server without a cluster, names the server.
func (s *Store) Reachable(ctx context.Context) error {
	info, err := s.kv.Info(ctx)
	if err != nil {
		return unavailable(err)
	}
	if info.Cluster != nil && info.Cluster.Leader == "" {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, ErrNoLeader)
	}
	return nil
}

// unavailable marks an error that a later try may not have (a timeout, no
// responders, a connection between servers) as store.ErrUnavailable.
func unavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) || !(transient(err) || errors.Is(err, nats.ErrConnectionClosed)) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

func (s *Store) readDoc(ctx context.Context, id string) (*doc, uint64, error) {
	m, err := s.last(ctx, s.subKey(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, fmt.Errorf("submission %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("jsstore: read %s: %w", id, err)
	}
	var d doc
	newer, err := keepjson.Decode(m.Data, &d)
	if err != nil || d.Sub == nil {
		return nil, 0, fmt.Errorf("jsstore: decode submission %s: %v", id, err)
	}
	if newer {
		d.newer = m.Data
	}
	return &d, m.Sequence, nil
}

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.Timeout)
}

// Get returns one submission.
func (s *Store) Get(id string) (*submission.Submission, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	d, _, err := s.readDoc(ctx, id)
	if err != nil {
		return nil, err
	}
	return d.Sub, nil
}

// FindByMessage returns the submission a sender made with a message id.
func (s *Store) FindByMessage(sender, messageID string) (*submission.Submission, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	m, err := s.last(ctx, s.idemKey(sender, messageID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("message %s of %s: %w", messageID, sender, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("jsstore: idempotency key: %w", err)
	}
	d, _, err := s.readDoc(ctx, string(m.Data))
	if err != nil {
		return nil, err
	}
	return d.Sub, nil
}

// RepliesByMessage returns the ids of the submissions that hold a reply with
// this message id, in id order.
func (s *Store) RepliesByMessage(messageID string) ([]string, error) {
	ids, err := s.ids(s.replyPrefix(messageID) + "*")
	slices.Sort(ids)
	return ids, err
}

// FollowUps returns the ids of the Nachreichungen to the case caseID, in id
// order.
func (s *Store) FollowUps(caseID string) ([]string, error) {
	ids, err := s.ids(s.followUpPrefix(caseID) + "*")
	slices.Sort(ids)
	return ids, err
}

// Receipt returns a stored receipt.
func (s *Store) Receipt(id, kind string) ([]byte, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	d, _, err := s.readDoc(ctx, id)
	if err != nil {
		return nil, err
	}
	r, ok := d.Receipts[kind]
	if !ok {
		return nil, fmt.Errorf("receipt %s of %s: %w", kind, id, store.ErrNotFound)
	}
	if r == nil {
		r = []byte{}
	}
	return r, nil
}

// readPage reads page n of a case's older events, and says whether it holds
// keys of a newer build (keepjson.Decode): an erasure writes such a page again
// without them (redactEvents).
func (s *Store) readPage(ctx context.Context, id string, n int) ([]submission.Event, bool, error) {
	m, err := s.last(ctx, s.eventsKey(id, n))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Pages are written with the document and removed with it: deleted since.
		return nil, false, fmt.Errorf("submission %s: events page %d: %w", id, n, store.ErrNotFound)
	}
	if err != nil {
		return nil, false, fmt.Errorf("jsstore: read events of %s, page %d: %w", id, n, err)
	}
	var page []submission.Event
	newer, err := keepjson.Decode(m.Data, &page)
	if err != nil {
		return nil, false, fmt.Errorf("jsstore: decode events of %s, page %d: %w", id, n, err)
	}
	return page, newer, nil
}

// Events returns a submission's event log, oldest first.
func (s *Store) Events(id string) ([]submission.Event, error) {
	_, evs, err := s.GetWithEvents(id)
	return evs, err
}

// GetWithEvents implements store.Store: the record and the log's newest
// events come from one document; the older pages it names were written
// before it and are only ever rewritten by a redaction (which changes an
// event's words, not which events there are).
func (s *Store) GetWithEvents(id string) (*submission.Submission, []submission.Event, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	d, _, err := s.readDoc(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if d.Pages == 0 {
		return d.Sub, d.Events, nil
	}
	var all []submission.Event
	for n := 1; n <= d.Pages; n++ {
		page, _, err := s.readPage(ctx, id, n)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, page...)
	}
	return d.Sub, append(all, d.Events...), nil
}

// writes

// Create stores a new submission with its first events, receipt, idempotency key and
// index entries in one atomic batch. Of concurrent Creates of the same (sender,
// message id) on any nodes exactly one wins; the others get its record and receipt.
func (s *Store) Create(ctx context.Context, sub *submission.Submission, events []submission.Event, receiptKind string, receipt []byte) (*submission.Submission, []byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	op := newID()
	d := &doc{V: docVersion, Sub: sub, Receipts: map[string][]byte{receiptKind: receipt}, Ops: []string{op}}
	appendEvents(d, events, time.Now().UTC())
	data, pages, err := s.encode(d)
	if err != nil {
		return nil, nil, false, err
	}
	idem := s.idemKey(sub.Sender, sub.MessageID)
	msgs := []*nats.Msg{
		expect(idem, []byte(sub.ID), 0),
		expect(s.subKey(sub.ID), data, 0),
	}
	msgs = append(msgs, pages...)
	if sub.OfficeID != "" {
		msgs = append(msgs, put(s.officeKey(sub.OfficeID, sub.ID)))
	}
	wv := store.WaitingValue(sub)
	if sub.State.Dispatchable() {
		msgs = append(msgs, putValue(s.outboxKey(sub.ID), wv))
	}
	if sub.State == submission.StateHandedOver {
		msgs = append(msgs, putValue(s.handedKey(sub.ID), wv))
	}
	if sub.State == submission.StateHeld {
		msgs = append(msgs, putValue(s.heldKey(sub.ID), wv))
	}
	if sub.AwaitsDecision() { // an imported record
		msgs = append(msgs, putValue(s.undecidedKey(sub.ID), wv))
	}
	msgs = append(msgs, s.replyPuts(sub, nil)...) // an imported record has its replies
	if sub.CaseID != "" {
		msgs = append(msgs, put(s.followUpKey(sub.CaseID, sub.ID)))
	}
	for attempt := 0; ; attempt++ {
		werr := s.write(ctx, msgs)
		if werr == nil {
			return sub, receipt, true, nil
		}
		if !errors.Is(werr, errConflict) && !errors.Is(werr, errAmbiguous) {
			return nil, nil, false, fmt.Errorf("jsstore: create: %w", werr)
		}
		// Someone holds the key (or our own write went through without an ack), or a
		// deleted submission left removal markers that the next try must expect.
		m, err := s.lastRaw(ctx, idem)
		switch {
		case err == nil && !removed(m):
			first, _, err := s.readDoc(ctx, string(m.Data))
			if err != nil {
				return nil, nil, false, fmt.Errorf("jsstore: create: first submission: %w", err)
			}
			if first.Sub.ID == sub.ID && slices.Contains(first.Ops, op) {
				if errors.Is(werr, errAmbiguous) {
					s.stats.recognised.Add(1)
				}
				return first.Sub, first.Receipts[receiptKind], true, nil
			}
			return first.Sub, first.Receipts[receiptKind], false, nil
		case err == nil:
			msgs[0].Header.Set(hdrExpectedSubSeq, strconv.FormatUint(m.Sequence, 10))
		case errors.Is(err, jetstream.ErrMsgNotFound):
			msgs[0].Header.Set(hdrExpectedSubSeq, "0")
		default:
			return nil, nil, false, fmt.Errorf("jsstore: create: %w", err)
		}
		sm, err := s.lastRaw(ctx, s.subKey(sub.ID))
		switch {
		case err == nil && !removed(sm):
			return nil, nil, false, fmt.Errorf("jsstore: create: %w: submission id %s exists", store.ErrConflict, sub.ID)
		case err == nil:
			msgs[1].Header.Set(hdrExpectedSubSeq, strconv.FormatUint(sm.Sequence, 10))
		case errors.Is(err, jetstream.ErrMsgNotFound):
			msgs[1].Header.Set(hdrExpectedSubSeq, "0")
		default:
			return nil, nil, false, fmt.Errorf("jsstore: create: %w", err)
		}
		// A competing batch was in flight and failed, or the cluster is electing a
		// leader: try again.
		wait := jitter(attempt)
		if errors.Is(werr, errAmbiguous) {
			wait = backoff(attempt)
		}
		if !sleep(ctx, wait) {
			return nil, nil, false, fmt.Errorf("jsstore: create: %w (last: %v)", ctx.Err(), werr)
		}
	}
}

// Update reads a submission, lets fn change it and name the events that record the
// change, and writes record, events and index changes all or nothing. A concurrent
// change of the same submission makes Update read again and rerun fn.
func (s *Store) Update(id string, fn func(s *submission.Submission) ([]submission.Event, error)) (*submission.Submission, error) {
	out, _, err := s.update(id, "", nil, fn, nil)
	return out, err
}

// UpdateRedacting implements store.Store: Update whose batch also rewrites the
// earlier events that redact changes, in the document and in the pages of older
// events (a page is written again whole, under its own key). The subjects keep
// one message each, so the old document and pages are removed by the write; their
// bytes stay in the nodes' block files and raft logs until NATS rewrites or cuts
// them (docs/operations.md, "Retention").
func (s *Store) UpdateRedacting(id string, fn func(s *submission.Submission) ([]submission.Event, error), redact func(e *submission.Event) bool) (*submission.Submission, error) {
	out, _, err := s.update(id, "", nil, fn, redact)
	return out, err
}

// UpdateWithReceipt is Update that also stores a receipt of the given kind, if fn
// recorded a change.
func (s *Store) UpdateWithReceipt(id, kind string, receipt []byte, fn func(s *submission.Submission) ([]submission.Event, error)) (*submission.Submission, bool, error) {
	return s.update(id, kind, receipt, fn, nil)
}

func (s *Store) update(id, kind string, receipt []byte, fn func(s *submission.Submission) ([]submission.Event, error), redact func(e *submission.Event) bool) (*submission.Submission, bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	op := newID()
	ambiguous := false
	var lastErr error
	for attempt := 0; ; attempt++ {
		d, seq, err := s.readDoc(ctx, id)
		if err != nil {
			return nil, false, err
		}
		if ambiguous && slices.Contains(d.Ops, op) {
			s.stats.recognised.Add(1)
			return d.Sub, true, nil // the earlier attempt was committed
		}
		wasOutbox, wasHanded, wasHeld, wasOffice := d.Sub.State.Dispatchable(), d.Sub.State == submission.StateHandedOver, d.Sub.State == submission.StateHeld, d.Sub.OfficeID
		wasCase := d.Sub.CaseID
		wasUndecided := d.Sub.AwaitsDecision()
		wasValue := store.WaitingValue(d.Sub)
		hadReplies := map[string]bool{}
		for _, r := range d.Sub.Replies {
			hadReplies[r.MessageID] = true
		}
		evs, err := fn(d.Sub)
		if err != nil {
			return nil, false, err
		}
		if len(evs) == 0 {
			return d.Sub, false, nil
		}
		var rewritten []*nats.Msg
		if redact != nil {
			d.newer = nil // an erasure keeps nothing it does not know (keepjson)
			// Before the new events join the document: they are not redact's.
			if rewritten, err = s.redactEvents(ctx, id, d, redact); err != nil {
				return nil, false, err
			}
		}
		now := time.Now().UTC()
		d.Sub.UpdatedAt = now
		appendEvents(d, evs, now)
		if receipt != nil {
			if d.Receipts == nil {
				d.Receipts = map[string][]byte{}
			}
			d.Receipts[kind] = receipt
		}
		d.Ops = append(d.Ops, op)
		if len(d.Ops) > keepOps {
			d.Ops = d.Ops[len(d.Ops)-keepOps:]
		}
		data, pages, err := s.encode(d)
		if err != nil {
			return nil, false, err
		}
		msgs := append([]*nats.Msg{expect(s.subKey(id), data, seq)}, pages...)
		msgs = append(msgs, rewritten...)
		// A set key is written when the submission enters or leaves the set, and
		// again when its value changes while in it (an erasure, a fallback, a first
		// fetch).
		wv := store.WaitingValue(d.Sub)
		changed := !bytes.Equal(wv, wasValue)
		for _, set := range []struct {
			key     string
			was, is bool
		}{
			{s.outboxKey(id), wasOutbox, d.Sub.State.Dispatchable()},
			{s.handedKey(id), wasHanded, d.Sub.State == submission.StateHandedOver},
			{s.heldKey(id), wasHeld, d.Sub.State == submission.StateHeld},
			{s.undecidedKey(id), wasUndecided, d.Sub.AwaitsDecision()},
		} {
			switch {
			case set.is && (!set.was || changed):
				msgs = append(msgs, putValue(set.key, wv))
			case set.was && !set.is:
				msgs = append(msgs, s.setMember(set.key, false))
			}
		}
		if o := d.Sub.OfficeID; o != "" && o != wasOffice {
			msgs = append(msgs, put(s.officeKey(o, id)))
		}
		msgs = append(msgs, s.replyPuts(d.Sub, hadReplies)...)
		if c := d.Sub.CaseID; c != "" && c != wasCase {
			msgs = append(msgs, put(s.followUpKey(c, id)))
		}
		err = s.write(ctx, msgs)
		switch {
		case err == nil:
			return d.Sub, true, nil
		case errors.Is(err, errConflict):
			// Another writer changed the submission: read again, rerun fn.
			if !sleep(ctx, jitter(attempt)) {
				return nil, false, fmt.Errorf("jsstore: update %s: %w (last: %v)", id, ctx.Err(), err)
			}
		case errors.Is(err, errAmbiguous):
			ambiguous = true
			lastErr = err
			if !sleep(ctx, backoff(attempt)) {
				// Not known whether it was written: the cluster did not answer.
				return nil, false, fmt.Errorf("jsstore: update %s: %w: %w (last: %v)", id, store.ErrUnavailable, ctx.Err(), lastErr)
			}
		default:
			return nil, false, fmt.Errorf("jsstore: update %s: %w", id, unavailable(err))
		}
	}
}

// redactEvents applies redact (UpdateRedacting) to the events of d, the
// document as read: those in it are changed in place, and each page of older
// events with an event redact changed is returned as a message that writes the
// page again, for the batch that writes d. The pages are those of the document
// read: they are written only in batches that also write the document, which
// expect its sequence. A page with keys of a newer build is written again
// without them, changed or not: an erasure cannot know what they hold
// (keepjson; the document's are dropped likewise, update).
func (s *Store) redactEvents(ctx context.Context, id string, d *doc, redact func(e *submission.Event) bool) ([]*nats.Msg, error) {
	one := func(e *submission.Event) bool {
		r := *e
		if !redact(&r) || (r.Detail == e.Detail && r.Note == e.Note) {
			return false
		}
		e.Detail, e.Note = r.Detail, r.Note
		return true
	}
	for i := range d.Events {
		one(&d.Events[i])
	}
	var msgs []*nats.Msg
	for n := 1; n <= d.Pages; n++ {
		page, newer, err := s.readPage(ctx, id, n)
		if err != nil {
			return nil, err
		}
		changed := newer
		for i := range page {
			if one(&page[i]) {
				changed = true
			}
		}
		if !changed {
			continue
		}
		data, err := json.Marshal(page)
		if err != nil {
			return nil, err
		}
		if len(data) > s.opts.MaxRecordBytes {
			return nil, fmt.Errorf("%w: submission %s: events page %d would be %d bytes, limit %d", ErrTooLarge, id, n, len(data), s.opts.MaxRecordBytes)
		}
		msgs = append(msgs, putValue(s.eventsKey(id, n), data))
	}
	return msgs, nil
}

// newID returns 22 random url-safe characters: op ids and batch ids.
func newID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// encode marshals d for the batch that writes it. A document past a quarter of
// MaxRecordBytes with more than a few events (or past half of it with any) moves all
// its events but the newest (which carries the sequence on) into new pages of at
// most half of MaxRecordBytes each, returned as messages for the same batch: a
// submission retried for weeks and redelivered by hand many times keeps recording
// its changes, and what each change rewrites stays small. (Before, such a document
// reached the limit, a delivery could no longer be recorded, and the package went
// to the office again and again.)
//
// Pages are written once and changed only by UpdateRedacting, so the event log's
// promise holds: no event is removed while the submission exists, and only the
// removal of the case's bytes changes one.
func (s *Store) encode(d *doc) ([]byte, []*nats.Msg, error) {
	events, pages := d.Events, d.Pages
	data, msgs, err := s.encodeOnce(d)
	if errors.Is(err, ErrTooLarge) && d.newer != nil {
		// The keys a newer build wrote made the document too large: without
		// them (as a build before keepjson wrote it) it may fit, and a write
		// refused for them would refuse every later change of the case too —
		// its delivery, its decision. Counted (Stats.NewerDropped).
		d.Events, d.Pages, d.newer = events, pages, nil
		s.stats.newerDropped.Add(1)
		return s.encodeOnce(d)
	}
	return data, msgs, err
}

// encodeOnce is encode with the newer build's keys as d has them.
func (s *Store) encodeOnce(d *doc) ([]byte, []*nats.Msg, error) {
	data, err := d.marshal()
	if err != nil {
		return nil, nil, err
	}
	var pages []*nats.Msg
	if n := len(d.Events); n > 1 && (len(data) > s.opts.MaxRecordBytes/4 && n > spillEvents || len(data) > s.opts.MaxRecordBytes/2) {
		older := d.Events[:len(d.Events)-1]
		limit := s.opts.MaxRecordBytes / 2
		page := []byte{'['}
		flush := func() {
			page[len(page)-1] = ']'
			m := nats.NewMsg(s.eventsKey(d.Sub.ID, d.Pages+len(pages)+1))
			m.Data = page
			pages = append(pages, m)
			page = []byte{'['}
		}
		encoded, err := d.pageEvents(older)
		if err != nil {
			return nil, nil, err
		}
		for _, b := range encoded {
			if len(b)+2 > limit {
				return nil, nil, fmt.Errorf("%w: submission %s: an event of %d bytes, page limit %d", ErrTooLarge, d.Sub.ID, len(b), limit)
			}
			if len(page)+len(b)+1 > limit {
				flush()
			}
			page = append(append(page, b...), ',')
		}
		flush()
		d.Pages += len(pages)
		d.Events = d.Events[len(older):]
		if data, err = d.marshal(); err != nil {
			return nil, nil, err
		}
	}
	if len(data) > s.opts.MaxRecordBytes {
		return nil, nil, fmt.Errorf("%w: submission %s would be %d bytes, limit %d", ErrTooLarge, d.Sub.ID, len(data), s.opts.MaxRecordBytes)
	}
	return data, pages, nil
}

// marshal is d's JSON, with the keys of a newer build's document kept.
func (d *doc) marshal() ([]byte, error) {
	data, err := json.Marshal(d)
	if err != nil || d.newer == nil {
		return data, err
	}
	return keepjson.Merge(docType, d.newer, data, docKeys)
}

// pageEvents is each of evs as a page holds it: this build's encoding, with
// the keys the newer build's document gave the same event (by sequence
// number, docKeys) kept.
func (d *doc) pageEvents(evs []submission.Event) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(evs))
	for i, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	if d.newer == nil {
		return out, nil
	}
	var stored struct {
		Events json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(d.newer, &stored); err != nil {
		return nil, err
	}
	cur, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	merged, err := keepjson.Merge(eventsType, stored.Events, cur, docKeys)
	if err != nil {
		return nil, err
	}
	var kept []json.RawMessage
	if err := json.Unmarshal(merged, &kept); err != nil {
		return nil, err
	}
	return kept, nil
}

func appendEvents(d *doc, evs []submission.Event, now time.Time) {
	var seq uint64
	if n := len(d.Events); n > 0 {
		seq = d.Events[n-1].Seq
	}
	for _, e := range evs {
		seq++
		e.Seq = seq
		e.SubmissionID = d.Sub.ID
		if e.At.IsZero() {
			e.At = now
		}
		d.Events = append(d.Events, e)
	}
}

func expect(subject string, data []byte, lastSeq uint64) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(hdrExpectedSubSeq, strconv.FormatUint(lastSeq, 10))
	return m
}

func put(subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	return m
}

// putValue puts a key with a value (a waiting set's, store.WaitingValue).
func putValue(subject string, v []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = v
	return m
}

// setMember puts a set key, or removes it with a marker the server drops after
// MarkerTTL (a removal inside an atomic batch cannot purge).
func (s *Store) setMember(subject string, in bool) *nats.Msg {
	m := nats.NewMsg(subject)
	if !in {
		m.Header.Set(hdrKVOp, "DEL")
		m.Header.Set(hdrTTL, s.opts.MarkerTTL.String())
	}
	return m
}

// Errors of write, classified for the retry loops.
var (
	// errConflict: an expected last sequence did not match; nothing was written.
	errConflict = errors.New("jsstore: concurrent change")
	// errAmbiguous: the write may or may not have been committed (no answer, or the
	// cluster is between leaders).
	errAmbiguous = errors.New("jsstore: no acknowledgement")
)

type pubAck struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	Error  *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error,omitempty"`
}

// JetStream error codes the retry loops tell apart.
const (
	codeWrongLastSeq         = 10071
	codeWrongLastSeqConstant = 10164
	codeBatchIncomplete      = 10176
	codeBatchTooManyInflight = 10210
)

// write sends msgs as one message or one atomic batch and waits for the
// acknowledgement, which comes after the stream's quorum stored the messages;
// a conflict counts in Stats.Conflicts.
func (s *Store) write(ctx context.Context, msgs []*nats.Msg) error {
	err := s.send(ctx, msgs)
	if errors.Is(err, errConflict) {
		s.stats.conflicts.Add(1)
	}
	return err
}

// send is write without counting a conflict: TryLease's, whose conflict is a
// lease another gateway took first (Stats.Conflicts). Its time and a missing
// acknowledgement are counted as every write's.
func (s *Store) send(ctx context.Context, msgs []*nats.Msg) error {
	t0 := time.Now()
	err := s.write1(ctx, msgs)
	s.waited.Observe(time.Since(t0).Seconds())
	switch {
	case err == nil && s.loseAck != nil && s.loseAck():
		err = fmt.Errorf("%w: acknowledgement dropped by test", errAmbiguous)
		fallthrough
	case errors.Is(err, errAmbiguous):
		s.stats.ambiguous.Add(1)
	}
	return err
}

func (s *Store) write1(ctx context.Context, msgs []*nats.Msg) error {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	last := msgs[len(msgs)-1]
	if len(msgs) > 1 {
		batch := newID()
		for i, m := range msgs {
			m.Header.Set("Nats-Batch-Id", batch)
			m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
			if m == last {
				m.Header.Set("Nats-Batch-Commit", "1")
				break
			}
			if err := s.nc.PublishMsg(m); err != nil {
				return fmt.Errorf("%w: %v", errAmbiguous, err)
			}
		}
	}
	return request(rctx, s.nc, last)
}

// request publishes one stream message (or the commit of a batch) and waits for the
// acknowledgement, classified for the retry loops: nil (stored), errConflict (an
// expected last sequence did not match: nothing was stored), errAmbiguous (maybe
// stored) or another error (refused).
func request(ctx context.Context, nc *nats.Conn, m *nats.Msg) error {
	_, err := requestSeq(ctx, nc, m)
	return err
}

// requestSeq is request that also returns the stored message's sequence.
func requestSeq(ctx context.Context, nc *nats.Conn, m *nats.Msg) (uint64, error) {
	resp, err := nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errAmbiguous, err)
	}
	var ack pubAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("%w: bad acknowledgement %q", errAmbiguous, resp.Data)
	}
	if ack.Error == nil {
		if ack.Seq == 0 {
			return 0, fmt.Errorf("%w: acknowledgement without sequence %q", errAmbiguous, resp.Data)
		}
		return ack.Seq, nil
	}
	e := ack.Error
	switch {
	case e.ErrCode == codeWrongLastSeq || e.ErrCode == codeWrongLastSeqConstant:
		return 0, fmt.Errorf("%w: %s", errConflict, e.Description)
	case e.ErrCode == codeBatchIncomplete || e.ErrCode == codeBatchTooManyInflight || e.Code >= 500:
		return 0, fmt.Errorf("%w: %s (%d)", errAmbiguous, e.Description, e.ErrCode)
	}
	return 0, fmt.Errorf("jsstore: write refused: %s (%d)", e.Description, e.ErrCode)
}

// transient reports whether a read error is worth retrying.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 500
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrDisconnected)
}

// backoff after a failure that may be a leader election: 50 ms doubling to 1 s.
func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 5)
	return min(d, time.Second) + time.Duration(rand.Int64N(int64(20*time.Millisecond)))
}

// jitter after a conflict: short and random, so competing writers spread out.
func jitter(attempt int) time.Duration {
	return time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 5)))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
