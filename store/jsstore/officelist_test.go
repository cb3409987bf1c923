package jsstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// createFor creates a new case of office on a store and returns its id.
func createFor(t *testing.T, on store.Store, office string) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	s := storetest.NewSubmission(id, "amt24", "m-"+id)
	s.OfficeID = office
	if _, _, _, err := on.Create(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "", nil); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestWalkOfficePagesReadOnlyChanges: paging through an office's listing (the
// pull API, the web mailbox) lists the office's index once per store; a later
// page reads only the index keys changed since the one before, and still has
// every write acknowledged before it, also another node's. Each page used to list
// every office.<office>.* key: 370 ms a page at 20,000 cases
// (BenchmarkWalkOfficePage).
func TestWalkOfficePagesReadOnlyChanges(t *testing.T) {
	b, st := openOnEmbedded(t, jsstore.Options{})
	other, err := jsstore.Open(context.Background(), b.JS, jsstore.Options{}) // another node on the same bucket
	if err != nil {
		t.Fatal(err)
	}
	const office = "amt-pages"
	create := func(on store.Store) string { return createFor(t, on, office) }
	var ids []string
	for range 120 {
		ids = append(ids, create(st))
	}
	// Another office's keys are none of this one's listing's business.
	noise := storetest.NewSubmission(uuid.Must(uuid.NewV7()).String(), "amt24", "noise")
	noise.OfficeID = office + "-b"
	if _, _, _, err := st.Create(context.Background(), noise, nil, "", nil); err != nil {
		t.Fatal(err)
	}
	// page returns a page of 50 after `after` and how many index keys it read.
	page := func(after string) ([]string, int64) {
		t.Helper()
		before := jsstore.ListedKeys(st)
		var out []string
		if err := st.WalkOffice(office, after, func(s *submission.Submission) bool {
			out = append(out, s.ID)
			return len(out) < 50
		}); err != nil {
			t.Fatal(err)
		}
		return out, jsstore.ListedKeys(st) - before
	}
	p, n := page("")
	if !slices.Equal(p, ids[:50]) || n != 120 {
		t.Fatalf("first page: %d ids (want the 50 oldest), %d keys read (want the office's 120)", len(p), n)
	}
	p, n = page(p[49])
	if !slices.Equal(p, ids[50:100]) || n != 0 {
		t.Fatalf("second page: %d ids (want the next 50), %d keys read (want none: nothing changed)", len(p), n)
	}
	// Another node creates two and deletes the oldest: the next page reads those
	// three keys.
	ids = append(ids, create(other), create(other))
	if err := other.Delete(ids[0]); err != nil {
		t.Fatal(err)
	}
	ids = ids[1:]
	p, n = page(ids[99])
	if !slices.Equal(p, ids[100:]) || n != 3 {
		t.Fatalf("last page: %v, want %v; %d keys read (want 3: two new, one removed)", p, ids[100:], n)
	}
	if p, n = page(""); !slices.Equal(p, ids[:50]) || n != 0 {
		t.Fatalf("first page again: %d ids, starting %v (want the 50 oldest from %s), %d keys read", len(p), p[:1], ids[0], n)
	}
	var all []string
	if err := st.WalkOffice(office, "", func(s *submission.Submission) bool { all = append(all, s.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all, ids) {
		t.Fatalf("the whole office: %d ids, want %d", len(all), len(ids))
	}
}

// TestWalkOfficeAfterTheStreamWasMadeAnew: a stream deleted and created again
// (or restored from a backup) numbers its messages from its start again, so the
// changes after the sequence a store's list of an office was taken at are not
// the changes since: the store lists the office again.
func TestWalkOfficeAfterTheStreamWasMadeAnew(t *testing.T) {
	b, st := openOnEmbedded(t, jsstore.Options{})
	const office = "amt-anew"
	create := func(on store.Store) string { return createFor(t, on, office) }
	walk := func() []string {
		t.Helper()
		var out []string
		if err := st.WalkOffice(office, "", func(s *submission.Submission) bool { out = append(out, s.ID); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for range 3 {
		create(st)
	}
	if got := walk(); len(got) != 3 {
		t.Fatalf("before: %d ids, want 3", len(got))
	}
	if err := b.JS.DeleteStream(context.Background(), "KV_amtsbote"); err != nil {
		t.Fatal(err)
	}
	again, err := jsstore.Open(context.Background(), b.JS, jsstore.Options{}) // creates the stream anew
	if err != nil {
		t.Fatal(err)
	}
	// More messages than the old stream had when it was listed: its sequence is
	// passed, and only the list's stream tells the two apart.
	var want []string
	for range 8 {
		want = append(want, create(again))
	}
	if got := walk(); !slices.Equal(got, want) {
		t.Fatalf("after the stream was made anew: %v, want %v", got, want)
	}
}

// TestWalkOfficeWhileTheOfficeChanges: pages of one office walked at once on one
// store while cases are created and deleted share the store's list of the
// office; each walk is in id order, names each case once and has every case
// created before it began and not deleted (run with -race: the list grows under
// the walks).
func TestWalkOfficeWhileTheOfficeChanges(t *testing.T) {
	_, st := openOnEmbedded(t, jsstore.Options{})
	const office = "amt-busy"
	var mu sync.Mutex
	live := map[string]bool{}
	create := func() string {
		id := uuid.Must(uuid.NewV7()).String()
		s := storetest.NewSubmission(id, "amt24", "m-"+id)
		s.OfficeID = office
		if _, _, _, err := st.Create(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "", nil); err != nil {
			t.Error(err)
			return ""
		}
		mu.Lock()
		live[id] = true
		mu.Unlock()
		return id
	}
	for range 40 {
		create()
	}
	stop := make(chan struct{})
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := create()
			if i%3 == 0 && id != "" {
				mu.Lock()
				delete(live, id)
				mu.Unlock()
				if err := st.Delete(id); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	var walkers sync.WaitGroup
	for range 4 {
		walkers.Add(1)
		go func() {
			defer walkers.Done()
			for range 15 {
				mu.Lock()
				var must []string
				for id := range live {
					must = append(must, id)
				}
				mu.Unlock()
				var got []string
				if err := st.WalkOffice(office, "", func(s *submission.Submission) bool { got = append(got, s.ID); return true }); err != nil {
					t.Error(err)
					return
				}
				if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
					t.Errorf("a walk out of order or naming a case twice: %v", got)
					return
				}
				for _, id := range must {
					if _, ok := slices.BinarySearch(got, id); !ok {
						mu.Lock()
						still := live[id]
						mu.Unlock()
						if still {
							t.Errorf("a walk of %d cases misses %s, created before it", len(got), id)
							return
						}
					}
				}
			}
		}()
	}
	walkers.Wait()
	close(stop)
	writer.Wait()
}

// TestWalkOfficeFirstListingAsksTheLeadersSubjects: the first page of an office
// on a store (after a start, or after the list was dropped) lists the office's
// keys from the stream leader's memory, not through a consumer that delivers
// every key (6 s at 100,000 cases, BenchmarkWalkOfficePage). That listing also
// names the keys of cases deleted within MarkerTTL (their removal markers are
// still in the stream): a page passes over them and the list lets them go, so
// that later pages do not read them again.
func TestWalkOfficeFirstListingAsksTheLeadersSubjects(t *testing.T) {
	b, st := openOnEmbedded(t, jsstore.Options{})
	const office = "amt-first"
	var ids []string
	for range 60 {
		ids = append(ids, createFor(t, st, office))
	}
	for _, id := range ids[:10] {
		if err := st.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	ids = ids[10:]
	fresh, err := jsstore.Open(context.Background(), b.JS, jsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := fresh.WalkOffice(office, "", func(s *submission.Submission) bool {
		got = append(got, s.ID)
		return len(got) < 20
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ids[:20]) {
		t.Fatalf("first page: %v, want the 20 oldest left, %v", got, ids[:20])
	}
	if n := jsstore.OfficeConsumerListings(fresh); n != 0 {
		t.Errorf("listings through a consumer: %d, want none", n)
	}
	if n := jsstore.OfficeListLen(fresh, office); n != len(ids) {
		t.Errorf("the list holds %d ids after the page, want the %d left (the deleted ones met are let go)", n, len(ids))
	}
	got = nil
	if err := fresh.WalkOffice(office, "", func(s *submission.Submission) bool { got = append(got, s.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("whole office: %d ids, want %d", len(got), len(ids))
	}
}

// TestWalkOfficeHandsOnOnlyTheOfficesCases: an office's index key names a case
// that now belongs to another office (no build moves a case, but an index key
// outlives a record rewritten by hand or by another build): the listing of the
// first office does not hand it on — an office sees only its own cases.
func TestWalkOfficeHandsOnOnlyTheOfficesCases(t *testing.T) {
	_, st := openOnEmbedded(t, jsstore.Options{})
	const office = "amt-own"
	a, moved := createFor(t, st, office), createFor(t, st, office)
	jsstore.RewriteRecord(t, st, moved, func(r map[string]any) bool { r["officeId"] = office + "-other"; return true })
	var got []string
	if err := st.WalkOffice(office, "", func(s *submission.Submission) bool { got = append(got, s.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{a}) {
		t.Fatalf("WalkOffice(%s) = %v, want only %s", office, got, a)
	}
}

// TestOfficeListingOverPagesOfSubjects: an office of more than 100,000 keys is
// named by the stream leader in pages by offset, which are no snapshot: keys
// dropped between two pages (removal markers whose TTL ran out) move the next
// page's start past keys that stay. The listing asks each page from 1,000 keys
// before the end of the one before and lists again when they do not meet; after
// three tries it lists through a consumer. In every case the list has every key
// that stayed.
func TestOfficeListingOverPagesOfSubjects(t *testing.T) {
	b, st := openOnEmbedded(t, jsstore.Options{})
	const office = "amt-subject-pages"
	keys := make([]string, 108_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%06d", i)
	}
	for i, k := range keys {
		if _, err := b.JS.PublishAsync(jsstore.OfficeKeySubject(st, office, k), nil); err != nil {
			t.Fatal(err)
		}
		if i%1_000 == 999 || i == len(keys)-1 { // fewer outstanding than the client allows (4,000)
			select {
			case <-b.JS.PublishAsyncComplete():
			case <-time.After(time.Minute):
				t.Fatal("publishing the keys took longer than a minute")
			}
		}
	}
	stream, err := b.JS.Stream(context.Background(), "KV_amtsbote")
	if err != nil {
		t.Fatal(err)
	}
	// drop purges the n first keys left (all of them within the first page) and
	// returns them.
	drop := func(n int) []string {
		t.Helper()
		dropped := keys[:n]
		for _, k := range dropped {
			if err := stream.Purge(context.Background(), jetstream.WithPurgeSubject(jsstore.OfficeKeySubject(st, office, k))); err != nil {
				t.Fatal(err)
			}
		}
		keys = keys[n:]
		return dropped
	}
	for _, c := range []struct {
		name      string
		drop      int // keys dropped after every first page
		pages     int // pages read in all
		consumers int64
	}{
		{"a few dropped between the pages", 500, 2, 0},
		{"more dropped than the pages overlap", 1_500, 4, 0}, // once: the second listing meets
		{"the pages never meet", 1_500, 6, 1},                // every time: a consumer lists
	} {
		t.Run(c.name, func(t *testing.T) {
			fresh, err := jsstore.Open(context.Background(), b.JS, jsstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			// A listing from the subjects has the keys dropped after its first
			// page was read; they are cases deleted since, which a page passes
			// over. A consumer lists after every drop.
			pages, firsts := 0, 0
			var since []string
			jsstore.BetweenPages(fresh, func(page int) {
				pages++
				if page > 0 {
					return
				}
				since = nil
				if firsts == 0 || c.consumers > 0 {
					firsts++
					since = drop(c.drop)
				}
			})
			got, err := jsstore.OfficeIDs(fresh, office)
			if err != nil {
				t.Fatal(err)
			}
			want := keys
			if c.consumers == 0 {
				want = append(slices.Clone(since), keys...)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("listed %d keys, want %d: the %d that stayed and %d dropped since the first page (first listed %v, want %v)",
					len(got), len(want), len(keys), len(want)-len(keys), got[:min(1, len(got))], want[:1])
			}
			if pages != c.pages {
				t.Errorf("%d pages read, want %d", pages, c.pages)
			}
			if n := jsstore.OfficeConsumerListings(fresh); n != c.consumers {
				t.Errorf("listings through a consumer: %d, want %d", n, c.consumers)
			}
		})
	}
}

// TestWalkOfficeForgetsNoCaseOfAStreamRestoredMeanwhile: a page lets the ids
// whose records it found gone out of the office's list. When the stream was
// restored meanwhile (deleted and made again from a backup, which has a case
// deleted since) and another page listed the office anew, that case is in the
// new list and its record is there: the first page's word, about the stream
// before, must not take it out — the office would not see it on this store
// while its list is used.
func TestWalkOfficeForgetsNoCaseOfAStreamRestoredMeanwhile(t *testing.T) {
	b, st := openOnEmbedded(t, jsstore.Options{})
	const office = "amt-restored"
	createAs := func(on store.Store, id string) {
		t.Helper()
		s := storetest.NewSubmission(id, "amt24", "m-"+id)
		s.OfficeID = office
		if _, _, _, err := on.Create(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	ids := []string{createFor(t, st, office), createFor(t, st, office)}
	slices.Sort(ids)
	gone, kept := ids[0], ids[1]
	if err := st.Delete(gone); err != nil {
		t.Fatal(err)
	}
	fresh, err := jsstore.Open(context.Background(), b.JS, jsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	walk := func() []string {
		t.Helper()
		var out []string
		if err := fresh.WalkOffice(office, "", func(s *submission.Submission) bool { out = append(out, s.ID); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	restored := false
	// The first listing names gone (its removal marker is in the stream), and
	// the page finds its record gone; before the page ends, the stream is
	// restored with both cases and another page lists the office anew.
	if err := fresh.WalkOffice(office, "", func(s *submission.Submission) bool {
		if restored {
			return true
		}
		restored = true
		if err := b.JS.DeleteStream(context.Background(), "KV_amtsbote"); err != nil {
			t.Fatal(err)
		}
		again, err := jsstore.Open(context.Background(), b.JS, jsstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		createAs(again, gone)
		createAs(again, kept)
		if got := walk(); !slices.Equal(got, ids) {
			t.Fatalf("the page after the restore: %v, want %v", got, ids)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if !restored {
		t.Fatal("the first page handed on no case")
	}
	if got := walk(); !slices.Equal(got, ids) {
		t.Fatalf("after both pages: %v, want %v (the restored case was let go by the page from before the restore)", got, ids)
	}
}
