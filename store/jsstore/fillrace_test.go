package jsstore

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestIndexFillLosesToAChangeOnAnotherNode: a node that opens a bucket without
// the held, reply or undecided index fills it from a scan of the records; the
// fill's puts used to be unconditional, so a change another node made between
// that scan and the put was written over: a case delivered there (which removed
// held.<id> with its record) was put back into the held index, a case decided
// there back into the undecided index, a case deleted there got its held and
// reply keys back, and a held case's erasure lost from its entry — for good, as
// the marker then says the index is complete. Now each put expects its record
// at the sequence the scan read; a record that moved is read again and its keys
// decided anew. The change lands deterministically in the hook between the scan
// and the first put, on the single embedded server and on a three-node R3
// cluster (the server checks the expectation on different paths for the two).
func TestIndexFillLosesToAChangeOnAnotherNode(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		b, err := bus.Start(context.Background(), bus.Options{StoreDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		fillRace(t, b.JS, b.JS, Options{}) // one server: two stores on it are two nodes
	})
	t.Run("cluster", func(t *testing.T) {
		c := natstest.StartCluster(t, 3)
		js := func(srv *natstest.Server) jetstream.JetStream {
			nc, err := nats.Connect(srv.ClientURL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			return js
		}
		fillRace(t, js(c.Servers[0]), js(c.Servers[1]), Options{Replicas: 3})
	})
}

// fillRace runs the race: node B (on jsB) keeps the indexes and changes records
// while node A (on jsA) fills them on open.
func fillRace(t *testing.T, jsA, jsB jetstream.JetStream, o Options) {
	ctx := context.Background()
	nodeB, err := Open(ctx, jsB, o)
	if err != nil {
		t.Fatal(err)
	}
	create := func(id string, fn func(*submission.Submission) ([]submission.Event, error)) {
		t.Helper()
		sub := storetest.NewSubmission(id, "amt24", "m-"+id)
		sub.State = submission.StateHeld
		if _, _, _, err := nodeB.Create(ctx, sub, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
		if fn != nil {
			update(t, nodeB, id, fn)
		}
	}
	now := time.Now().UTC()
	confirm := func(x *submission.Submission) ([]submission.Event, error) {
		return x.Confirm(now, "mailbox", submission.Confirmation{Receiver: "Amt A"})
	}
	reply := func(x *submission.Submission) ([]submission.Event, error) {
		return x.AddReply(now, submission.Reply{ID: "r1", MessageID: "reply-of-gone", Kind: "Bescheid"})
	}
	both := func(a, b func(*submission.Submission) ([]submission.Event, error)) func(*submission.Submission) ([]submission.Event, error) {
		return func(x *submission.Submission) ([]submission.Event, error) {
			e1, err := a(x)
			if err != nil {
				return nil, err
			}
			e2, err := b(x)
			return append(e1, e2...), err
		}
	}
	create("delivered", nil)                // held at the scan, delivered before the put
	create("erased", nil)                   // held at the scan, held and erased before the put
	create("deleted", nil)                  // held at the scan, deleted before the put
	create("stays", nil)                    // held, untouched: its put lands first time
	create("replied", both(confirm, reply)) // a reply at the scan, deleted before the put
	create("decided", confirm)              // awaits a decision at the scan, decided before the put
	create("waits", confirm)                // awaits a decision, untouched
	forgetIndexes(t, nodeB)

	hooked := map[string]bool{}
	nodeA, err := openWith(ctx, jsA, o, func(s *Store) {
		s.afterFillScan = func(what string) {
			hooked[what] = true
			switch what {
			case "held submissions":
				update(t, nodeB, "delivered", confirm)
				update(t, nodeB, "erased", func(x *submission.Submission) ([]submission.Event, error) {
					x.BytesGone(time.Now().UTC())
					return []submission.Event{{Type: submission.EventBytesRemoved}}, nil
				})
				if err := nodeB.Delete("deleted"); err != nil {
					t.Fatal(err)
				}
			case "replies":
				if err := nodeB.Delete("replied"); err != nil {
					t.Fatal(err)
				}
			case "undecided submissions":
				update(t, nodeB, "decided", func(x *submission.Submission) ([]submission.Event, error) {
					return x.Decide(time.Now().UTC(), "", submission.OutcomeAccepted, "", "fv")
				})
			}
		}
	})
	if err != nil {
		t.Fatalf("open while another node changes records: %v", err)
	}
	if len(hooked) != 3 {
		t.Fatalf("the fills that ran: %v, want all three", hooked)
	}
	for name, st := range map[string]*Store{"node A": nodeA, "node B": nodeB} {
		held, err := st.Held()
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(held, func(a, b store.Waiting) int { return strings.Compare(a.ID, b.ID) })
		if ids := store.IDs(held); !slices.Equal(ids, []string{"erased", "stays"}) {
			t.Errorf("%s: held index %v, want [erased stays] (delivered and deleted cases left there by the fill?)", name, ids)
		} else if !held[0].Erased || held[1].Erased {
			t.Errorf("%s: held entries %+v: the erasure of \"erased\" must show, and only there", name, held)
		}
		ud, err := st.Undecided()
		if err != nil {
			t.Fatal(err)
		}
		ids := store.IDs(ud)
		slices.Sort(ids)
		// "delivered" was delivered by the mailbox before the undecided fill's scan.
		if !slices.Equal(ids, []string{"delivered", "waits"}) {
			t.Errorf("%s: undecided index %v, want [delivered waits] (a decided case left there by the fill?)", name, ids)
		}
		if r, err := st.RepliesByMessage("reply-of-gone"); err != nil || len(r) != 0 {
			t.Errorf("%s: reply index names %v (%v), want none: the case was deleted", name, r, err)
		}
	}
	if nodeA.Stats().Conflicts == 0 {
		t.Error("node A's fill saw no conflict: the test did not race it")
	}
}

func update(t *testing.T, st *Store, id string, fn func(*submission.Submission) ([]submission.Event, error)) {
	t.Helper()
	if _, err := st.Update(id, fn); err != nil {
		t.Fatalf("update %s: %v", id, err)
	}
}

// forgetIndexes makes s's bucket look as a build before the held, reply and
// undecided indexes left it: no keys and no markers.
func forgetIndexes(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	for _, subj := range []string{s.subject("held.>"), s.subject("undecided.>"), s.subject("reply.>"),
		s.heldIndexedKey(), s.undecidedIndexedKey(), s.repliesIndexedKey()} {
		if err := s.kv.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			t.Fatalf("forget indexes: %v", err)
		}
	}
}
