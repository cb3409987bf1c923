package gateway

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestUndecidedAlertPassesOverAStaleEntry: an entry of the undecided index
// whose case was decided by a build that does not keep the index (a way back
// to an older build and forward again, a rolling upgrade; docs/operations.md)
// stays in the index until `store verify` names it. The admin's list passes
// over it, so the age the alert AmtsboteUndecidedForDays fires on must too:
// before, the oldest undecided case was such an entry, the alert fired for a
// case decided long ago, and the list it sends the operator to was empty.
func TestUndecidedAlertPassesOverAStaleEntry(t *testing.T) {
	f, decided := startPullHandedOver(t)
	p := paket.ExampleWith(pullService, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	res, err := f.portal.Submit(context.Background(), p)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	open := res.SubmissionID
	fetchWhenHandedOver(t, f, decided, open)
	if status, body := officePost(t, f.g.URL()+"/v1/office/submissions/"+decided+"/accept", pullToken, `{"reason":"AZ 1"}`); status != http.StatusOK {
		t.Fatalf("accept: %d %s", status, body)
	}
	d, err := f.g.Broker.Submission(decided)
	if err != nil {
		t.Fatal(err)
	}
	o, err := f.g.Broker.Submission(open)
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.g.Config
	cfg.PublicURL = ""
	if err := f.g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// What an older build's decision leaves: the record decided, its entry kept.
	d.State, d.Decision = submission.StateDelivered, nil // the entry's value as it was
	storetest.EditFile(t, cfg.DataDir, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("undecided")).Put([]byte(decided), store.WaitingValue(d))
	})

	g, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
	v := scrapeValue(t, g.URL(), `amtsbote_submissions_oldest_received_timestamp_seconds{state="delivered_undecided"}`)
	if at, err := strconv.ParseFloat(v, 64); err != nil || math.Abs(at-float64(o.ReceivedAt.UnixNano())/1e9) > 0.001 {
		t.Errorf("oldest undecided received at %q, want the open case's %v (the decided one's: %v)", v, o.ReceivedAt, d.ReceivedAt)
	}
	if v := scrapeValue(t, g.URL(), "amtsbote_submissions_delivered_undecided"); v != "1" {
		t.Errorf("amtsbote_submissions_delivered_undecided %q, want 1 (the open case)", v)
	}
	status, body := officeGet(t, g.URL()+"/v1/admin/undecided", adminToken)
	if status != http.StatusOK || !strings.Contains(body, open) || strings.Contains(body, decided) {
		t.Errorf("the admin's list: %d %s", status, body)
	}
}
