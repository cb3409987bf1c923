package fachverfahren_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// clerkFirst is a transport on which a clerk takes the case over in the web
// mailbox just before the office's first request for its package reaches the
// gateway: the office listed it as waiting, the clerk was a moment faster.
type clerkFirst struct {
	g  *gateway.Gateway
	id string

	mu       sync.Mutex
	taken    bool
	requests int // for the case's package or attachments, after the takeover
}

func (c *clerkFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, wire.OfficeSubmissionPath(c.id)+"/") {
		c.mu.Lock()
		if !c.taken {
			c.taken = true
			_, rc, err := c.g.Broker.OpenPackage(r.Context(), testOffice, c.id, broker.Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"})
			if err != nil {
				c.mu.Unlock()
				return nil, fmt.Errorf("the clerk's takeover: %w", err)
			}
			rc.Close()
		}
		c.requests++
		c.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestPollDropsACaseAClerkTookOver: the office's system lists a case as
// waiting, a clerk takes it over in the web mailbox, and the system's fetch is
// answered 409 taken-over. Poll reported it as any failure and left it so:
// the error said "409" and nothing more. Now the outcome is ErrTakenOver, the
// office's log says the case was taken over and dropped (naming no clerk),
// and no later round asks for the case again; the gateway records nothing of
// the system's for it.
func TestPollDropsACaseAClerkTookOver(t *testing.T) {
	f := startGateway(t, channel.API, config.Channel{})
	id := f.submit(t, example())
	f.waitState(t, id, submission.StateHandedOver, 30*time.Second)
	tr := &clerkFirst{g: f.g, id: id}
	var mu sync.Mutex
	var logs []string
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, TempDir: t.TempDir(), Client: &http.Client{Transport: tr},
		Logf: func(format string, args ...any) {
			mu.Lock()
			logs = append(logs, fmt.Sprintf(format, args...))
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	if n, err := fv.Poll(context.Background(), f.g.URL()); err != nil || n != 1 {
		t.Fatalf("poll: %d %v", n, err)
	}
	out := fv.Processed()[id]
	if !errors.Is(out.Err, fachverfahren.ErrTakenOver) || out.Accepted {
		t.Fatalf("the outcome of the case taken over: %+v, want ErrTakenOver", out)
	}
	mu.Lock()
	said := strings.Join(logs, "\n")
	mu.Unlock()
	if !strings.Contains(said, id+" was taken over by a clerk in the web mailbox; dropped") || strings.Contains(said, "anna") {
		t.Errorf("the office's log:\n%s", said)
	}
	tr.mu.Lock()
	asked := tr.requests
	tr.mu.Unlock()
	if n, err := fv.Poll(context.Background(), f.g.URL()); err != nil || n != 0 {
		t.Errorf("the next round: %d %v, want nothing", n, err)
	}
	tr.mu.Lock()
	again := tr.requests - asked
	tr.mu.Unlock()
	if again != 0 {
		t.Errorf("the next round asked for the case taken over %d times", again)
	}
	s, err := f.g.Broker.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.DeliveredVia != channel.Mailbox || s.TakenOverFrom != channel.API || s.Decision != nil {
		t.Errorf("at the gateway: delivered via %q, taken over from %q, decided %+v", s.DeliveredVia, s.TakenOverFrom, s.Decision)
	}
}
