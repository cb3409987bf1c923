package jsstore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRemovingBytesRewritesEventsAndPages: in cluster mode too, an erasure and the
// retention's removal of a case's bytes kept the office's words in the case's
// events (a validator's 503 and 422 answers quoting the applicant), for
// retention.records. They now go in the batch that records the removal, in the
// document and in the pages of older events, and the stream keeps no earlier
// version of either (what stays in the nodes' block files and raft logs until
// NATS rewrites or cuts them is documented, docs/operations.md "Retention").
// The office's decision reason stays.
func TestRemovingBytesRewritesEventsAndPages(t *testing.T) {
	const words = "Feld Geburtsdatum 01.02.1980 von Max Mustermann ungueltig"
	b, st := openOnEmbedded(t, jsstore.Options{MaxRecordBytes: 16 << 10, Prefix: "redact"})
	ctx := context.Background()
	kv, err := b.JS.Stream(ctx, "KV_redact")
	if err != nil {
		t.Fatal(err)
	}
	change := func(id string, fn func(s *submission.Submission, now time.Time) ([]submission.Event, error)) {
		t.Helper()
		if _, err := st.Update(id, func(s *submission.Submission) ([]submission.Event, error) { return fn(s, time.Now().UTC()) }); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	why := func(status string) submission.Reason {
		return submission.Reason{Public: "receiver answered HTTP " + status,
			Internal: "webhook: receiver answered HTTP " + status + ": " + words + strings.Repeat(" (Feld wiederholt)", 20)}
	}
	// held records what the broker's dispatch records for an office that answers
	// 503 thirty times and then 422, on both of the case's channels.
	held := func(id string) {
		t.Helper()
		if _, _, _, err := st.Create(ctx, storetest.NewSubmission(id, "amt24", "m-"+id), threeEvents(), "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			for range 15 {
				change(id, func(s *submission.Submission, now time.Time) ([]submission.Event, error) {
					return s.AttemptFailed(now, s.Generation, why("503"), now)
				})
			}
			change(id, func(s *submission.Submission, now time.Time) ([]submission.Event, error) {
				return s.ChannelFailed(now, s.Generation, why("422"))
			})
		}
	}
	// versions are the stream sequences of the case's document and pages now.
	versions := func(id string) map[string]uint64 {
		t.Helper()
		out := map[string]uint64{}
		for _, filter := range []string{"$KV.redact.sub." + id, "$KV.redact.events." + id + ".*"} {
			info, err := kv.Info(ctx, jetstream.WithSubjectFilter(filter))
			if err != nil {
				t.Fatal(err)
			}
			for subj := range info.State.Subjects {
				m, err := kv.GetLastMsgForSubject(ctx, subj)
				if err != nil {
					t.Fatal(err)
				}
				out[subj] = m.Sequence
			}
		}
		return out
	}
	quoting := func(id string) int {
		t.Helper()
		evs, err := st.Events(id)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs {
			if strings.Contains(e.Detail+e.Note, words) {
				n++
			}
		}
		return n
	}
	// gone checks that the stream holds none of the earlier versions, nor a
	// current one that quotes the office.
	gone := func(id string, before map[string]uint64) {
		t.Helper()
		for subj, seq := range before {
			if _, err := kv.GetMsg(ctx, seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
				t.Errorf("%s: the version before the removal (seq %d) is still in the stream: %v", subj, seq, err)
			}
		}
		for subj := range versions(id) {
			m, err := kv.GetLastMsgForSubject(ctx, subj)
			if err != nil || strings.Contains(string(m.Data), words) {
				t.Errorf("%s still quotes the office: %v", subj, err)
			}
		}
	}
	br := broker.New(broker.Config{GatewayID: "redact-test"}, st, nil, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)

	held("erased")
	before := versions("erased")
	pages := 0
	for subj := range before {
		if strings.Contains(subj, ".events.") {
			pages++
		}
	}
	if pages == 0 || quoting("erased") != 32 {
		t.Fatalf("%d pages, %d events quoting the office: the checks below would prove nothing", pages, quoting("erased"))
	}
	if _, err := br.Erase(ctx, "erased", "m.meier (admin API)", "Art. 17"); err != nil {
		t.Fatal(err)
	}
	if n := quoting("erased"); n != 0 {
		t.Fatalf("after the erasure %d events still quote the office", n)
	}
	gone("erased", before)

	held("answered")
	const reason = "Nachweis fehlt"
	change("answered", func(s *submission.Submission, now time.Time) ([]submission.Event, error) {
		return s.Confirm(now, "mailbox", submission.Confirmation{Receiver: "office-a"})
	})
	change("answered", func(s *submission.Submission, now time.Time) ([]submission.Event, error) {
		return s.Decide(now, "", submission.OutcomeRejected, reason, "clerk")
	})
	before = versions("answered")
	rep, err := br.GC(ctx, time.Now().Add(91*24*time.Hour), broker.Retention{PackageBytes: 90 * 24 * time.Hour, BlobGrace: time.Hour})
	if err != nil || rep.BytesRemoved != 1 {
		t.Fatalf("the retention after 91 days: %+v %v", rep, err)
	}
	if n := quoting("answered"); n != 0 {
		t.Fatalf("after the retention %d events still quote the office", n)
	}
	gone("answered", before)
	evs, err := st.Events("answered")
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-2]; last.Type != submission.EventRejected || last.Detail != reason {
		t.Fatalf("the decision's event after the retention: %+v, want its reason kept", last)
	}
}
