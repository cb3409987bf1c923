package submission

import (
	"errors"
	"testing"
)

// TestRemoveUnansweredBytesOnlyOfADeliveredCase: retention.unanswered removes the
// bytes of a case its office has and never answered, and of no other: a package
// still on its way (queued, retrying, handed over, held for pickup, forwarded) is
// not the office's yet, and its bytes are all there is to deliver; an answered
// case has retention.package_bytes. A refusal changes nothing.
func TestRemoveUnansweredBytesOnlyOfADeliveredCase(t *testing.T) {
	for _, st := range States() {
		t.Run(string(st), func(t *testing.T) {
			s := fixture(t, st)
			evs, err := s.RemoveUnansweredBytes(t0, "retention")
			if st == StateDelivered {
				if err != nil || len(evs) != 1 || evs[0].Type != EventBytesRemoved || s.BytesRemovedAt == nil {
					t.Fatalf("delivered, unanswered: %v %v, bytes removed at %v", types(evs), err, s.BytesRemovedAt)
				}
				return
			}
			if !errors.Is(err, ErrIllegal) {
				t.Fatalf("%s: want ErrIllegal, got %v (events %v)", st, err, types(evs))
			}
			if len(evs) != 0 || s.BytesRemovedAt != nil || s.State != st {
				t.Fatalf("%s: a refused removal changed the record: events %v, bytes removed at %v", st, types(evs), s.BytesRemovedAt)
			}
		})
	}
}
