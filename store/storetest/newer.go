package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// testKeepsNewerKeys: in a cluster halfway through a rolling upgrade (or on a
// way back to the build before), a gateway of the older build rewrites records
// a newer one wrote. The keys it does not know stay — at the top of the record,
// in a nested object, in a list's element — while the keys it knows are its own
// (a mark it withdrew stays withdrawn), and an erasure keeps none of them: the
// older build cannot know whether they hold personal data.
func (s *suite) testKeepsNewerKeys(t *testing.T) {
	st := s.h.Open(t)
	sub := mustCreate(t, st, NewSubmission(uid("k"), uid("p"), uid("m")), firstEvents(), "r")
	now := time.Now().UTC()
	for _, fn := range []func(*submission.Submission) ([]submission.Event, error){
		deliverVia("api"),
		func(x *submission.Submission) ([]submission.Event, error) {
			return x.Decide(now, "", submission.OutcomeAccepted, "", "fv")
		},
		func(x *submission.Submission) ([]submission.Event, error) {
			return x.MarkProcessed(now, true, "fv", "api")
		},
	} {
		if _, err := st.Update(sub.ID, fn); err != nil {
			t.Fatal(err)
		}
	}
	newer := map[string]func(r map[string]any) map[string]any{
		"futureTop":    func(r map[string]any) map[string]any { return r },
		"futureNested": func(r map[string]any) map[string]any { return r["decision"].(map[string]any) },
		"futureInList": func(r map[string]any) map[string]any { return target(t, r, "webhook") },
	}
	st = s.h.Rewrite(t, st, sub.ID, func(r map[string]any) bool {
		if r["processed"] != true {
			t.Fatalf("the record as stored has no processed mark to withdraw: %v", r)
		}
		for key, at := range newer {
			at(r)[key] = map[string]any{"by": "a newer build", "key": key}
		}
		return true
	})
	got, err := st.Get(sub.ID)
	if err != nil || got.Decision == nil || !got.Processed {
		t.Fatalf("a record with a newer build's keys reads as %+v, %v", got, err)
	}

	// The older build's changes, concurrent ones (a writer that finds the
	// record changed since it read it decides again on the current one) and
	// one that withdraws the office's mark.
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range s.h.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := st.Update(sub.ID, func(x *submission.Submission) ([]submission.Event, error) {
				x.TotalAttempts++
				return []submission.Event{{Type: "counted", Attempt: x.TotalAttempts, Detail: fmt.Sprint(i)}}, nil
			}); err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		}()
	}
	close(start)
	waitGroup(t, &wg)
	if _, err := st.Update(sub.ID, func(x *submission.Submission) ([]submission.Event, error) {
		return x.MarkProcessed(time.Now().UTC(), false, "fv", "api")
	}); err != nil {
		t.Fatal(err)
	}
	// A new plan (the office's channels as configured now: replan) puts the
	// channels in another order; what the newer build wrote on one channel
	// stays that channel's, not the one now in its place.
	if _, err := st.Update(sub.ID, func(x *submission.Submission) ([]submission.Event, error) {
		slices.Reverse(x.Targets)
		return []submission.Event{{Type: "replanned"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	st = s.h.Rewrite(t, st, sub.ID, func(r map[string]any) bool {
		for key, at := range newer {
			v, ok := at(r)[key].(map[string]any)
			if !ok || v["key"] != key {
				t.Errorf("after an update by this build the newer build's %s is %v, want it kept", key, at(r)[key])
			}
		}
		if _, ok := r["processed"]; ok {
			t.Errorf("the withdrawn mark came back: processed = %v", r["processed"])
		}
		if v, ok := target(t, r, "mailbox")["futureInList"]; ok {
			t.Errorf("the mailbox target, now first, has the webhook target's newer key: %v", v)
		}
		return false
	})
	if got, err := st.Get(sub.ID); err != nil || got.Processed || got.Decision == nil {
		t.Fatalf("after the update: %+v, %v", got, err)
	}

	// An erasure keeps none of them.
	if _, err := st.UpdateRedacting(sub.ID, func(x *submission.Submission) ([]submission.Event, error) {
		x.BytesGone(time.Now().UTC())
		return []submission.Event{{Type: submission.EventBytesRemoved, Actor: "m.meier"}}, nil
	}, func(*submission.Event) bool { return false }); err != nil {
		t.Fatal(err)
	}
	s.h.Rewrite(t, st, sub.ID, func(r map[string]any) bool {
		for key, at := range newer {
			if v, ok := at(r)[key]; ok {
				t.Errorf("after an erasure the newer build's %s is still there: %v", key, v)
			}
		}
		if r["bytesRemovedAt"] == nil {
			t.Errorf("the erasure itself is not in the record: %v", r)
		}
		return false
	})
}

// target is the element of the record's targets whose channel is ch.
func target(t *testing.T, r map[string]any, ch string) map[string]any {
	t.Helper()
	ts, _ := r["targets"].([]any)
	for _, e := range ts {
		if m, ok := e.(map[string]any); ok && m["channel"] == ch {
			return m
		}
	}
	t.Fatalf("the record has no target %s: %v", ch, r["targets"])
	return nil
}
