package jsstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"

	"github.com/amtsbote/amtsbote/internal/keepjson"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reindex: the cluster's `amtsbote store reindex`, beside serving gateways.
//
// A gateway keeps only the index keys its build knows (docs/cluster.md, "Index
// faults after an older build"): a case an older node decided keeps its
// undecided.<id> key, one it delivered gets none, a Nachreichung it took in has
// no followup key. `amtsbote store verify` names such faults (store/migrate);
// Reindex repairs them, as store.DB.Reindex does on a single node — but a
// cluster is not stopped for it, so every repair races the gateways' writes.
//
// How a repair cannot undo a gateway's write. Every write of a gateway that
// changes a case's index keys is one atomic batch that also writes the case's
// document, expecting the sequence it read (Create, update, Delete; the fills
// at open expect it unchanged without writing it). So "the document is still at
// the sequence I read" means "no gateway changed this case's keys since". A
// repair of case id therefore
//
//  1. reads sub.<id> with its sequence (a removal marker or nothing: the case
//     is gone, sequence the marker's or 0),
//  2. reads each index key it decides about with the key's own sequence,
//  3. decides from the record what each key must be (wantedKeys: the rule the
//     writes follow, same value),
//  4. writes its puts and removals as ONE atomic batch in which every message
//     expects its own key's sequence as read in 2, and a last message (a guard
//     on meta.reindex, dropped after MarkerTTL) expects sub.<id> at the
//     sequence read in 1 (Nats-Expected-Last-Subject-Sequence-Subject, which
//     the server checks for each message of a batch; indexOnce relies on it).
//
// The batch lands only if neither the record nor any key it touches moved
// since they were read, so what it writes is what the record said at the
// moment it landed. A gateway's write in between moves the document (and the
// key): the batch fails whole, and the repair reads again and decides again
// (reindexTries times; then it passes the case over and reports it changed
// meanwhile, and a second run takes it). So a repair never removes a key a
// gateway just wrote for a record that needs it — that write moved the record —
// and never adds one for a record that just left the state or was deleted,
// for the same reason. A gateway's write after the repair's batch expects only
// the document, which the repair does not change: the gateway never conflicts
// with a repair, and its batch moves the keys on from what the repair made
// them, which is what its record said before (the gateway's transitions are
// computed from that record). The idempotency key is the one key shared across
// cases (of one message): its own expectation keeps a Create of another case
// that claimed it meanwhile from being overwritten.
//
// Which cases to repair is found from a listing of every index key (values
// hashed, held in memory: see accounting for what that costs)
// and a scan of the records: a record whose keys the listing lacks or holds
// otherwise, and afterwards each listed key no scanned record accounted for
// (its case is gone, or names another office, case, reply or message). Both
// listings are older than the moment of the repair and only say where to look;
// each repair decides from what it reads then.

// Index numbers of the report, in the order store.DB.Reindex reports them.
const (
	ixOutbox = iota
	ixHanded
	ixHeld
	ixUndecided
	ixByOffice
	ixReplies
	ixFollowUps
	ixIdempotency
	ixCount
)

// reindexNames are the indexes' names in the report, those of the bbolt
// store's (store.IndexChanges), so `store reindex` prints one shape for both.
var reindexNames = [ixCount]string{"outbox", "handed_over", "held", "undecided", "by_office", "replies", "follow_ups", "idempotency"}

// reindexTries bounds the reads and batches of one case's repair: a batch fails
// only when a gateway changed the case between the repair's read and its write,
// and a case that keeps changing is left to a second run (ChangedMeanwhile).
const reindexTries = 5

// reindexGuardKey is the key the guard message of a repair's batch writes
// (outside every index and listing; each message leaves after MarkerTTL).
const reindexGuardKey = "meta.reindex"

// ReindexOptions configure Reindex.
type ReindexOptions struct {
	// DryRun decides every repair and counts it without writing.
	DryRun bool
	// Progress, if set, counts the records read and the index keys checked, for
	// a progress line while Reindex runs.
	Progress *store.ReindexProgress
}

// ReindexReport is store.ReindexReport (per index what was added, removed,
// rewritten) and the cases whose repair lost to gateways' writes reindexTries
// times in a row: passed over, a second run takes them.
type ReindexReport struct {
	store.ReindexReport
	ChangedMeanwhile []string
}

// indexKey is one index key: its subject, its index, and (in what a record
// wants) its value: store.WaitingValue for a waiting set, the id for an
// idempotency key, empty for the others.
type indexKey struct {
	subject string
	ix      int
	value   []byte
}

// wantedKeys are the index keys sub's writes keep, with their values: the same
// rule as Create and update (a set key exactly while the state is in the set,
// the office's key, one per reply message id, the case's, the message's).
func (s *Store) wantedKeys(sub *submission.Submission) []indexKey {
	id := sub.ID
	var out []indexKey
	wv := store.WaitingValue(sub)
	for _, set := range []struct {
		subject string
		ix      int
		in      bool
	}{
		{s.outboxKey(id), ixOutbox, sub.State.Dispatchable()},
		{s.handedKey(id), ixHanded, sub.State == submission.StateHandedOver},
		{s.heldKey(id), ixHeld, sub.State == submission.StateHeld},
		{s.undecidedKey(id), ixUndecided, sub.AwaitsDecision()},
	} {
		if set.in {
			out = append(out, indexKey{set.subject, set.ix, wv})
		}
	}
	if sub.OfficeID != "" {
		out = append(out, indexKey{s.officeKey(sub.OfficeID, id), ixByOffice, nil})
	}
	seen := map[string]bool{}
	for _, r := range sub.Replies {
		if r.MessageID != "" && !seen[r.MessageID] {
			seen[r.MessageID] = true
			out = append(out, indexKey{s.replyKey(r.MessageID, id), ixReplies, nil})
		}
	}
	if sub.CaseID != "" {
		out = append(out, indexKey{s.followUpKey(sub.CaseID, id), ixFollowUps, nil})
	}
	return append(out, indexKey{s.idemKey(sub.Sender, sub.MessageID), ixIdempotency, []byte(id)})
}

// valued reports whether the keys of index ix carry a value the record
// decides: the waiting sets' and the idempotency keys'. The others are set
// members, present or not, as in the bbolt store (putIndexes).
func valued(ix int) bool { return ix <= ixUndecided || ix == ixIdempotency }

// waitingKeys are the keys of id in the four waiting sets, which a repair
// always looks at: they are keyed by the id alone, and one left over from an
// earlier state is named by nothing else the record says.
func (s *Store) waitingKeys(id string) []indexKey {
	return []indexKey{{s.outboxKey(id), ixOutbox, nil}, {s.handedKey(id), ixHanded, nil}, {s.heldKey(id), ixHeld, nil}, {s.undecidedKey(id), ixUndecided, nil}}
}

// indexFilters are the subjects of every index key, by index.
func (s *Store) indexFilters() [ixCount]string {
	return [ixCount]string{
		s.subject("outbox.*"), s.subject("handed.*"), s.subject("held.*"), s.subject("undecided.*"),
		s.subject("office.*.*"), s.subject("reply.*.*"), s.subject("followup.*.*"), s.subject("idem.*"),
	}
}

// indexOf is the index of a listed key's subject.
func (s *Store) indexOf(subject string) int {
	rest := strings.TrimPrefix(subject, s.subject(""))
	for ix, p := range [ixCount]string{"outbox.", "handed.", "held.", "undecided.", "office.", "reply.", "followup.", "idem."} {
		if strings.HasPrefix(rest, p) {
			return ix
		}
	}
	return -1
}

// listedIndexKey is what the listing of the index keys held for one subject: its
// value's hash, and whether a scanned record accounted for it.
type listedIndexKey struct {
	value    uint64
	accounts bool
}

// accounting is what a listing of index keys and a scan of the records after
// it found: each listed key by its subject's hash, with its value's hash and
// whether a scanned record wants it (wantedKeys). Reindex and StrayEntries both
// decide from it which keys no record accounts for.
//
// Only hashes are kept, whatever the subjects' length: a map slot of 24 bytes
// (8 of key, 16 of value) and a control byte, at the load Go's map keeps, 37
// to 56 bytes a listed key — measured with Go 1.27 (a map of 1, 2 and 3
// million such entries after a GC: 53, 107 and 107 MB; the table doubles past
// about 3.7 million). A million cases hold an office key and an idempotency
// key each, a key per reply message id and per Nachreichung, and (Reindex
// only) a waiting key per case that waits: 2 to 3 million keys, some 110 MB,
// beside the listing's buffers. The earlier estimate here, 30 bytes a key and
// 100 MB for a million cases, was low.
type accounting struct {
	seed    maphash.Seed
	have    map[uint64]listedIndexKey
	records int
}

func (a *accounting) hash(b []byte) uint64 { return maphash.Bytes(a.seed, b) }

// account lists the index keys under filters (with their values, withValues)
// and then scans the records, marking in the listing every key a record wants;
// each record is handed to record (if set) after that, for what else the
// caller decides from it. A scan that came from a replica behind the stream
// (ErrStaleListing) may have missed records: both are read again.
func (s *Store) account(ctx context.Context, filters []string, withValues bool, progress *store.ReindexProgress,
	record func(a *accounting, sub *submission.Submission, wanted []indexKey)) (*accounting, error) {
	a := &accounting{seed: maphash.MakeSeed()}
	for round := 0; ; round++ {
		a.have = map[uint64]listedIndexKey{}
		if _, err := s.subjectsUnderAt(ctx, filters, withValues, func() { clear(a.have) }, func(subject string, v []byte) error {
			a.have[a.hash([]byte(subject))] = listedIndexKey{value: a.hash(v)}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("list the index keys: %w", err)
		}
		a.records = 0
		err := s.scan(func(sub *submission.Submission, _ uint64) bool {
			if ctx.Err() != nil {
				return false
			}
			a.records++
			progress.Records.Add(1)
			wanted := s.wantedKeys(sub)
			for _, k := range wanted {
				h := a.hash([]byte(k.subject))
				if e, ok := a.have[h]; ok && !e.accounts {
					e.accounts = true
					a.have[h] = e
				}
			}
			if record != nil {
				record(a, sub, wanted)
			}
			return true
		})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err == nil {
			return a, nil
		}
		if !errors.Is(err, ErrStaleListing) || round+1 >= staleRounds || !sleep(ctx, backoff(round)) {
			return nil, fmt.Errorf("read the records: %w", err)
		}
	}
}

// unaccountedKey is a listed index key no scanned record accounted for, with
// the case it names.
type unaccountedKey struct {
	id  string
	key indexKey
}

// unaccounted lists the keys under filters again (the accounting kept only
// hashes) and returns those a's listing held and no scanned record accounted
// for. A key written since a's listing is not in it: a gateway's, for a record
// the scan may not have seen, and none of these. Each is only where to look:
// its case, as it is then, decides it (decideCase).
func (s *Store) unaccounted(ctx context.Context, a *accounting, filters []string, progress *store.ReindexProgress) ([]unaccountedKey, error) {
	var out []unaccountedKey
	if _, err := s.subjectsUnderAt(ctx, filters, true, func() {}, func(subject string, v []byte) error {
		progress.Entries.Add(1)
		h := a.hash([]byte(subject))
		e, ok := a.have[h]
		if !ok || e.accounts {
			return nil
		}
		e.accounts = true // once, also when the listing starts again
		a.have[h] = e
		ix := s.indexOf(subject)
		id := string(v)
		if ix != ixIdempotency {
			var err error
			if id, err = decodeKey(subject[strings.LastIndexByte(subject, '.')+1:]); err != nil {
				return fmt.Errorf("jsstore: key %s: %w", subject, err)
			}
		}
		out = append(out, unaccountedKey{id, indexKey{subject: subject, ix: ix}})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list the index keys: %w", err)
	}
	return out, nil
}

// Reindex brings every index key in line with the records, beside serving
// gateways (see the comment at the top of this file for why that is safe), and
// reports per index what it added, removed and rewrote; on a sound store
// nothing, and a second run after a first nothing.
func (s *Store) Reindex(ctx context.Context, o ReindexOptions) (ReindexReport, error) {
	progress := o.Progress
	if progress == nil {
		progress = &store.ReindexProgress{}
	}
	var rep ReindexReport
	for _, n := range reindexNames {
		rep.Indexes = append(rep.Indexes, store.IndexChanges{Index: n})
	}
	filters := s.indexFilters()

	// The listing of the index keys, then the records: a record whose keys the
	// listing lacks or holds with another value is to be repaired. What was
	// repaired meanwhile is sound then.
	faulty := map[string]bool{}
	a, err := s.account(ctx, filters[:], true, progress, func(a *accounting, sub *submission.Submission, wanted []indexKey) {
		for _, k := range wanted {
			e, ok := a.have[a.hash([]byte(k.subject))]
			if !ok || valued(k.ix) && e.value != a.hash(k.value) {
				faulty[sub.ID] = true
			}
		}
		// A waiting key the record does not want: left over from an earlier
		// state (a case an older build decided, still undecided).
		for _, k := range s.waitingKeys(sub.ID) {
			h := a.hash([]byte(k.subject))
			if e, ok := a.have[h]; ok && !e.accounts {
				faulty[sub.ID] = true
				e.accounts = true // the repair of the record looks at it
				a.have[h] = e
			}
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return rep, err
		}
		return rep, fmt.Errorf("jsstore: reindex: %w", err)
	}
	rep.Records = a.records

	// A dry run writes nothing, so a case looked at twice (a record to repair
	// and a key naming it, or two such keys) would be counted twice: each key
	// counts once.
	counted := map[string]bool{}
	changed := func(id string, cs []keyChange, passed bool) {
		if passed {
			rep.ChangedMeanwhile = append(rep.ChangedMeanwhile, id)
		}
		for _, c := range cs {
			if o.DryRun {
				if counted[c.subject] {
					continue
				}
				counted[c.subject] = true
			}
			ix := &rep.Indexes[c.ix]
			switch c.c {
			case keyAdded:
				ix.Added++
			case keyRemoved:
				ix.Removed++
			case keyRewritten:
				ix.Rewritten++
			}
		}
	}
	for id := range faulty {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		cs, passed, err := s.reindexCase(ctx, id, nil, o.DryRun, progress)
		if err != nil {
			return rep, err
		}
		changed(id, cs, passed)
	}

	// The keys no scanned record accounted for: each is decided with its
	// case's repair, which removes it if the case, as it is then, does not
	// want it.
	strays, err := s.unaccounted(ctx, a, filters[:], progress)
	if err != nil {
		return rep, fmt.Errorf("jsstore: reindex: %w", err)
	}
	for _, st := range strays {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		cs, passed, err := s.reindexCase(ctx, st.id, []indexKey{st.key}, o.DryRun, progress)
		if err != nil {
			return rep, err
		}
		changed(st.id, cs, passed)
	}
	return rep, nil
}

// keyChange is what a repair did to one key.
type keyChange struct {
	subject string
	ix      int
	c       int8
}

const (
	keyAdded int8 = iota + 1
	keyRemoved
	keyRewritten
)

// reindexCase repairs the index keys of case id — those its record wants, its
// waiting keys, and extra (keys a listing found naming it) — as the comment at
// the top of this file says: decided from the record and the keys as read
// (decideCase), written in one batch that expects each of them unchanged. It
// returns what it changed; passed when gateways changed the case reindexTries
// times between the read and the write. A dry run decides once and writes
// nothing.
func (s *Store) reindexCase(ctx context.Context, id string, extra []indexKey, dryRun bool, progress *store.ReindexProgress) (changes []keyChange, passed bool, err error) {
	// The changes of a batch without an acknowledgement: if the next read finds
	// nothing to do, that batch most likely landed (or a gateway did the same).
	var unacked []keyChange
	for attempt := 0; attempt < reindexTries; attempt++ {
		d, err := s.decideCase(ctx, id, extra, false, progress)
		if err != nil {
			return nil, false, fmt.Errorf("jsstore: reindex %s: %w", id, err)
		}
		if len(d.msgs) == 0 {
			return unacked, false, nil
		}
		if dryRun {
			return d.changes, false, nil
		}
		if s.beforeReindexWrite != nil {
			s.beforeReindexWrite(id)
		}
		guard := nats.NewMsg(s.subject(reindexGuardKey))
		guard.Header.Set(hdrExpectedSubSeq, strconv.FormatUint(d.recSeq, 10))
		guard.Header.Set(hdrExpectedSubSeqSubj, s.subKey(id))
		guard.Header.Set(hdrTTL, s.opts.MarkerTTL.String())
		err = s.write(ctx, append(d.msgs, guard))
		switch {
		case err == nil:
			return d.changes, false, nil
		case errors.Is(err, errConflict):
			// A gateway changed the case or one of the keys: read again.
			unacked = nil
			if !sleep(ctx, jitter(attempt)) {
				return nil, false, fmt.Errorf("jsstore: reindex %s: %w (last: %v)", id, ctx.Err(), err)
			}
		case errors.Is(err, errAmbiguous):
			unacked = d.changes
			if !sleep(ctx, backoff(attempt)) {
				return nil, false, fmt.Errorf("jsstore: reindex %s: %w: %w (last: %v)", id, store.ErrUnavailable, ctx.Err(), err)
			}
		default:
			return nil, false, fmt.Errorf("jsstore: reindex %s: %w", id, unavailable(err))
		}
	}
	return nil, true, nil
}

// caseDecision is what decideCase read and decided about one case's keys.
type caseDecision struct {
	gone    bool   // no record of the case (nothing, or a removal marker)
	recSeq  uint64 // the sequence of sub.<id> as read (0: never written)
	msgs    []*nats.Msg
	changes []keyChange
}

// decideCase reads case id (sub.<id> with its sequence) and then the index keys
// it decides about — its waiting keys, those its record wants, and extra; with
// onlyExtra extra alone — each with its own sequence, and decides from the
// record what each must be (wantedKeys): the writes of a repair, each
// expecting its key as read, and what they change. It is the one rule of
// Reindex's repairs and of StrayEntries' second look. Each key read counts in
// progress.Entries: after an older build ran for a while the repairs are many,
// and the progress line must not stand still meanwhile.
func (s *Store) decideCase(ctx context.Context, id string, extra []indexKey, onlyExtra bool, progress *store.ReindexProgress) (caseDecision, error) {
	var d caseDecision
	var sub *submission.Submission
	switch m, err := s.lastRaw(ctx, s.subKey(id)); {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return d, err
	default:
		d.recSeq = m.Sequence
		if !removed(m) {
			var rec doc
			if _, err := keepjson.Decode(m.Data, &rec); err != nil || rec.Sub == nil {
				return d, fmt.Errorf("decode submission %s: %v", id, err)
			}
			sub = rec.Sub
		}
	}
	d.gone = sub == nil
	wanted := map[string]indexKey{}
	var look []indexKey
	if !onlyExtra {
		look = s.waitingKeys(id)
	}
	if sub != nil {
		for _, k := range s.wantedKeys(sub) {
			wanted[k.subject] = k
			if !onlyExtra {
				look = append(look, k)
			}
		}
	}
	look = append(look, extra...)
	seen := map[string]bool{}
	for _, k := range look {
		if seen[k.subject] {
			continue
		}
		seen[k.subject] = true
		progress.Entries.Add(1)
		var keySeq uint64
		var present bool
		var val []byte
		switch m, err := s.lastRaw(ctx, k.subject); {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return d, err
		default:
			keySeq, present, val = m.Sequence, !removed(m), m.Data
		}
		w, want := wanted[k.subject]
		switch {
		case want && !present:
			d.msgs = append(d.msgs, expect(k.subject, w.value, keySeq))
			d.changes = append(d.changes, keyChange{k.subject, k.ix, keyAdded})
		case want && valued(k.ix) && !bytes.Equal(val, w.value):
			if k.ix == ixIdempotency {
				// Another live case of the same message holds the key: two
				// cases of one message are no index's fault, and not one to
				// guess at (store.DB.Reindex leaves it alone too).
				mine, err := s.idemOfItsOwn(ctx, string(val), k.subject)
				if err != nil {
					return d, err
				}
				if mine {
					continue
				}
			}
			d.msgs = append(d.msgs, expect(k.subject, w.value, keySeq))
			d.changes = append(d.changes, keyChange{k.subject, k.ix, keyRewritten})
		case !want && present:
			if k.ix == ixIdempotency && string(val) != id {
				continue // it names another case now: that one's to decide
			}
			r := s.removal(k.subject, nil)
			r.Header.Set(hdrExpectedSubSeq, strconv.FormatUint(keySeq, 10))
			d.msgs = append(d.msgs, r)
			d.changes = append(d.changes, keyChange{k.subject, k.ix, keyRemoved})
		}
	}
	return d, nil
}

// idemOfItsOwn reports whether the case other is there and the message of the
// idempotency key subject is its own.
func (s *Store) idemOfItsOwn(ctx context.Context, other, subject string) (bool, error) {
	d, _, err := s.readDoc(ctx, other)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return s.idemKey(d.Sub.Sender, d.Sub.MessageID) == subject, nil
}
