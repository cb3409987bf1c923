package fachverfahren_test

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/amtsbote/amtsbote/wire"
)

// bescheid is the office's Bescheid for a case: a short text naming it.
func bescheid(n webhook.Notification, _ []byte) fachverfahren.Reply {
	return fachverfahren.Reply{Kind: wire.ReplyBescheid, ContentType: "text/plain; charset=utf-8", FileName: "Bescheid zur Anzeige.txt",
		Content: []byte("Bescheid zu " + n.SubmissionID + ": Ihre Anzeige ist vollständig und wird bearbeitet.\n")}
}

// TestOfficeSendsItsBescheidToThePortal: an office system on the webhook
// channel and one that polls (api) accept a case and send their Bescheid
// through the gateway; the portal finds it in the case's status and reads the
// very bytes. Before, such a system could only accept or reject: a reply went
// through the gateway from an office on XTA alone.
func TestOfficeSendsItsBescheidToThePortal(t *testing.T) {
	for _, kind := range []string{channel.Webhook, channel.API} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, TempDir: t.TempDir(), Bescheid: bescheid})
			if err != nil {
				t.Fatal(err)
			}
			defer fv.Close()
			var f *fixture
			if kind == channel.Webhook {
				secret := webhook.NewSecret()
				f = startGateway(t, kind, config.Channel{Endpoint: fv.URL(), Secret: secret})
				fv.SetCredentials(testToken, secret)
			} else {
				f = startGateway(t, kind, config.Channel{})
			}
			id := f.submit(t, example())
			if kind == channel.API {
				f.waitState(t, id, submission.StateHandedOver, 30*time.Second)
				if n, err := fv.Poll(ctx, f.g.URL()); err != nil || n != 1 {
					t.Fatalf("poll: %d %v", n, err)
				}
			}
			var out fachverfahren.Outcome
			select {
			case out = <-fv.Outcomes():
			case <-time.After(30 * time.Second):
				t.Fatalf("no outcome; at the gateway %s", f.state(t, id))
			}
			want := bescheid(webhook.Notification{SubmissionID: id}, nil)
			if out.SubmissionID != id || out.Err != nil || !out.Accepted || out.Reply.ID == "" ||
				out.Reply.Kind != wire.ReplyBescheid || out.Reply.Link != wire.OfficeReplyPath(id, out.Reply.ID) {
				t.Fatalf("outcome %+v, want accepted with its Bescheid sent", out)
			}
			st, err := f.portal.Status(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != wire.StateAccepted || len(st.Replies) != 1 || st.Replies[0].ID != out.Reply.ID ||
				st.Replies[0].ContentType != want.ContentType || st.Replies[0].Channel != channel.API || st.Replies[0].FileName != want.FileName {
				t.Fatalf("the portal's status: %s, replies %+v", st.State, st.Replies)
			}
			got, err := f.portal.Reply(ctx, id, st.Replies[0].ID)
			if err != nil || !bytes.Equal(got, want.Content) {
				t.Fatalf("the portal reads %q (%v), want %q", got, err, want.Content)
			}
		})
	}
}

// replyLost is a transport that loses the answer to the first reply the
// office posts: the gateway stored it, the office never learns so.
type replyLost struct {
	mu    sync.Mutex
	posts int
}

func (l *replyLost) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/replies") {
		return resp, err
	}
	l.mu.Lock()
	l.posts++
	first := l.posts == 1
	l.mu.Unlock()
	if first {
		resp.Body.Close()
		return nil, errors.New("connection reset after the request (simulated)")
	}
	return resp, nil
}

// TestLostReplyAnswerStoresTheBescheidOnce: the answer to the office's
// Bescheid is lost on the way; the office tries the case again in its next
// round, and its Idempotency-Key makes the second post the repeat it is: the
// case holds one reply, and the office is told its id.
func TestLostReplyAnswerStoresTheBescheidOnce(t *testing.T) {
	ctx := context.Background()
	lost := &replyLost{}
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, TempDir: t.TempDir(), Bescheid: bescheid,
		Client: &http.Client{Transport: lost}})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	f := startGateway(t, channel.API, config.Channel{})
	id := f.submit(t, example())
	f.waitState(t, id, submission.StateHandedOver, 30*time.Second)
	if n, err := fv.Poll(ctx, f.g.URL()); err != nil || n != 0 {
		t.Fatalf("the first round: %d %v, want the case kept for the next", n, err)
	}
	if n, err := fv.Poll(ctx, f.g.URL()); err != nil || n != 1 {
		t.Fatalf("the second round: %d %v (outcomes %+v)", n, err, fv.Processed())
	}
	out := fv.Processed()[id]
	s, err := f.g.Broker.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	lost.mu.Lock()
	posts := lost.posts
	lost.mu.Unlock()
	if posts != 2 || len(s.Replies) != 1 || out.Err != nil || out.Reply.ID != s.Replies[0].ID {
		t.Fatalf("%d posts; the case holds %+v; the office has %+v", posts, s.Replies, out)
	}
	if s.Replies[0].MessageID == "" || !strings.HasPrefix(s.Replies[0].MessageID, "bescheid-") {
		t.Errorf("the reply's key %q", s.Replies[0].MessageID)
	}
}
