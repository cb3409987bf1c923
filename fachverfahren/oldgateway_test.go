package fachverfahren_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/submission"
)

// oldBuild is a transport that makes the gateway answer the office's list as a
// build before awaiting=decision does (one node of a cluster during its
// upgrade): it drops the parameters that build does not know, so the list
// names every case of the office.
type oldBuild struct{}

func (oldBuild) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	q := r.URL.Query()
	q.Del("awaiting")
	q.Del("deliveredVia")
	r.URL.RawQuery = q.Encode()
	return http.DefaultTransport.RoundTrip(r)
}

// TestSweepLeavesAClerksCaseToTheClerk: a case a clerk opened in the web
// mailbox is hers to decide there (the mailbox told her the office's system
// would not get it). A sweep answered by an older gateway that lists every
// case must not take it, though it is delivered and undecided: the office
// reads the case's events and leaves one delivered through the mailbox alone.
func TestSweepLeavesAClerksCaseToTheClerk(t *testing.T) {
	f := startGateway(t, channel.API, config.Channel{})
	id := f.submit(t, example())
	f.waitState(t, id, submission.StateHandedOver, 30*time.Second)
	_, rc, err := f.g.Broker.OpenPackage(context.Background(), testOffice, id, broker.Pickup{Channel: channel.Mailbox, Receiver: "anna (Behördenpostfach)"})
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	f.waitState(t, id, submission.StateDelivered, 10*time.Second)
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, TempDir: t.TempDir(), Client: &http.Client{Transport: oldBuild{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	if n, err := fv.Poll(context.Background(), f.g.URL()); err != nil || n != 0 {
		t.Fatalf("poll: %d %v, want nothing taken; taken %+v", n, err, fv.Processed())
	}
	if st := f.state(t, id); st != submission.StateDelivered {
		t.Errorf("at the gateway: %s, want delivered (the clerk's to decide)", st)
	}
}
