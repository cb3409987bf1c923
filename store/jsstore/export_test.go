package jsstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RewriteRecord is storetest.Harness.Rewrite: it hands edit the submission of
// id's document as stored and writes the document back, as a gateway of another
// build beside st would (expecting the sequence it read).
func RewriteRecord(t *testing.T, st store.Store, id string, edit func(map[string]any) bool) store.Store {
	t.Helper()
	RewriteDoc(t, st, id, func(d map[string]any) bool {
		r, ok := d["submission"].(map[string]any)
		if !ok {
			t.Fatalf("RewriteRecord: document of %s has no submission: %v", id, d)
		}
		return edit(r)
	})
	return st
}

// RewriteDoc is RewriteRecord for the whole document (submission, newest
// events, receipts, op ids).
func RewriteDoc(t *testing.T, st store.Store, id string, edit func(map[string]any) bool) {
	t.Helper()
	s := st.(*Store)
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	m, err := s.last(ctx, s.subKey(id))
	if err != nil {
		t.Fatalf("RewriteDoc: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(m.Data))
	dec.UseNumber()
	var d map[string]any
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("RewriteDoc: %v", err)
	}
	if !edit(d) {
		return
	}
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.write(ctx, []*nats.Msg{expect(s.subKey(id), data, m.Sequence)}); err != nil {
		t.Fatalf("RewriteDoc: %v", err)
	}
}

// EventPages returns the pages of older events of id's document as stored.
func EventPages(t *testing.T, st store.Store, id string, pages int) []json.RawMessage {
	t.Helper()
	s := st.(*Store)
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	var out []json.RawMessage
	for i := 1; i <= pages; i++ {
		m, err := s.last(ctx, s.eventsKey(id, i))
		if err != nil {
			t.Fatalf("EventPages: page %d: %v", i, err)
		}
		out = append(out, m.Data)
	}
	return out
}

// ForgetNewIndexes makes st's bucket look as a build before the undecided and
// follow-up indexes left it: no keys of theirs and no marker that they were
// built (for storetest.Harness.Older).
func ForgetNewIndexes(t *testing.T, st store.Store) {
	t.Helper()
	s := st.(*Store)
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	for _, subj := range []string{s.subject("undecided.>"), s.undecidedIndexedKey(), s.subject("followup.>"), s.followUpsIndexedKey()} {
		if err := s.kv.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			t.Fatalf("ForgetNewIndexes: %v", err)
		}
	}
}

// StepBackBlob is storetest.Harness.StepBack for the object store. A meta
// message's time is the clock of the leader that stored it, which a test cannot
// set: the blob is touched with a hdrNotBefore d after its time, so it has the
// time an upload by a leader whose clock ran d ahead would have left.
func StepBackBlob(t *testing.T, st store.Store, digest string, d time.Duration) time.Time {
	t.Helper()
	b := st.Blobs().(*Blobs)
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	bm, err := b.readMeta(ctx, digest)
	if err != nil {
		t.Fatalf("StepBack: %v", err)
	}
	at := bm.stored.Add(d)
	m := metaMsg(bm, bm.data)
	m.Header.Set(hdrNotBefore, strconv.FormatInt(at.UnixNano(), 10))
	if err := request(ctx, b.nc, m); err != nil {
		t.Fatalf("StepBack: %v", err)
	}
	return at
}

// ListedKeys is how many index keys st's listings have read since Open.
func ListedKeys(st *Store) int64 { return st.stats.listedKeys.Load() }

// OfficeConsumerListings counts the listings of an office's index through a
// consumer (listOffice's way for an office of many keys).
func OfficeConsumerListings(st *Store) int64 { return st.stats.officeConsumers.Load() }

// OfficeListLen is the number of ids st's list of office holds (0: none).
func OfficeListLen(st *Store, office string) int {
	st.offices.mu.Lock()
	l := st.offices.lists[office]
	st.offices.mu.Unlock()
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

// OfficeIDs is the office's list as a page of WalkOffice gets it.
func OfficeIDs(st *Store, office string) ([]string, error) { return st.officeIDs(office) }

// OfficeKeySubject is the subject of office's index key for id.
func OfficeKeySubject(st *Store, office, id string) string {
	return st.officeKey(office, id)
}

// BetweenPages has fn called after each page of subjects a listing of an
// office reads (page counts from 0).
func BetweenPages(st *Store, fn func(page int)) { st.offices.betweenPages = fn }

// MidListing is storetest.Harness.MidListing: st's next listing of an index
// calls fn right after it read its first message, and reads the rest after fn.
func MidListing(t *testing.T, st store.Store, fn func()) {
	t.Helper()
	st.(*Store).midListing.Store(&fn)
}

// BeforeReindexWrite has fn called in Reindex's repair of a case between its
// reads and its batch, with the case's id.
func BeforeReindexWrite(st *Store, fn func(id string)) { st.beforeReindexWrite = fn }

// AfterStrayScan has fn called in StrayEntries after its listing of the index
// keys and its scan of the records, before it lists them again and looks at
// each key no record accounted for.
func AfterStrayScan(st *Store, fn func()) { st.afterStrayScan = fn }

// PutKey writes key (without the bucket's prefix, e.g. "undecided.<id>") with
// value v, unconditionally: a fault planted as a build that kept no such key,
// or a disk's, would leave it.
func PutKey(t *testing.T, st store.Store, key string, v []byte) {
	t.Helper()
	s := st.(*Store)
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	if err := s.write(ctx, []*nats.Msg{putValue(s.subject(key), v)}); err != nil {
		t.Fatalf("PutKey %s: %v", key, err)
	}
}

// DelKey removes key as if it had never been written (a build that keeps no
// such key): purged, without a removal marker. (WalkOffice reads a case whose
// office key has a marker still, so verify names a missing office key only
// once no marker is left.)
func DelKey(t *testing.T, st store.Store, key string) {
	t.Helper()
	s := st.(*Store)
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	if err := s.kv.Purge(ctx, jetstream.WithPurgeSubject(s.subject(key))); err != nil {
		t.Fatalf("DelKey %s: %v", key, err)
	}
}

// KeyValue is key's value; ok false when it is missing or removed.
func KeyValue(t *testing.T, st store.Store, key string) (v []byte, ok bool) {
	t.Helper()
	s := st.(*Store)
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	m, err := s.last(ctx, s.subject(key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("KeyValue %s: %v", key, err)
	}
	return m.Data, true
}

// IdemKey, ReplyKey, OfficeKey and FollowUpKey are the keys (without the
// bucket's prefix) of a message, a reply, an office's case and a Nachreichung.
func IdemKey(st *Store, sender, messageID string) string {
	return strings.TrimPrefix(st.idemKey(sender, messageID), st.subject(""))
}
func ReplyKey(st *Store, messageID, id string) string {
	return strings.TrimPrefix(st.replyKey(messageID, id), st.subject(""))
}
func OfficeKey(st *Store, office, id string) string {
	return strings.TrimPrefix(st.officeKey(office, id), st.subject(""))
}
func FollowUpKey(st *Store, caseID, id string) string {
	return strings.TrimPrefix(st.followUpKey(caseID, id), st.subject(""))
}
