package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/nats-io/nats.go/jetstream"
)

// An office's listing (WalkOffice) is paged: the pull API's GET
// /v1/office/submissions and the web mailbox's list of all cases ask for 50 at
// a time. Listing the office's whole index (every office.<office>.* key, through
// a consumer) for each page made a page cost the office's size: 0.38 s at
// 20,000 cases, 6–9 s at 100,000, nearly all of it the delivery of one key
// after the other (docs/performance.md). A subject filter has no ranges, so the
// keys after `after` cannot be listed alone; time buckets in the key would, but
// a gateway of an older build beside this one would not see such keys.
//
// So each store keeps, per office, the sorted ids of its index as of a stream
// sequence (the first page lists the index from the stream leader's subjects,
// listOffice), and a page brings them
// up to date with the messages under the office's keys after that sequence,
// read from the stream leader one by one (the stream's message get with
// next_by_subj; about 40 µs each, and one that finds nothing). A page costs the
// changes since the page before, not the office.
//
// It has every write acknowledged before the call, as a listing has (see ids):
// the leader has stored every acknowledged write, and a key's newer message
// always has a higher sequence, so a key changed since the list's sequence is
// met at its newest value — a put adds the id, a removal marker takes it out. A
// marker the server dropped (Nats-TTL) before it was met leaves an id whose
// record is gone, which WalkOffice passes over as it passes over a record
// deleted after a listing; lists unused for officeListIdle are dropped, which
// is shorter than a marker's life (MarkerTTL). A stream made anew (deleted and
// created or restored) numbers its messages again from its start: a list taken
// from another stream, or at a sequence the stream has not reached, is listed
// again.

// officeListIdle: a list not used for this long is dropped (at most half of
// MarkerTTL: see above). Half of the default MarkerTTL: an office system that
// polls every quarter of an hour, or a clerk back at the list after twenty
// minutes, found the list dropped at ten and waited for the whole index again
// (6 s at 100,000 cases then, 0.4 s since listOffice).
const officeListIdle = 30 * time.Minute

// officeListMaxIDs bounds the ids the lists of one store hold together (64
// bytes each, copies of their keys' last tokens): past it the least recently
// used lists are dropped, though never the one just brought up to date.
const officeListMaxIDs = 500_000

// officeLists are a store's lists of office indexes.
type officeLists struct {
	idle   time.Duration
	maxIDs int
	// betweenPages, when set, is called after each page of subjects is read
	// (tests: what changes between two pages).
	betweenPages func(page int)
	mu           sync.Mutex
	lists        map[string]*officeList // by office
}

// officeList is the index of one office as of a stream sequence.
type officeList struct {
	mu sync.Mutex // held while the list is listed or brought up to date
	// ids are sorted. An element is never changed in place: a page walks the
	// slice it was handed without the lock while the list grows (append) or is
	// replaced.
	ids     []string
	seq     uint64    // ids hold every change under the office's keys up to this stream sequence
	created time.Time // the stream's creation time then; zero: not listed yet
	// touched and size (len(ids) as last counted) are officeLists.mu's.
	touched time.Time
	size    int
}

func newOfficeLists(markerTTL time.Duration) *officeLists {
	return &officeLists{idle: min(officeListIdle, markerTTL/2), maxIDs: officeListMaxIDs, lists: map[string]*officeList{}}
}

// get returns the office's list, a new one if it had none; lists unused for
// idle are dropped first.
func (o *officeLists) get(office string, now time.Time) *officeList {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, l := range o.lists {
		if now.Sub(l.touched) > o.idle {
			delete(o.lists, k)
		}
	}
	l := o.lists[office]
	if l == nil {
		l = &officeList{}
		o.lists[office] = l
	}
	l.touched = now
	return l
}

// counted notes the size of the office's list l and drops the least recently
// used others while all hold more than maxIDs.
func (o *officeLists) counted(l *officeList, size int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l.size = size
	total := 0
	for _, x := range o.lists {
		total += x.size
	}
	for total > o.maxIDs {
		oldest := ""
		for k, x := range o.lists {
			if x != l && (oldest == "" || x.touched.Before(o.lists[oldest].touched)) {
				oldest = k
			}
		}
		if oldest == "" {
			return
		}
		total -= o.lists[oldest].size
		delete(o.lists, oldest)
	}
}

// officeIDs returns the ids of the office's index, sorted, with every write
// acknowledged before the call. The slice is shared: the caller must not change it.
func (s *Store) officeIDs(officeID string) ([]string, error) {
	ids, _, err := s.officeIDsOf(officeID)
	return ids, err
}

// officeIDsOf is officeIDs that also returns the creation time of the stream
// the ids are of (forget's condition).
func (s *Store) officeIDsOf(officeID string) ([]string, time.Time, error) {
	l := s.offices.get(officeID, time.Now())
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, cancel := s.ctx()
	defer cancel()
	info, err := s.streamInfo(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	filter := s.subject("office." + encodeKey(officeID) + ".*")
	if l.created.IsZero() || !info.Created.Equal(l.created) || info.State.LastSeq < l.seq {
		// Not listed yet, or listed from a stream that is no longer there.
		ids, at, created, err := s.listOffice(ctx, filter, info.Created)
		if err != nil {
			l.created = time.Time{}
			return nil, time.Time{}, err
		}
		l.ids, l.seq, l.created = ids, at, created
	}
	if err := s.catchUp(ctx, l, filter); err != nil {
		return nil, time.Time{}, err
	}
	s.offices.counted(l, len(l.ids))
	return l.ids, l.created, nil
}

// pageOverlap: each page of subjects after the first is asked from this many
// before the end of the page before (subjectsUnder).
const pageOverlap = 1_000

// listOffice lists the ids of the office's index (filter), sorted, and the
// stream sequence the list holds every write up to; created is the stream's
// creation time as read before.
//
// It asks the stream leader for the subjects under filter (subjectsUnder),
// which it names from its memory: 0.2 s at 20,000 cases where a consumer
// delivering every key took 0.4 s, and 6 s at 100,000 (docs/performance.md).
// The listing mark written first must be in the answer's state, as with
// keysUnderAt (a leader elected a moment ago may not have applied the last
// writes yet). The answer also names keys whose last message is a removal
// marker (a case deleted within MarkerTTL): their records are gone, and
// WalkOffice passes over them and takes them out of the list once met. Where
// the answer's pages do not meet three times in a row (subjectsUnder), the
// office is listed through a consumer, as before.
func (s *Store) listOffice(ctx context.Context, filter string, created time.Time) ([]string, uint64, time.Time, error) {
	mark := s.subject(listedKey)
	for round, apart := 0, 0; apart < 3; round++ {
		at, err := s.markListing(ctx, mark)
		if err != nil {
			return nil, 0, time.Time{}, err
		}
		ids, last, made, ok, err := s.subjectsUnder(ctx, filter)
		if err != nil {
			return nil, 0, time.Time{}, err
		}
		if !ok {
			apart++
			continue
		}
		if last < at {
			s.stats.staleListings.Add(1)
			if !sleep(ctx, backoff(round)) {
				return nil, 0, time.Time{}, fmt.Errorf("jsstore: list %s: %w: the stream leader did not reach the listing mark within %s", filter, store.ErrUnavailable, s.opts.Timeout)
			}
			continue
		}
		s.stats.listedKeys.Add(int64(len(ids)))
		// The state was taken before the subjects: a key changed between the two
		// is met again by catchUp, at its newest value.
		return ids, last, made, nil
	}
	s.stats.officeConsumers.Add(1)
	var ids []string
	at, err := s.keysUnderAt([]string{filter}, false, func() { ids = nil }, func(id string, _ []byte) {
		ids = append(ids, strings.Clone(id)) // the id alone, as above
	})
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	slices.Sort(ids)
	return slices.Compact(ids), at, created, nil
}

// subjectsPage is what subjectsUnder reads of a stream info answer.
type subjectsPage struct {
	Error   *jetstream.APIError `json:"error"`
	Total   int                 `json:"total"` // subjects under the filter
	Created time.Time           `json:"created"`
	State   struct {
		LastSeq  uint64            `json:"last_seq"`
		Subjects map[string]uint64 `json:"subjects"`
	} `json:"state"`
}

// subjectsUnder lists the ids of the subjects under filter that have a message
// on the stream leader, sorted, with the stream's creation time as of the first page
// and the oldest last sequence of the pages' states (each taken before its
// subjects).
//
// The server names at most 100,000 subjects an answer (nats-server's
// JSMaxSubjectDetails), the rest by offset into its sorted subjects as of each
// answer: no snapshot. A subject
// dropped between two answers (a removal marker's TTL ran out) moves every
// later one a place down, so the next page would start past one that stays.
// Each page after the first is therefore asked from pageOverlap before the
// end of the one before and must start at or before that page's last
// subject; then no subject that was there for both answers lies between
// them. Otherwise ok is false (the caller lists again). A subject new since
// the first answer may be missing: its message came after the sequence
// returned, and catchUp meets it.
func (s *Store) subjectsUnder(ctx context.Context, filter string) (ids []string, last uint64, created time.Time, ok bool, err error) {
	offset, prev := 0, "" // prev: the last subject of the page before
	for page := 0; ; page++ {
		p, err := s.subjectsAt(ctx, filter, offset)
		if err != nil {
			return nil, 0, time.Time{}, false, err
		}
		if s.offices.betweenPages != nil {
			s.offices.betweenPages(page)
		}
		keys := slices.Sorted(maps.Keys(p.State.Subjects))
		if page == 0 {
			last, created = p.State.LastSeq, p.Created
		} else if len(keys) == 0 || keys[0] > prev {
			return nil, 0, time.Time{}, false, nil // the pages moved apart
		}
		// A page's state may be older than the first's: while the stream's
		// group has no leader every member answers from its own state (a
		// leader lost between two pages), and a member behind lacks the keys
		// written since, in its page's range. The list goes on from the oldest
		// state of its pages, so that catchUp meets them; older than the
		// listing mark, the caller lists again.
		last = min(last, p.State.LastSeq)
		// Each page's ids as it comes, so that no more than one page of
		// subjects (about 100 bytes a key) is held at once.
		for _, subject := range keys {
			id, err := decodeKey(subject[strings.LastIndexByte(subject, '.')+1:])
			if err != nil {
				return nil, 0, time.Time{}, false, fmt.Errorf("jsstore: key %s: %w", subject, err)
			}
			// A copy: a part of the subject kept the subject, 80 bytes and more
			// where the id takes 48 (officeListMaxIDs).
			ids = append(ids, strings.Clone(id))
		}
		if offset+len(keys) >= p.Total || len(keys) <= pageOverlap {
			break
		}
		prev = keys[len(keys)-1]
		offset += len(keys) - pageOverlap
	}
	slices.Sort(ids) // the keys' encoding need not keep the ids' order; pages overlap
	return slices.Compact(ids), last, created, true, nil
}

// subjectsAt asks the stream leader for its info with the subjects under
// filter from offset on (JSApiStreamInfoRequest; jetstream.Stream.Info would
// join the pages without saying where each began).
func (s *Store) subjectsAt(ctx context.Context, filter string, offset int) (*subjectsPage, error) {
	req, err := json.Marshal(struct {
		Filter string `json:"subjects_filter"`
		Offset int    `json:"offset,omitempty"`
	}{filter, offset})
	if err != nil {
		return nil, err
	}
	api := s.apiPrefix() + "STREAM.INFO." + s.kv.CachedInfo().Config.Name
	for attempt := 0; ; attempt++ {
		c, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		m, err := s.nc.RequestWithContext(c, api, req)
		cancel()
		if err == nil {
			var p subjectsPage
			if err := json.Unmarshal(m.Data, &p); err != nil {
				return nil, fmt.Errorf("jsstore: stream info: %w", err)
			}
			if p.Error == nil {
				return &p, nil
			}
			err = p.Error
		}
		if !transient(err) || !sleep(ctx, backoff(attempt)) {
			return nil, fmt.Errorf("jsstore: stream info: %w", unavailable(err))
		}
	}
}

// apiPrefix is the JetStream API's subject prefix the store's client uses.
func (s *Store) apiPrefix() string {
	o := s.js.Options()
	switch {
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	}
	return jetstream.DefaultAPIPrefix
}

// forget takes ids out of the office's list: WalkOffice found their records
// gone. The store reads from the stream leader (read-your-writes), which has
// every acknowledged write, and a record and its office key are written and
// removed in one batch, so a record that is not there was deleted; an id is
// never used again.
//
// In that stream: created is the creation time of the stream the page's list
// was of, and a list listed meanwhile from another (a stream restored from a
// backup, which may have such a case again) is left as it is. Another page
// had listed the restored case anew, and the first page's word let it go.
func (o *officeLists) forget(office string, created time.Time, gone []string) {
	o.mu.Lock()
	l := o.lists[office]
	o.mu.Unlock()
	if l == nil || len(gone) == 0 {
		return
	}
	out := make(map[string]bool, len(gone))
	for _, id := range gone {
		out[id] = false
	}
	l.mu.Lock()
	if !l.created.Equal(created) {
		l.mu.Unlock()
		return
	}
	l.ids = applyChanges(l.ids, out)
	size := len(l.ids)
	l.mu.Unlock()
	o.counted(l, size)
}

// catchUp applies to l the messages under filter after l.seq, read from the
// stream leader. On an error l is left as it was.
func (s *Store) catchUp(ctx context.Context, l *officeList, filter string) error {
	changed := map[string]bool{} // id: in the index after the changes
	seq := l.seq
	for {
		m, err := s.nextMsg(ctx, seq+1, filter)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return err
		}
		s.stats.listedKeys.Add(1)
		id, err := decodeKey(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:])
		if err != nil {
			return fmt.Errorf("jsstore: key %s: %w", m.Subject, err)
		}
		changed[strings.Clone(id)] = !removed(m) // the id alone, not its subject (listOffice)
		seq = m.Sequence
	}
	l.ids, l.seq = applyChanges(l.ids, changed), seq
	return nil
}

// applyChanges returns ids (sorted) with the ids changed names as in (true)
// added and those it names as out (false) removed. ids is not changed in
// place: new ids after the last are appended (a page walking ids does not see
// them), anything else makes a new slice.
func applyChanges(ids []string, changed map[string]bool) []string {
	if len(changed) == 0 {
		return ids
	}
	add := make([]string, 0, len(changed))
	appendOnly := true
	for id, in := range changed {
		if in {
			add = append(add, id)
		}
		if !in || len(ids) > 0 && id <= ids[len(ids)-1] {
			appendOnly = false
		}
	}
	slices.Sort(add)
	if appendOnly {
		return append(ids, add...)
	}
	out := make([]string, 0, len(ids)+len(add))
	for _, id := range ids {
		if _, ok := changed[id]; !ok {
			out = append(out, id)
		}
	}
	// Both sorted, neither with an id of the other: merge.
	merged := make([]string, 0, len(out)+len(add))
	i, j := 0, 0
	for i < len(out) || j < len(add) {
		if j == len(add) || i < len(out) && out[i] < add[j] {
			merged = append(merged, out[i])
			i++
		} else {
			merged = append(merged, add[j])
			j++
		}
	}
	return merged
}

// nextMsg reads from the stream leader the first message at or after seq whose
// subject matches filter (ErrMsgNotFound: none).
func (s *Store) nextMsg(ctx context.Context, seq uint64, filter string) (*jetstream.RawStreamMsg, error) {
	for attempt := 0; ; attempt++ {
		c, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		m, err := s.kv.GetMsg(c, seq, jetstream.WithGetMsgSubject(filter))
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
			return m, err
		}
		if !transient(err) || !sleep(ctx, backoff(attempt)) {
			return nil, fmt.Errorf("jsstore: list %s: %w", filter, unavailable(err))
		}
	}
}

// streamInfo asks for the KV stream's state (its creation time, last sequence).
func (s *Store) streamInfo(ctx context.Context, opts ...jetstream.StreamInfoOpt) (*jetstream.StreamInfo, error) {
	for attempt := 0; ; attempt++ {
		c, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		info, err := s.kv.Info(c, opts...)
		cancel()
		if err == nil {
			return info, nil
		}
		if !transient(err) || !sleep(ctx, backoff(attempt)) {
			return nil, fmt.Errorf("jsstore: stream info: %w", unavailable(err))
		}
	}
}
