package clientgone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
)

// TestAnswer: only a cancelled request whose error is the cancellation is a
// client gone; a deadline of the gateway's own, or a cancellation that is not the
// request's, stays an error of the gateway for its caller to answer.
func TestAnswer(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"client gone", cancelled, fmt.Errorf("store: %w", context.Canceled), true},
		{"own deadline", cancelled, context.DeadlineExceeded, false},
		{"request alive", context.Background(), context.Canceled, false},
		{"other error", cancelled, errors.New("disk full"), false},
	} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/x", nil).WithContext(c.ctx)
		if got := Answer(rec, r, c.err, log); got != c.want {
			t.Errorf("%s: Answer = %v, want %v", c.name, got, c.want)
		}
		if c.want && (rec.Code != Status || rec.Body.Len() != 0) {
			t.Errorf("%s: status %d, %d bytes of body; want %d and none", c.name, rec.Code, rec.Body.Len(), Status)
		}
	}
}
