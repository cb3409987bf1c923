package fachverfahren_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/submission"
)

// untilDelivered holds the office's package downloads until the gateway has
// recorded the package delivered: the webhook's retry has been answered.
type untilDelivered struct {
	f  *fixture
	t  *testing.T
	id string
}

func (u *untilDelivered) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/package") && u.f != nil {
		u.f.waitState(u.t, u.id, submission.StateDelivered, 30*time.Second)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestPollAndAWebhookRetryDecideOnce: a webhook office that also polls (docs/pull.md:
// catch up with state=queued,retrying,handed_over,held; "a notification already
// under way is a duplicate by its deliveryId") took a retrying package in Poll
// while the gateway's retried notification arrived, and decided it twice: Poll
// marked the delivery as seen only once it had finished (an audit, 2026-12-05).
// Poll claims it before the download, so the notification is the duplicate.
func TestPollAndAWebhookRetryDecideOnce(t *testing.T) {
	sec := webhook.NewSecret()
	gate := &untilDelivered{t: t}
	var mu sync.Mutex
	decided := map[string]int{}
	var logs []string
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, Secret: sec, FailFirst: 1,
		Client: &http.Client{Transport: gate},
		Logf: func(f string, a ...any) {
			mu.Lock()
			logs = append(logs, fmt.Sprintf(f, a...))
			mu.Unlock()
		},
		Decide: func(n webhook.Notification, pkg []byte) (bool, string) {
			mu.Lock()
			decided[n.SubmissionID]++
			mu.Unlock()
			return true, ""
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	f := startGateway(t, channel.Webhook, config.Channel{Endpoint: fv.URL(), Secret: sec}, func(cfg *config.Config) {
		cfg.Delivery.Schedule = "2s,2s,2s"
	})
	id := f.submit(t, example())
	f.waitState(t, id, submission.StateRetrying, 30*time.Second)
	gate.id, gate.f = id, f // from here, Poll's download waits for the webhook's retry
	if _, err := fv.Poll(t.Context(), f.g.URL()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	received := 0
	for _, l := range logs {
		if strings.HasPrefix(l, "webhook received: submission "+id) {
			received++
		}
	}
	if decided[id] != 1 || received != 0 {
		t.Fatalf("the office decided %s %d times, and took the retried notification as new %d times; want once by Poll, the notification a duplicate", id, decided[id], received)
	}
}
