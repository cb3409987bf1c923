package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"
)

// indexFaultStore makes a store whose records are sound and whose indexes hold
// the faults an older build leaves (a case it decided still in the undecided
// index, one it delivered missing from it) and the other kinds `store verify`
// names: entries missing, left over, without a record, with a wrong value, in
// every derived index.
func indexFaultStore(t *testing.T) (dir string, idem *submission.Submission) {
	t.Helper()
	ctx := context.Background()
	dir = t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(id string, st submission.State, edit func(*submission.Submission)) *submission.Submission {
		s := storetest.NewSubmission(id, "amt24", "m-"+id)
		d, err := db.Blobs().Put([]byte("package of " + id))
		if err != nil {
			t.Fatal(err)
		}
		s.PackageSHA256, s.Attachments, s.State = d, nil, st
		if edit != nil {
			edit(s)
		}
		if _, _, _, err := db.Create(ctx, s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
		return s
	}
	awaits := func(id string) *submission.Submission {
		s := mk(id, submission.StateQueued, nil)
		out, err := db.Update(s.ID, func(x *submission.Submission) ([]submission.Event, error) {
			return x.Confirm(time.Now().UTC(), "api", submission.Confirmation{Receiver: "office (pull API)"})
		})
		if err != nil || !out.AwaitsDecision() {
			t.Fatalf("%s: %v", id, err)
		}
		return out
	}
	undecided, decided := awaits("ri-undecided"), awaits("ri-decided")
	if _, err := db.Update(decided.ID, func(x *submission.Submission) ([]submission.Event, error) {
		return x.Decide(time.Now().UTC(), "", submission.OutcomeAccepted, "", "fv")
	}); err != nil {
		t.Fatal(err)
	}
	delivered := mk("ri-delivered", submission.StateDelivered, nil)
	held := mk("ri-held", submission.StateHeld, nil)
	handed := mk("ri-handed", submission.StateHandedOver, nil)
	queued := mk("ri-queued", submission.StateQueued, nil)
	replyBytes, err := db.Blobs().Put([]byte("the office's answer"))
	if err != nil {
		t.Fatal(err)
	}
	answered := mk("ri-answered", submission.StateAccepted, func(s *submission.Submission) {
		s.Decision = &submission.Decision{Outcome: submission.OutcomeAccepted, At: time.Now().UTC(), Actor: "fv"}
		s.Replies = []submission.Reply{{ID: "r1", Kind: "Bescheid", MessageID: "xta-4711", Size: 19, SHA256: replyBytes, Channel: "xta", At: time.Now().UTC()}}
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	b, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other := *handed
	other.OfficeID = "another-office"
	rk := func(messageID, id string) []byte { h := store.ReplyIndexHash(messageID); return append(h[:], id...) }
	if err := b.Update(func(tx *bolt.Tx) error {
		for _, op := range []struct {
			bucket string
			k, v   []byte
			del    bool
		}{
			{bucket: "undecided", k: []byte(undecided.ID), del: true},                         // delivered by an older build: no entry
			{bucket: "undecided", k: []byte(decided.ID), v: store.WaitingValue(undecided)},    // decided by an older build: entry left
			{bucket: "held", k: []byte(delivered.ID), v: store.WaitingValue(delivered)},       // a stale held entry
			{bucket: "held", k: []byte(held.ID), del: true},                                   // a held case nobody lists
			{bucket: "outbox", k: []byte(queued.ID), del: true},                               // a queued case never delivered
			{bucket: "outbox", k: []byte("ri-gone"), v: nil},                                  // an entry without a record
			{bucket: "handed_over", k: []byte(handed.ID), v: store.WaitingValue(&other)},      // a value naming another office
			{bucket: "by_office", k: []byte(queued.OfficeID + "\x00" + queued.ID), del: true}, // missing from its office's list
			{bucket: "by_office", k: []byte("another-office\x00" + delivered.ID)},             // in another office's list
			{bucket: "by_office", k: []byte(queued.OfficeID + "\x00ri-gone")},                 // without a record
			{bucket: "replies", k: rk("xta-4711", answered.ID), del: true},                    // a reply not found by its id
			{bucket: "replies", k: rk("xta-0815", answered.ID)},                               // a reply the case does not hold
			{bucket: "idempotency", k: []byte(held.Sender + "\x00" + held.MessageID), del: true},
			{bucket: "idempotency", k: []byte("amt24\x00m-ri-gone"), v: []byte("ri-gone")},
		} {
			bk := tx.Bucket([]byte(op.bucket))
			var err error
			if op.del {
				err = bk.Delete(op.k)
			} else {
				err = bk.Put(op.k, op.v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return dir, held
}

// TestStoreReindexRepairsIndexFaults: after an older build wrote to a store
// (a way back a release and forward again), `store verify` named the index
// faults it left and nothing repaired them but an export and an import into a
// new store. `store reindex` rebuilds every derived index from the records,
// says per index what it changed, leaves a store that verify passes, and a
// second run finds nothing to do.
func TestStoreReindexRepairsIndexFaults(t *testing.T) {
	ctx := context.Background()
	t.Setenv("AMTSBOTE_CONFIG", "")
	dir, idem := indexFaultStore(t)

	var o, e bytes.Buffer
	// Verify names every entry reindex changes below, each once: a store it
	// passes gives reindex nothing to do.
	if rc := runStore(ctx, []string{"verify", "-data", dir}, &o, &e); rc != 1 || !strings.Contains(o.String(), "14 index faults") {
		t.Fatalf("verify before: rc %d\n%s%s", rc, o.String(), e.String())
	}
	for _, want := range []string{
		"index: submission ri-queued, index by_office: not in the list of its office",
		"index: submission ri-delivered, index by_office: an entry in the list of office another-office, but the case names another office\n",
		"index: submission ri-gone, index by_office: an entry in the list of office " + idem.OfficeID + ", but the case is gone\n",
		"index: submission ri-answered, index replies: its reply r1 is not found by its message id xta-4711",
		"index: submission ri-answered, index replies: an entry for a reply, but the case names no reply with that message id\n",
		"index: submission ri-held, index idempotency: message " + idem.MessageID + " of " + idem.Sender + " does not find it",
		"index: submission ri-gone, index idempotency: the key of message m-ri-gone of amt24, but the case is gone\n",
	} {
		if !strings.Contains(o.String(), want) {
			t.Errorf("verify: missing %q in:\n%s", want, o.String())
		}
	}
	o.Reset()
	e.Reset()
	if rc := runStore(ctx, []string{"reindex", "-data", dir}, &o, &e); rc != 0 {
		t.Fatalf("reindex: rc %d\n%s%s", rc, o.String(), e.String())
	}
	for _, want := range []string{
		"outbox: 1 added, 1 removed, 0 rewritten\n",
		"handed_over: 0 added, 0 removed, 1 rewritten\n",
		"held: 1 added, 1 removed, 0 rewritten\n",
		"undecided: 1 added, 1 removed, 0 rewritten\n",
		"by_office: 1 added, 2 removed, 0 rewritten\n",
		"replies: 1 added, 1 removed, 0 rewritten\n",
		"idempotency: 1 added, 1 removed, 0 rewritten\n",
		"reindex: 7 submissions, 14 index entries changed",
	} {
		if !strings.Contains(o.String(), want) {
			t.Errorf("missing %q in:\n%s", want, o.String())
		}
	}

	o.Reset()
	e.Reset()
	if rc := runStore(ctx, []string{"verify", "-data", dir}, &o, &e); rc != 0 || !strings.Contains(o.String(), "0 index faults") {
		t.Fatalf("verify after: rc %d\n%s%s", rc, o.String(), e.String())
	}
	o.Reset()
	e.Reset()
	if rc := runStore(ctx, []string{"reindex", "-data", dir}, &o, &e); rc != 0 || !strings.Contains(o.String(), "reindex: 7 submissions, every index agrees with the records: nothing to do") ||
		strings.Contains(o.String(), "added") {
		t.Fatalf("second reindex: rc %d\n%s%s", rc, o.String(), e.String())
	}

	// What the indexes serve works again: the message is found by its id (a
	// repeat is answered, not taken twice), the reply by the office's id.
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if s, err := db.FindByMessage(idem.Sender, idem.MessageID); err != nil || s.ID != idem.ID {
		t.Fatalf("FindByMessage: %v %v", s, err)
	}
	if ids, err := db.RepliesByMessage("xta-4711"); err != nil || len(ids) != 1 || ids[0] != "ri-answered" {
		t.Fatalf("RepliesByMessage: %v %v", ids, err)
	}
}

// TestStoreReindexRefusesARunningGatewaysStore: the repair writes the file a
// gateway serves from; with the gateway running (its process holds the file)
// it refuses and says why, and changes nothing.
func TestStoreReindexRefusesARunningGatewaysStore(t *testing.T) {
	t.Setenv("AMTSBOTE_CONFIG", "")
	dir, _ := indexFaultStore(t)
	running, err := store.Open(dir, store.Options{}) // what a serving gateway holds
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	var o, e bytes.Buffer
	if rc := runStore(context.Background(), []string{"reindex", "-data", dir}, &o, &e); rc != 1 || !strings.Contains(e.String(), "is a gateway running on it?") {
		t.Fatalf("rc %d\n%s%s", rc, o.String(), e.String())
	}
	if held, err := running.Held(); err != nil || len(held) != 1 || held[0].ID != "ri-delivered" {
		t.Fatalf("the refused run changed the held index: %v %v", held, err)
	}
}

// clusterStoreForCommands starts a NATS server with JetStream, opens the
// cluster's store on it as a gateway would, and returns the bus (to write past
// the store, as an older node or a fault does), the store, and run, which runs
// `amtsbote store <args>` with a configuration of store.backend jetstream on
// that server and returns its exit code, stdout and stderr.
func clusterStoreForCommands(t *testing.T) (*bus.Bus, *jsstore.Store, func(args ...string) (int, string, string)) {
	t.Helper()
	ctx := context.Background()
	t.Setenv("AMTSBOTE_CONFIG", "")
	url := natstest.StartSingle(t).URLs()
	b, err := bus.Start(ctx, bus.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	st, err := jsstore.Open(ctx, b.JS, jsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "amtsbote.yaml")
	if err := os.WriteFile(cfg, []byte("store:\n  backend: jetstream\nnats:\n  url: "+url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return b, st, func(args ...string) (int, string, string) {
		var o, e bytes.Buffer
		rc := runStore(ctx, append(args, "-config", cfg, "-data", t.TempDir()), &o, &e)
		return rc, o.String(), e.String()
	}
}

// TestStoreReindexRepairsAClusterStore: a cluster's store had no repair —
// reindex refused it and the operator removed keys with `nats kv del` and
// restarted a gateway to refill an index. Now it repairs the store beside its
// gateways: the faults an older node leaves (a case it decided still in the
// undecided index, one it delivered missing from it), a message that does not
// find its case, a case in another office's list; -dry-run says what it would
// change and writes nothing; verify then passes and a second run finds nothing
// to do, in the single node's words. Verify names each entry reindex changes
// (the key in another office's list since 2026-12-08; before, it named 3 and
// reindex changed 4).
func TestStoreReindexRepairsAClusterStore(t *testing.T) {
	ctx := context.Background()
	b, st, run := clusterStoreForCommands(t)
	mk := func(id string, state submission.State) *submission.Submission {
		s := storetest.NewSubmission(id, "amt24", "m-"+id)
		d, err := st.Blobs().Put([]byte("package of " + id))
		if err != nil {
			t.Fatal(err)
		}
		s.PackageSHA256, s.Attachments, s.State = d, nil, state
		if _, _, _, err := st.Create(ctx, s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
		return s
	}
	awaits := func(id string) *submission.Submission {
		s := mk(id, submission.StateQueued)
		out, err := st.Update(s.ID, func(x *submission.Submission) ([]submission.Event, error) {
			return x.Confirm(time.Now().UTC(), "api", submission.Confirmation{Receiver: "office (pull API)"})
		})
		if err != nil || !out.AwaitsDecision() {
			t.Fatalf("%s: %v", id, err)
		}
		return out
	}
	undecided, decided := awaits("ri-undecided"), awaits("ri-decided")
	if _, err := st.Update(decided.ID, func(x *submission.Submission) ([]submission.Event, error) {
		return x.Decide(time.Now().UTC(), "", submission.OutcomeAccepted, "", "fv")
	}); err != nil {
		t.Fatal(err)
	}
	delivered := mk("ri-delivered", submission.StateDelivered)
	held := mk("ri-held", submission.StateHeld)

	// The faults, written as a node of an older build (or a lost write) leaves
	// them: straight into the stream, past the store.
	kv, err := b.JS.Stream(ctx, "KV_amtsbote")
	if err != nil {
		t.Fatal(err)
	}
	idem := sha256.Sum256([]byte(held.Sender + "\x00" + held.MessageID))
	for _, subj := range []string{"$KV.amtsbote.undecided." + undecided.ID, "$KV.amtsbote.idem." + hex.EncodeToString(idem[:])} {
		if err := kv.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			t.Fatal(err)
		}
	}
	for subj, v := range map[string][]byte{
		"$KV.amtsbote.undecided." + decided.ID:               store.WaitingValue(undecided),
		"$KV.amtsbote.office.another-office." + delivered.ID: nil,
	} {
		if _, err := b.JS.Publish(ctx, subj, v); err != nil {
			t.Fatal(err)
		}
	}

	rc, out, errOut := run("verify")
	if rc != 1 || !strings.Contains(out, "4 index faults") ||
		!strings.Contains(out, "index: submission ri-delivered, index by_office: an entry in the list of office another-office, but the case names another office\n") {
		t.Fatalf("verify before: rc %d\n%s%s", rc, out, errOut)
	}
	rc, out, errOut = run("reindex", "-dry-run")
	if rc != 0 || !strings.Contains(out, "reindex -dry-run: 4 submissions, 4 index entries would change; nothing written") {
		t.Fatalf("dry run: rc %d\n%s%s", rc, out, errOut)
	}
	if rc, out, _ := run("verify"); rc != 1 || !strings.Contains(out, "4 index faults") {
		t.Fatalf("the dry run wrote: verify after it: rc %d\n%s", rc, out)
	}
	rc, out, errOut = run("reindex")
	if rc != 0 {
		t.Fatalf("reindex: rc %d\n%s%s", rc, out, errOut)
	}
	for _, want := range []string{
		"undecided: 1 added, 1 removed, 0 rewritten\n",
		"by_office: 0 added, 1 removed, 0 rewritten\n",
		"idempotency: 1 added, 0 removed, 0 rewritten\n",
		"reindex: 4 submissions, 4 index entries changed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if rc, out, errOut := run("verify"); rc != 0 || !strings.Contains(out, "0 index faults") {
		t.Fatalf("verify after: rc %d\n%s%s", rc, out, errOut)
	}
	if rc, out, errOut := run("reindex"); rc != 0 || !strings.Contains(out, "reindex: 4 submissions, every index agrees with the records: nothing to do") {
		t.Fatalf("second reindex: rc %d\n%s%s", rc, out, errOut)
	}
	if s, err := st.FindByMessage(held.Sender, held.MessageID); err != nil || s.ID != held.ID {
		t.Fatalf("FindByMessage: %v %v", s, err)
	}
}

// TestStoreVerifyNamesAClusterStoresStrays: on a cluster `store verify` named
// no key of an office's list, the index by case, the reply index or the
// idempotency keys that no record accounts for, and `store reindex` removed
// them: a store verify passed was changed by reindex (docs/cluster.md listed
// it as a gap). Verify names each of every kind — one naming another office,
// case, reply or message, one of a gone case — exit 1, reindex removes exactly
// those, and verify passes.
func TestStoreVerifyNamesAClusterStoresStrays(t *testing.T) {
	ctx := context.Background()
	b, st, run := clusterStoreForCommands(t)
	mk := func(id string, edit func(*submission.Submission)) *submission.Submission {
		s := storetest.NewSubmission(id, "amt24", "m-"+id)
		d, err := st.Blobs().Put([]byte("package of " + id))
		if err != nil {
			t.Fatal(err)
		}
		s.PackageSHA256, s.Attachments, s.State = d, nil, submission.StateDelivered
		if edit != nil {
			edit(s)
		}
		if _, _, _, err := st.Create(ctx, s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := mk("sy-first", nil)
	answered := mk("sy-answered", func(s *submission.Submission) {
		s.Replies = []submission.Reply{{ID: "r1", Kind: "Bescheid", MessageID: "xta-4711", Size: 1, SHA256: s.PackageSHA256, Channel: "xta", At: time.Now().UTC()}}
	})
	followUp := mk("sy-followup", func(s *submission.Submission) { s.CaseID = first.ID })
	office := first.OfficeID

	// The strays, as a lost removal or a bug leaves them: straight into the
	// stream, past the store.
	reply := func(messageID string) string { h := store.ReplyIndexHash(messageID); return hex.EncodeToString(h[:]) }
	idem := func(sender, msg string) string {
		h := sha256.Sum256([]byte(sender + "\x00" + msg))
		return hex.EncodeToString(h[:])
	}
	for subj, v := range map[string][]byte{
		"office.another-office." + first.ID:              nil,
		"office." + office + ".sy-gone":                  nil,
		"followup." + answered.ID + "." + followUp.ID:    nil,
		"followup." + first.ID + ".sy-gone":              nil,
		"reply." + reply("xta-0815") + "." + answered.ID: nil,
		"reply." + reply("xta-4711") + ".sy-gone":        nil,
		"idem." + idem("amt24", "m-other"):               []byte(first.ID),
		"idem." + idem("amt24", "m-sy-gone"):             []byte("sy-gone"),
	} {
		if _, err := b.JS.Publish(ctx, "$KV.amtsbote."+subj, v); err != nil {
			t.Fatal(err)
		}
	}

	rc, out, errOut := run("verify")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "index: ") {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	want := []string{
		"index: submission sy-answered, index replies: an entry for a reply, but the case names no reply with that message id",
		"index: submission sy-first, index by_office: an entry in the list of office another-office, but the case names another office",
		"index: submission sy-first, index idempotency: the key of a message (sender and message id kept hashed), but the case names another message",
		"index: submission sy-followup, index follow_ups: an entry under the case sy-answered, but the case names another case",
		"index: submission sy-gone, index by_office: an entry in the list of office " + office + ", but the case is gone",
		"index: submission sy-gone, index follow_ups: an entry under the case sy-first, but the case is gone",
		"index: submission sy-gone, index idempotency: the key of a message (sender and message id kept hashed), but the case is gone",
		"index: submission sy-gone, index replies: an entry for a reply, but the case is gone",
	}
	if rc != 1 || !slices.Equal(lines, want) || !strings.Contains(out, "verify: 3 submissions, 3 blobs read, 0 unreadable, 8 index faults\n") {
		t.Fatalf("verify before: rc %d\n%s%s\nwant the lines\n%s", rc, out, errOut, strings.Join(want, "\n"))
	}
	rc, out, errOut = run("reindex")
	if rc != 0 {
		t.Fatalf("reindex: rc %d\n%s%s", rc, out, errOut)
	}
	for _, w := range []string{
		"by_office: 0 added, 2 removed, 0 rewritten\n",
		"replies: 0 added, 2 removed, 0 rewritten\n",
		"follow_ups: 0 added, 2 removed, 0 rewritten\n",
		"idempotency: 0 added, 2 removed, 0 rewritten\n",
		"reindex: 3 submissions, 8 index entries changed",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("reindex: missing %q in:\n%s", w, out)
		}
	}
	if rc, out, errOut := run("verify"); rc != 0 || !strings.Contains(out, "verify: 3 submissions, 3 blobs read, 0 unreadable, 0 index faults\n") || strings.Contains(out, "index: ") {
		t.Fatalf("verify after reindex: rc %d\n%s%s", rc, out, errOut)
	}
}

// TestStoreReindexDryRunIsForAClusterStore: a single node's reindex has no dry
// run (verify names what it would change); it says so and changes nothing.
func TestStoreReindexDryRunIsForAClusterStore(t *testing.T) {
	t.Setenv("AMTSBOTE_CONFIG", "")
	dir, _ := indexFaultStore(t)
	var o, e bytes.Buffer
	if rc := runStore(context.Background(), []string{"reindex", "-dry-run", "-data", dir}, &o, &e); rc != 2 || !strings.Contains(e.String(), "store verify") {
		t.Fatalf("rc %d\n%s%s", rc, o.String(), e.String())
	}
}
