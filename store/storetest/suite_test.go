package storetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
)

// boltHarness runs the suite against store.DB, optionally wrapped with a defect.
func boltHarness(defect string) Harness {
	dirs := map[store.Store]string{}
	open := func(t *testing.T, dir string) store.Store {
		db, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		var s store.Store = db
		if defect != "" {
			s = &defective{Store: db, defect: defect, dir: dir}
		}
		dirs[s] = dir
		return s
	}
	return Harness{
		Open: func(t *testing.T) store.Store { return open(t, t.TempDir()) },
		Reopen: func(t *testing.T, old store.Store) store.Store {
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			dir := dirs[old]
			if defect == "forgets-on-reopen" {
				dir = t.TempDir()
			}
			return open(t, dir)
		},
		StepBack: func(t *testing.T, st store.Store, digest string, d time.Duration) time.Time {
			return StepBackFile(t, filepath.Join(dirs[st], "blobs"), digest, d)
		},
		// As the build before wrote the file: without the undecided bucket. The
		// undecided-not-built defect is a store that creates the bucket and
		// never fills it (as one that forgot the older files would).
		Older: func(t *testing.T, old store.Store) store.Store {
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			dir := dirs[old]
			b, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = b.Update(func(tx *bolt.Tx) error {
				if err := tx.DeleteBucket([]byte("undecided")); err != nil {
					return err
				}
				if defect == "undecided-not-built" {
					_, err := tx.CreateBucket([]byte("undecided"))
					return err
				}
				return nil
			})
			if cerr := b.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			return open(t, dir)
		},
		Rewrite: func(t *testing.T, st store.Store, id string, edit func(map[string]any) bool) store.Store {
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			dir := dirs[st]
			EditFile(t, dir, func(tx *bolt.Tx) error { return rewriteBoltRecord(tx, id, edit) })
			return open(t, dir)
		},
		// A listing is one read transaction: a change lands before it or after.
		// The waiting-goes-on defect lists on past the change instead.
		MidListing: func(t *testing.T, st store.Store, fn func()) {
			if d, ok := st.(*defective); ok && defect == "waiting-goes-on" {
				d.mu.Lock()
				d.midListing = fn
				d.mu.Unlock()
				return
			}
			fn()
		},
		// The reindex-does-nothing defect reports nothing and changes nothing.
		Reindex: func(t *testing.T, st store.Store) store.ReindexReport {
			if d, ok := st.(*defective); ok {
				if defect == "reindex-does-nothing" {
					return store.ReindexReport{}
				}
				st = d.Store
			}
			rep, err := st.(*store.DB).Reindex(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			return rep
		},
		// GetWithEvents is one read transaction: the same. The two-reads
		// defect reads the record and then the events, with fn between.
		MidRead: func(t *testing.T, st store.Store, fn func()) {
			if d, ok := st.(*defective); ok && defect == "two-reads" {
				d.mu.Lock()
				d.midRead = fn
				d.mu.Unlock()
				return
			}
			fn()
		},
	}
}

// rewriteBoltRecord is Harness.Rewrite inside the closed file: the record's key
// and its packing (a marker byte and S2, or the plain JSON, which the store
// reads as well) are store.DB's.
func rewriteBoltRecord(tx *bolt.Tx, id string, edit func(map[string]any) bool) error {
	const tagRecord, packedS2 = 0, 0x04
	key := append(binary.AppendUvarint(nil, uint64(len(id))), id...)
	key = append(key, tagRecord)
	cases := tx.Bucket([]byte("cases"))
	v := cases.Get(key)
	switch {
	case v == nil:
		return fmt.Errorf("no record %s", id)
	case v[0] == packedS2:
		var err error
		if v, err = s2.Decode(nil, v[1:]); err != nil {
			return err
		}
	case v[0] != '{':
		return fmt.Errorf("record %s packed as %#x, which this harness does not read", id, v[0])
	}
	r, err := jsonObject(v)
	if err != nil || !edit(r) {
		return err
	}
	out, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return cases.Put(key, out)
}

// jsonObject reads a JSON object keeping its numbers exact.
func jsonObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var r map[string]any
	return r, dec.Decode(&r)
}

// defective is a correct store with one planted defect.
type defective struct {
	store.Store
	defect string
	dir    string // the store's folder
	mu     sync.Mutex
	// ghosts are what a defective Delete left behind: idempotency keys (sender NUL
	// message id → deleted id) or outbox entries.
	ghostKeys   map[string]string
	ghostOutbox []string
	seenReplies map[string][]string
	// seenUndecided: what the undecided-keeps-decided defect listed once.
	seenUndecided map[string]store.Waiting
	// midListing: the change the waiting-goes-on defect makes in its next
	// listing (Harness.MidListing).
	midListing func()
	// midRead: the change the two-reads defect lets land between its two
	// reads (Harness.MidRead).
	midRead func()
}

// GetWithEvents: the two-reads defect is Get and then Events, as a status
// answer built from two calls was.
func (d *defective) GetWithEvents(id string) (*submission.Submission, []submission.Event, error) {
	if d.defect != "two-reads" {
		return d.Store.GetWithEvents(id)
	}
	s, err := d.Store.Get(id)
	if err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	mid := d.midRead
	d.midRead = nil
	d.mu.Unlock()
	if mid != nil {
		mid()
	}
	evs, err := d.Store.Events(id)
	return s, evs, err
}

func (d *defective) Delete(id string) error {
	cur, err := d.Store.Get(id)
	if err != nil {
		return d.Store.Delete(id)
	}
	if err := d.Store.Delete(id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.defect {
	case "delete-leaves-idempotency-key":
		if d.ghostKeys == nil {
			d.ghostKeys = map[string]string{}
		}
		d.ghostKeys[cur.Sender+"\x00"+cur.MessageID] = id
	case "delete-leaves-outbox":
		if cur.State.Dispatchable() {
			d.ghostOutbox = append(d.ghostOutbox, id)
		}
	}
	return nil
}

// Waiting: the waiting-misses-erasure defect keeps the value an entry got when it
// entered its set, as a store that writes set keys only on entering would.
//
// The waiting-goes-on defect lists the entries there when it began, then
// those there after the change made meanwhile, as a listing that goes on
// past its start and names an id under its old key and its new one would.
func (d *defective) Waiting(officeID string) ([]store.Waiting, error) {
	d.mu.Lock()
	mid := d.midListing
	d.midListing = nil
	d.mu.Unlock()
	if mid != nil {
		before, err := d.Store.Waiting(officeID)
		if err != nil {
			return nil, err
		}
		mid()
		after, err := d.Store.Waiting(officeID)
		out := append(before, after...)
		slices.SortStableFunc(out, func(a, b store.Waiting) int { return strings.Compare(a.ID, b.ID) })
		return out, err
	}
	w, err := d.Store.Waiting(officeID)
	if d.defect == "waiting-misses-erasure" {
		for i := range w {
			w[i].Erased = false
		}
	}
	return w, err
}

// Undecided: the undecided-keeps-decided defect remembers every entry it listed
// once, as an index whose entries are written when a case is delivered and
// never removed would.
func (d *defective) Undecided() ([]store.Waiting, error) {
	w, err := d.Store.Undecided()
	if d.defect != "undecided-keeps-decided" || err != nil {
		return w, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seenUndecided == nil {
		d.seenUndecided = map[string]store.Waiting{}
	}
	for _, e := range w {
		d.seenUndecided[e.ID] = e
	}
	w = w[:0]
	for _, e := range d.seenUndecided {
		w = append(w, e)
	}
	return w, nil
}

// ghostKey is the deleted id a leftover idempotency key still names.
func (d *defective) ghostKey(sender, messageID string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.ghostKeys[sender+"\x00"+messageID]
	return id, ok
}

func (d *defective) Create(ctx context.Context, sub *submission.Submission, evs []submission.Event, kind string, receipt []byte) (*submission.Submission, []byte, bool, error) {
	switch d.defect {
	case "no-idempotency":
		c := *sub
		c.MessageID += "/" + sub.ID // never the same key twice
		return d.Store.Create(ctx, &c, evs, kind, receipt)
	case "racy-idempotency":
		// Check, then create: right one at a time, wrong under concurrency.
		if s, err := d.Store.FindByMessage(sub.Sender, sub.MessageID); err == nil {
			r, _ := d.Store.Receipt(s.ID, kind)
			return s, r, false, nil
		}
		c := *sub
		c.MessageID += "/" + sub.ID
		s, r, created, err := d.Store.Create(ctx, &c, evs, kind, receipt)
		if s != nil {
			s.MessageID = sub.MessageID
		}
		return s, r, created, err
	case "delete-leaves-idempotency-key":
		// What a store does whose key still names the deleted record: it finds the
		// key taken and fails reading the record.
		if id, ok := d.ghostKey(sub.Sender, sub.MessageID); ok {
			return nil, nil, false, fmt.Errorf("store: create: submission %s: %w", id, store.ErrNotFound)
		}
	}
	return d.Store.Create(ctx, sub, evs, kind, receipt)
}

func (d *defective) FindByMessage(sender, messageID string) (*submission.Submission, error) {
	if d.defect == "racy-idempotency" {
		var found *submission.Submission
		err := d.Store.Scan(func(s *submission.Submission) bool {
			if s.Sender == sender && strings.HasPrefix(s.MessageID, messageID+"/") {
				found = s
				found.MessageID = messageID
				return false
			}
			return true
		})
		if err == nil && found == nil {
			err = store.ErrNotFound
		}
		return found, err
	}
	return d.Store.FindByMessage(sender, messageID)
}

func (d *defective) Get(id string) (*submission.Submission, error) {
	s, err := d.Store.Get(id)
	if d.defect == "unwrapped-not-found" && errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no submission %s", id)
	}
	return s, err
}

func (d *defective) Update(id string, fn func(*submission.Submission) ([]submission.Event, error)) (*submission.Submission, error) {
	switch d.defect {
	case "drops-newer-keys":
		// Every write as an erasure's: what the build does not know is dropped.
		return d.Store.UpdateRedacting(id, fn, func(*submission.Event) bool { return false })
	case "drops-event":
		return d.Store.Update(id, func(s *submission.Submission) ([]submission.Event, error) {
			evs, err := fn(s)
			if len(evs) > 1 {
				evs = evs[:len(evs)-1]
			}
			return evs, err
		})
	case "lost-update":
		// Read, change outside the transaction, write back: the classic lost update.
		cur, err := d.Store.Get(id)
		if err != nil {
			return nil, err
		}
		evs, err := fn(cur)
		if err != nil || len(evs) == 0 {
			return cur, err
		}
		return d.Store.Update(id, func(s *submission.Submission) ([]submission.Event, error) {
			*s = *cur
			return evs, nil
		})
	case "writes-without-events":
		return d.Store.Update(id, func(s *submission.Submission) ([]submission.Event, error) {
			evs, err := fn(s)
			if err == nil && len(evs) == 0 {
				evs = []submission.Event{{Type: "noop"}}
			}
			return evs, err
		})
	case "update-upserts":
		// Read, change, then write the record whether or not it still exists: a put
		// without the expected-sequence check brings a deleted record back.
		cur, err := d.Store.Get(id)
		if err != nil {
			return nil, err
		}
		evs, err := fn(cur)
		if err != nil || len(evs) == 0 {
			return cur, err
		}
		out, err := d.Store.Update(id, func(s *submission.Submission) ([]submission.Event, error) {
			*s = *cur
			return evs, nil
		})
		if errors.Is(err, store.ErrNotFound) {
			out, _, _, err = d.Store.Create(context.Background(), cur, evs, "in", nil)
		}
		return out, err
	case "ignores-fn-error":
		return d.Store.Update(id, func(s *submission.Submission) ([]submission.Event, error) {
			evs, err := fn(s)
			if err != nil && len(evs) > 0 {
				return evs, nil
			}
			return evs, err
		})
	}
	return d.Store.Update(id, fn)
}

// UpdateRedacting: redact-ignored is a store that removes the bytes and keeps
// the events as they were (Update); redacts-new-events passes the change's own
// events to redact as well.
func (d *defective) UpdateRedacting(id string, fn func(*submission.Submission) ([]submission.Event, error), redact func(*submission.Event) bool) (*submission.Submission, error) {
	switch d.defect {
	case "redact-ignored", "erasure-keeps-newer-keys":
		return d.Store.Update(id, fn)
	case "redacts-new-events":
		return d.Store.UpdateRedacting(id, func(s *submission.Submission) ([]submission.Event, error) {
			evs, err := fn(s)
			for i := range evs {
				redact(&evs[i])
			}
			return evs, err
		}, redact)
	}
	return d.Store.UpdateRedacting(id, fn, redact)
}

func (d *defective) Outbox() ([]string, error) {
	if d.defect == "outbox-ignores-state" {
		var ids []string
		err := d.Store.Scan(func(s *submission.Submission) bool {
			if s.State != submission.StateHeld {
				ids = append(ids, s.ID)
			}
			return true
		})
		return ids, err
	}
	if d.defect == "delete-leaves-outbox" {
		ids, err := d.Store.Outbox()
		d.mu.Lock()
		defer d.mu.Unlock()
		return append(ids, d.ghostOutbox...), err
	}
	return d.Store.Outbox()
}

// RepliesByMessage: the replies-stale-after-delete defect remembers what it
// found once, as an index that Delete does not reach would.
func (d *defective) RepliesByMessage(messageID string) ([]string, error) {
	ids, err := d.Store.RepliesByMessage(messageID)
	if d.defect != "replies-stale-after-delete" || err != nil {
		return ids, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seenReplies == nil {
		d.seenReplies = map[string][]string{}
	}
	for _, id := range d.seenReplies[messageID] {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	d.seenReplies[messageID] = ids
	return ids, nil
}

func (d *defective) WalkOffice(office, after string, fn func(*submission.Submission) bool) error {
	if d.defect == "walk-by-prefix" {
		// A prefix match instead of the office's own key lets office-a see office-ab.
		var all []*submission.Submission
		if err := d.Store.Scan(func(s *submission.Submission) bool {
			if strings.HasPrefix(s.OfficeID, office) && s.ID > after {
				all = append(all, s)
			}
			return true
		}); err != nil {
			return err
		}
		for _, s := range all {
			if !fn(s) {
				return nil
			}
		}
		return nil
	}
	return d.Store.WalkOffice(office, after, fn)
}

func (d *defective) Blobs() store.BlobStore {
	switch d.defect {
	case "blob-not-found-unwrapped", "walk-skips-blobs", "blob-delete-keeps-bytes",
		"stream-keeps-mismatch", "stream-ignores-limit", "stream-discards-shared", "refresh-does-nothing",
		"touch-by-wall-clock":
		return badBlobs{d.Store.Blobs(), d.defect, filepath.Join(d.dir, "blobs")}
	}
	return d.Store.Blobs()
}

type badBlobs struct {
	store.BlobStore
	defect string
	dir    string // the blob files' folder
}

func (b badBlobs) Walk(fn func(digest string, size int64, written time.Time) bool) error {
	if b.defect != "walk-skips-blobs" {
		return b.BlobStore.Walk(fn)
	}
	// Skips every second blob, as a walk that stops at a page boundary would.
	i := 0
	return b.BlobStore.Walk(func(d string, size int64, written time.Time) bool {
		i++
		return i%2 == 0 || fn(d, size, written)
	})
}

func (b badBlobs) Delete(digest string) error {
	if b.defect == "blob-delete-keeps-bytes" {
		if _, err := b.BlobStore.Open(context.Background(), digest); err != nil {
			return err
		}
		return nil // says done, removes nothing
	}
	return b.BlobStore.Delete(digest)
}

func (b badBlobs) PutStream(ctx context.Context, r io.Reader, limit int64, want string) (store.StreamPut, error) {
	switch b.defect {
	case "stream-keeps-mismatch":
		// Promotes first and checks afterwards: the refused bytes stay under their
		// own digest.
		p, err := b.BlobStore.PutStream(ctx, r, limit, "")
		if err == nil && want != "" && p.Digest != want {
			return store.StreamPut{}, fmt.Errorf("mismatch: %w", store.ErrDigestMismatch)
		}
		return p, err
	case "stream-ignores-limit":
		return b.BlobStore.PutStream(ctx, r, -1, want)
	case "touch-by-wall-clock":
		// What the file store did before: a put of stored content gives the file
		// the clock's time, earlier than the blob's after a step back.
		p, err := b.BlobStore.PutStream(ctx, r, limit, want)
		if err == nil && !p.Created {
			now := time.Now()
			if err := os.Chtimes(filepath.Join(b.dir, p.Digest[:2], p.Digest), now, now); err != nil {
				return store.StreamPut{}, err
			}
			p.Written = now
		}
		return p, err
	case "stream-discards-shared":
		// Says every put created the blob, so DiscardNew removes shared content.
		p, err := b.BlobStore.PutStream(ctx, r, limit, want)
		p.Created = err == nil
		if err == nil {
			p.Written = time.Now().Add(time.Hour)
		}
		return p, err
	}
	return b.BlobStore.PutStream(ctx, r, limit, want)
}

// Refresh: the refresh-does-nothing defect says a blob is refreshed and leaves
// its time as it was, so a deleter takes a blob an upload still holds.
func (b badBlobs) Refresh(ctx context.Context, digest string) (time.Time, error) {
	if b.defect == "refresh-does-nothing" {
		if _, err := b.BlobStore.Open(ctx, digest); err != nil {
			return time.Time{}, err
		}
		return time.Now(), nil
	}
	return b.BlobStore.(store.Refresher).Refresh(ctx, digest)
}

func (b badBlobs) DeleteIfOlder(digest string, before time.Time) (bool, error) {
	return b.BlobStore.(store.CondDeleter).DeleteIfOlder(digest, before)
}

func (b badBlobs) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	rc, err := b.BlobStore.Open(ctx, digest)
	if b.defect == "blob-not-found-unwrapped" && errors.Is(err, store.ErrNotFound) {
		return nil, os.ErrNotExist
	}
	return rc, err
}

func TestBoltPasses(t *testing.T) {
	Run(t, boltHarness(""))
}

// TestSeededDefectsFail proves the suite has teeth: each defect, planted in the
// otherwise correct bbolt store, must make the named case fail. The suite runs in a
// child process because a failing *testing.T cannot be contained in this one; only
// the case that should catch the defect runs, which also proves each case stands on
// its own.
func TestSeededDefectsFail(t *testing.T) {
	if os.Getenv("STORETEST_DEFECT") != "" {
		return // this is the child process itself
	}
	cases := map[string]string{
		"no-idempotency":                "CreateIdempotent",
		"racy-idempotency":              "ConcurrentCreatesOfOneMessage",
		"unwrapped-not-found":           "NotFound",
		"drops-event":                   "EventsOrderAndSeq",
		"lost-update":                   "ConcurrentUpdates",
		"writes-without-events":         "UpdateWithoutEventsWritesNothing",
		"ignores-fn-error":              "UpdateErrorAborts",
		"outbox-ignores-state":          "IndexesFollowState",
		"walk-by-prefix":                "WalkOffice",
		"replies-stale-after-delete":    "RepliesByMessage",
		"blob-not-found-unwrapped":      "Blobs",
		"forgets-on-reopen":             "Durable",
		"delete-leaves-idempotency-key": "DeleteFreesIdempotencyKey",
		"delete-leaves-outbox":          "Delete",
		"update-upserts":                "ConcurrentDeleteAndUpdate",
		"walk-skips-blobs":              "BlobDeleteAndWalk",
		"blob-delete-keeps-bytes":       "BlobDeleteAndWalk",
		"stream-keeps-mismatch":         "BlobPutStream",
		"stream-ignores-limit":          "BlobPutStream",
		"stream-discards-shared":        "BlobPutStream",
		"refresh-does-nothing":          "BlobRefresh",
		"touch-by-wall-clock":           "BlobClockStepBack",
		"waiting-misses-erasure":        "WaitingNamesOfficeAndErasure",
		"waiting-goes-on":               "WaitingWhileMoving",
		"two-reads":                     "GetWithEventsIsOneRead",
		"untimed-writes":                "WritesTimed",
		"redact-ignored":                "UpdateRedacting",
		"redacts-new-events":            "UpdateRedacting",
		"undecided-keeps-decided":       "UndecidedFollowsTheDecision",
		"undecided-not-built":           "UndecidedIndexBuiltOnOpen",
		"drops-newer-keys":              "KeepsNewerKeys",
		"erasure-keeps-newer-keys":      "KeepsNewerKeys",
		"reindex-does-nothing":          "ReindexRepairsAnOlderBuildsWrites",
		"strays-unlisted":               "StraysAreWhatReindexRemoves",
	}
	testenv.PlantedDefects(t, "STORETEST_DEFECT", "a store", cases)
}

// TestDefectChild is the child of TestSeededDefectsFail and does nothing on its own.
func TestDefectChild(t *testing.T) {
	defect := os.Getenv("STORETEST_DEFECT")
	if defect == "" {
		return
	}
	Run(t, boltHarness(defect))
}

// Collectors: the untimed-writes defect hands out a write-wait histogram that no
// write ever reaches.
func (d *defective) Collectors() []prometheus.Collector {
	if d.defect == "untimed-writes" {
		return []prometheus.Collector{store.WriteWaitMetric("never observed")}
	}
	return d.Store.Collectors()
}

// StrayEntries: the strays-unlisted defect lists none, as the cluster's store
// did before it had the listing: `store verify` passed what `store reindex`
// then changed.
func (d *defective) StrayEntries(ctx context.Context) ([]store.StrayEntry, error) {
	if d.defect == "strays-unlisted" {
		return nil, nil
	}
	return d.Store.(store.StrayLister).StrayEntries(ctx)
}
