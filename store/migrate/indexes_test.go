package migrate_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/migrate"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestCheckNamesIndexFaults: `store verify` read only blobs, though
// docs/architecture.md said it checks the index rule (an entry exactly while the
// case is in the state); a delivered case in the held index, a held case missing
// from it, an entry whose value names another office and an entry without a
// record all passed (an audit, 2026-12-05). Check names each; a sound store has
// none. So it does for the undecided index: a case that awaits its office's
// decision and is missing from it, and a decided one left in it (what an older
// build's decision leaves: the alert would fire for it for ever), and for the
// index by case: a Nachreichung missing from it (an older build's node wrote
// it). Since 2026-12-07 evening also the indexes the records' writes keep
// beside those: a case missing from its office's list, an idempotency key and
// a reply's entry missing, and an entry under a case the Nachreichung does not
// name (what `store reindex` changed while verify called the store sound).
func TestCheckNamesIndexFaults(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(id string, st submission.State) *submission.Submission {
		s := storetest.NewSubmission(id, "amt24", "m-"+id)
		d, err := db.Blobs().Put([]byte("package of " + id))
		if err != nil {
			t.Fatal(err)
		}
		s.PackageSHA256, s.Attachments, s.State = d, nil, st
		if _, _, _, err := db.Create(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
		return s
	}
	delivered := mk("01a2-delivered", submission.StateDelivered)
	awaits := func(id string) *submission.Submission {
		s := mk(id, submission.StateQueued)
		out, err := db.Update(s.ID, func(x *submission.Submission) ([]submission.Event, error) {
			return x.Confirm(time.Now().UTC(), "api", submission.Confirmation{Receiver: "office (pull API)"})
		})
		if err != nil || !out.AwaitsDecision() {
			t.Fatalf("%s: %v", id, err)
		}
		return out
	}
	undecided, decided := awaits("01a2-undecided"), awaits("01a2-decided")
	// Replies with the office's message id (XTA's XTAMessageID) to both.
	reply := func(s *submission.Submission, msg string) {
		d, err := db.Blobs().Put([]byte("reply " + msg))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Update(s.ID, func(x *submission.Submission) ([]submission.Event, error) {
			return x.AddReply(time.Now().UTC(), submission.Reply{ID: "r-" + msg, Kind: "Bescheid", MessageID: msg, SHA256: d, Channel: "xta"})
		}); err != nil {
			t.Fatalf("reply %s: %v", msg, err)
		}
	}
	reply(undecided, "xta-msg-1")
	reply(decided, "xta-msg-2")
	if _, err := db.Update(decided.ID, func(x *submission.Submission) ([]submission.Event, error) {
		return x.Decide(time.Now().UTC(), "", submission.OutcomeAccepted, "", "fv")
	}); err != nil {
		t.Fatal(err)
	}
	held := mk("01a2-held", submission.StateHeld)
	handed := mk("01a2-handed", submission.StateHandedOver)
	// A Nachreichung to the handed-over case.
	nach := storetest.NewSubmission("01a2-nachreichung", "amt24", "m-01a2-nachreichung")
	nach.Attachments, nach.State, nach.CaseID = nil, submission.StateHeld, handed.ID
	nach.PackageSHA256, _ = db.Blobs().Put([]byte("package of 01a2-nachreichung"))
	if _, _, _, err := db.Create(context.Background(), nach, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	queued := mk("01a2-queued", submission.StateQueued)
	// An XTA message fetched and not yet closed, whose entry a morning build of
	// 2026-12-05 wrote without the fetched bit: sound (an audit: it was a fault).
	xta := storetest.NewSubmission("01a2-fetched", "amt24", "m-01a2-fetched")
	xta.Attachments, xta.State = nil, submission.StateHandedOver
	xta.PackageSHA256, _ = db.Blobs().Put([]byte("package of 01a2-fetched"))
	if _, _, _, err := db.Create(context.Background(), xta, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
		t.Fatal(err)
	}
	notFetched := *xta
	if _, err := db.Update(xta.ID, func(x *submission.Submission) ([]submission.Event, error) {
		return x.Fetched(time.Now(), time.Now(), "xta")
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, faults, err := migrate.Check(context.Background(), db, nil); err != nil || len(faults) != 0 {
		t.Fatalf("a sound store: %v %v", faults, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	other := *handed
	other.OfficeID = "another-office"
	storetest.EditFile(t, dir, func(tx *bolt.Tx) error {
		h := tx.Bucket([]byte("held"))
		if err := h.Put([]byte(delivered.ID), store.WaitingValue(delivered)); err != nil {
			return err
		}
		if err := h.Delete([]byte(held.ID)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("handed_over")).Put([]byte(handed.ID), store.WaitingValue(&other)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("handed_over")).Put([]byte(xta.ID), store.WaitingValue(&notFetched)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("undecided")).Delete([]byte(undecided.ID)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("follow_ups")).Delete([]byte(handed.ID + "\x00" + nach.ID)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("follow_ups")).Put([]byte(queued.ID+"\x00"+nach.ID), nil); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("undecided")).Put([]byte(decided.ID), store.WaitingValue(undecided)); err != nil {
			return err
		}
		// The indexes the records' writes keep beside the waiting ones: the
		// office's list, the idempotency key, a reply by its message id.
		if err := tx.Bucket([]byte("by_office")).Delete([]byte(queued.OfficeID + "\x00" + queued.ID)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("idempotency")).Delete([]byte(held.Sender + "\x00" + held.MessageID)); err != nil {
			return err
		}
		rh := store.ReplyIndexHash("xta-msg-2")
		if err := tx.Bucket([]byte("replies")).Delete(append(rh[:], decided.ID...)); err != nil {
			return err
		}
		return tx.Bucket([]byte("outbox")).Put([]byte("01a2-gone"), nil)
	})
	db, err = store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, _, faults, err := migrate.Check(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range faults {
		got = append(got, f.String())
	}
	slices.Sort(got)
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"submission 01a2-delivered, index held: listed, but the case is delivered",
		"submission 01a2-held, index held: not listed, but the case is held",
		`submission 01a2-handed, index handed_over: its entry names office "another-office"`,
		"submission 01a2-gone, index outbox: an entry without a record",
		"submission 01a2-undecided, index undecided: not listed, but the case is delivered via api and awaits its office's decision",
		"submission 01a2-decided, index undecided: listed, but the case is accepted",
		"submission 01a2-nachreichung, index follow_ups: not listed under its case 01a2-handed",
		`submission 01a2-queued, index by_office: not in the list of its office ` + queued.OfficeID,
		"submission 01a2-held, index idempotency: message m-01a2-held of amt24 does not find it",
		"submission 01a2-decided, index replies: its reply r-xta-msg-2 is not found by its message id xta-msg-2",
		"submission 01a2-nachreichung, index follow_ups: an entry under the case 01a2-queued, but the case names another case",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	if len(faults) != 11 || st.IndexFaults != 11 {
		t.Errorf("%d faults (stats %d), want 11:\n%s", len(faults), st.IndexFaults, all)
	}
}
