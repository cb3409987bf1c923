package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtsbote/amtsbote/adapters/transfer"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta"
)

// A package handed over on a channel that no longer reaches its office after a
// restart with a changed configuration goes on (broker: reachOf, withdrawn,
// reoffer). Before, only a channel that confirms later (a transfer folder) was
// looked at: packages waiting for the office's pull API, its XTA box or its
// mailbox stayed handed over for ever when the office left that channel — no
// dead letter, no alert for days, and the portal read "handed over" (an audit,
// 2026-12-05 evening).

func stopFixture(t *testing.T, f *fixture) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitLeaves waits until the submission is no longer handed over, and returns it.
func waitLeaves(t *testing.T, f *fixture, id string) *submission.Submission {
	t.Helper()
	var s *submission.Submission
	waitFor(t, "the package to leave handed_over", func() bool {
		var err error
		s, err = f.g.Broker.Submission(id)
		return err == nil && s.State != submission.StateHandedOver
	})
	return s
}

// TestHandedOverToThePullAPIGoesOnWhenTheChannelIsRemoved: the office moved from
// polling the pull API to its mailbox; the api channel is taken from its
// configuration. Its waiting package goes on to the mailbox.
func TestHandedOverToThePullAPIGoesOnWhenTheChannelIsRemoved(t *testing.T) {
	dir := t.TempDir()
	overlay := pullDirectory(t)
	users := []config.MailboxUser{{Name: "paula", Office: pullOffice, PasswordHash: cheapHash(t, "pw")}}
	f := start(t, func(c *config.Config) {
		c.DataDir = dir
		c.Directory.Files = []string{overlay}
		c.Offices[pullOffice] = config.OfficeClient{Token: pullToken, Channels: map[string]config.Channel{channel.API: {}}}
		c.Mailbox.Users = users
	})
	p := paket.ExampleWith(pullService, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	res, err := f.portal.Submit(context.Background(), p)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	waitFor(t, "hand-over to the pull API", func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateHandedOver
	})
	stopFixture(t, f)

	f2 := start(t, func(c *config.Config) {
		c.DataDir = dir
		c.Directory.Files = []string{overlay}
		c.Offices[pullOffice] = config.OfficeClient{Token: pullToken}
		c.Mailbox.Users = users
	})
	// It passes through queued quickly: wait for where it ends.
	waitFor(t, "the package in the mailbox", func() bool {
		s, _ := f2.g.Broker.Submission(res.SubmissionID)
		ref, _ := s.CurrentTarget()
		return s.State == submission.StateHandedOver && ref.Channel == channel.Mailbox
	})
}

// TestHandedOverToAMailboxWithoutUsersIsHeld: the office's last mailbox user is
// removed. A package waiting in its mailbox is offered again, which the mailbox
// refuses (nobody could open it): held, a dead letter the operator sees, as a
// package arriving now is.
func TestHandedOverToAMailboxWithoutUsersIsHeld(t *testing.T) {
	dir, res := inAnnasMailbox(t)

	f2 := start(t, func(c *config.Config) { c.DataDir = dir })
	s := waitLeaves(t, f2, res.SubmissionID)
	waitFor(t, "the package held", func() bool {
		s, _ = f2.g.Broker.Submission(res.SubmissionID)
		return s.State == submission.StateHeld
	})
	if evs, ok := logSays(t, f2.g, res.SubmissionID, submission.EventRequeued, "no longer reaches the office"); !ok {
		t.Errorf("no requeued event says why: %+v", evs)
	}
	if status, body := officeGet(t, f2.g.URL()+"/v1/admin/dead-letters", adminToken); status != http.StatusOK || !strings.Contains(body, res.SubmissionID) {
		t.Errorf("dead letters: %d %s", status, body)
	}
}

// TestHandedOverToAnXTABoxIsPushedWhenTheOfficeMovesToPush: an XTA office moved
// from pull to push has no message box to poll any more; its waiting message is
// pushed to its deliverMessage endpoint.
func TestHandedOverToAnXTABoxIsPushedWhenTheOfficeMovesToPush(t *testing.T) {
	dir := t.TempDir()
	pki, dev, fp := xtaTLS(t)
	const xOffice, xService = "sn-xta-amt", "99123456789014"
	overlay := filepath.Join(t.TempDir(), "xta.yaml")
	if err := os.WriteFile(overlay, []byte(`services:
  - {key: "`+xService+`", name: "XTA-Test", quelle: "test"}
offices:
  - id: `+xOffice+`
    name: "Amt mit XTA"
    kanaele: [{kind: xta, level: 4}]
responsibilities:
  - {leistung: "`+xService+`", gebiet: "14", stelle: `+xOffice+`}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	xtaOn := func(c *config.Config, ch config.Channel) {
		c.DataDir = dir
		c.Directory.Files = []string{overlay}
		c.XTA.Listen = "127.0.0.1:0"
		c.TLS.CertFile, c.TLS.KeyFile, c.TLS.ClientCAFile = dev.ServerCert, dev.ServerKey, pki.CACert
		c.Offices[xOffice] = config.OfficeClient{Token: "xta-office-token", Channels: map[string]config.Channel{channel.XTA: ch}}
	}
	f := start(t, func(c *config.Config) {
		xtaOn(c, config.Channel{Endpoint: "urn:de:amtsbote:test:xta:dresden", Params: map[string]string{xta.ParamMode: xta.ModePull, ParamCertSHA256: fp}})
	})
	xp := paket.ExampleWith(xService, paket.NewMessageID(), time.Now())
	xp.Kopf.Ort = paket.Ort{PLZ: "01067"}
	res, err := f.portal.Submit(context.Background(), xp)
	if err != nil || !res.Accepted() {
		t.Fatalf("submit: %v %+v", err, res)
	}
	waitFor(t, "hand-over to the XTA box", func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateHandedOver
	})
	stopFixture(t, f)

	office := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer office.Close()
	f2 := start(t, func(c *config.Config) {
		xtaOn(c, config.Channel{Endpoint: office.URL + "/xta", Params: map[string]string{xta.ParamMode: xta.ModePush}})
	})
	waitLeaves(t, f2, res.SubmissionID)
	// The test's office has a certificate the gateway does not trust: the push
	// fails in the handshake, and the event says so on the xta channel.
	waitFor(t, "a push attempt to the office's endpoint", func() bool {
		evs, err := f2.g.Broker.Log(res.SubmissionID)
		if err != nil {
			t.Fatal(err)
		}
		requeued := false
		for _, e := range evs {
			requeued = requeued || e.Type == submission.EventRequeued
			if requeued && e.Type == submission.EventAttemptFailed && e.Channel == channel.XTA {
				return true
			}
		}
		return false
	})
}

// TestWaitingPackageFollowsTheOfficeToItsNewChannel: an office whose webhook was
// down moved to a transfer folder (restart with the webhook taken from its
// configuration). Its waiting package went on with the plan made at intake — the
// mailbox, or held for an office without mailbox users — instead of into the
// folder the office reads now. It goes into the folder.
func TestWaitingPackageFollowsTheOfficeToItsNewChannel(t *testing.T) {
	m := newOfficeMove(t, "{kind: webhook, level: 3}, {kind: transfer, level: 2}")
	f := m.start(t, config.OfficeClient{Token: "umzug-token",
		Channels: map[string]config.Channel{channel.Webhook: {Endpoint: "http://127.0.0.1:1/hook", Secret: secretA}}}, nil)
	id := m.submit(t, f, submission.StateRetrying) // a failed webhook attempt
	stopFixture(t, f)

	f2 := m.start(t, m.toFolder(), nil)
	var s *submission.Submission
	waitFor(t, "the package in the transfer folder", func() bool {
		s, _ = f2.g.Broker.Submission(id)
		ref, _ := s.CurrentTarget()
		return s.State == submission.StateHandedOver && ref.Channel == channel.Transfer
	})
	if evs, ok := logSays(t, f2.g, id, submission.EventFallback, "channels now transfer"); !ok {
		t.Errorf("no fallback event names the new plan: %+v", evs)
	}
}

// A clerk opened the package in the mailbox (the mailbox recorded the
// opening), and the gateway restarted before the confirmation round recorded it,
// now with the office's last user removed (the clerk left). The round checks
// the reach first and offers the package again instead of asking the mailbox,
// which would answer "opened by anna": the office had it, yet the package ended
// held, with no Zustellbestaetigung, a dead letter (a review). A channel that
// confirms later is asked first.
func TestOpenedMailboxPackageIsConfirmedNotOfferedAgain(t *testing.T) {
	dir, res := inAnnasMailbox(t)

	// anna opened it just before the restart: the mailbox's own record.
	db, err := bolt.Open(filepath.Join(dir, "mailbox", "mailbox.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := json.Marshal(map[string]any{"officeId": DemoOfficeID, "user": "anna", "at": time.Now().UTC()})
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("opened")).Put([]byte(res.SubmissionID), v) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	f2 := start(t, func(c *config.Config) { c.DataDir = dir })
	s := waitLeaves(t, f2, res.SubmissionID)
	waitFor(t, "the package to settle", func() bool {
		s, _ = f2.g.Broker.Submission(res.SubmissionID)
		return s.State == submission.StateDelivered || s.State == submission.StateHeld
	})
	if s.State != submission.StateDelivered {
		evs, _ := f2.g.Broker.Log(res.SubmissionID)
		for _, e := range evs {
			t.Logf("%s %s %s", e.Type, e.Channel, e.Detail)
		}
		t.Fatalf("a package the office opened in its mailbox is %s, want delivered (confirmed by anna's opening)", s.State)
	}
}

// TestOfferedAgainFollowsTheOfficesChannelsNow: the office had only its mailbox;
// after a restart it has no mailbox user but a transfer folder. Offered again on
// the plan made at intake, the package was refused by the mailbox and held (a
// review); it goes with the office's channels as configured now, into the folder.
func TestOfferedAgainFollowsTheOfficesChannelsNow(t *testing.T) {
	m := newOfficeMove(t, "{kind: transfer, level: 2}")
	f := m.start(t, config.OfficeClient{Token: "umzug-token"},
		[]config.MailboxUser{{Name: "anna", Office: umzugOffice, PasswordHash: cheapHash(t, "pw")}})
	id := m.submit(t, f, submission.StateHandedOver) // in the mailbox
	stopFixture(t, f)

	f2 := m.start(t, m.toFolder(), nil)
	// It may pass through queued too quickly to be seen: wait for where it ends,
	// held or handed over on another channel than the mailbox.
	var s *submission.Submission
	waitFor(t, "the package to settle", func() bool {
		s, _ = f2.g.Broker.Submission(id)
		ref, _ := s.CurrentTarget()
		return s.State == submission.StateHeld || s.State == submission.StateHandedOver && ref.Channel != channel.Mailbox
	})
	if ref, _ := s.CurrentTarget(); s.State != submission.StateHandedOver || ref.Channel != channel.Transfer {
		evs, _ := f2.g.Broker.Log(id)
		for _, e := range evs {
			t.Logf("%s %s %s", e.Type, e.Channel, e.Detail)
		}
		t.Fatalf("the package is %s on %v, want handed over into the office's transfer folder", s.State, s.Targets)
	}
}

// officeMove is a gateway whose office umzugOffice moves at a restart (its
// directory overlay with the channels it lists, a prepared transfer folder,
// the data folder kept over the restart).
type officeMove struct{ dir, overlay, share string }

const umzugOffice, umzugService = "sn-umzug-amt", "99123456789015"

func newOfficeMove(t *testing.T, kanaele string) *officeMove {
	t.Helper()
	m := &officeMove{dir: t.TempDir(), overlay: filepath.Join(t.TempDir(), "umzug.yaml"), share: t.TempDir()}
	if err := os.WriteFile(m.overlay, []byte(`services:
  - {key: "`+umzugService+`", name: "Umzugstest", quelle: "test"}
offices:
  - id: `+umzugOffice+`
    name: "Amt im Umzug"
    kanaele: [`+kanaele+`]
responsibilities:
  - {leistung: "`+umzugService+`", gebiet: "14", stelle: `+umzugOffice+`}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(m.share, transfer.LedgerDir), 0o750); err != nil {
		t.Fatal(err)
	}
	return m
}

// start starts the gateway with the office configured as oc and the mailbox users.
func (m *officeMove) start(t *testing.T, oc config.OfficeClient, users []config.MailboxUser) *fixture {
	t.Helper()
	return start(t, func(c *config.Config) {
		c.DataDir = m.dir
		c.Directory.Files = []string{m.overlay}
		c.Offices[umzugOffice] = oc
		c.Mailbox.Users = users
	})
}

// toFolder is the office's configuration after the move: the transfer folder only.
func (m *officeMove) toFolder() config.OfficeClient {
	return config.OfficeClient{Token: "umzug-token", Channels: map[string]config.Channel{channel.Transfer: {Endpoint: m.share}}}
}

// submit sends a package for the office and waits until it is in state want.
func (m *officeMove) submit(t *testing.T, f *fixture, want submission.State) string {
	t.Helper()
	p := paket.ExampleWith(umzugService, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	res, err := f.portal.Submit(context.Background(), p)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	waitFor(t, "the package "+string(want), func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == want
	})
	return res.SubmissionID
}

// inAnnasMailbox starts a gateway whose demo office has the mailbox user anna,
// hands a package over to the mailbox and stops the gateway: its data folder and
// the package's answer.
func inAnnasMailbox(t *testing.T) (string, *portal.Result) {
	t.Helper()
	dir := t.TempDir()
	f := start(t, func(c *config.Config) {
		c.DataDir = dir
		c.Mailbox.Users = []config.MailboxUser{{Name: "anna", Office: DemoOfficeID, PasswordHash: cheapHash(t, "pw")}}
	})
	res, err := f.portal.Submit(context.Background(), f.example())
	if err != nil || !res.Accepted() {
		t.Fatalf("submit: %v %+v", err, res)
	}
	waitFor(t, "hand-over to the mailbox", func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateHandedOver
	})
	stopFixture(t, f)
	return dir, res
}

// logSays reports whether the submission's log has an event of type typ whose
// detail contains part, with the log.
func logSays(t *testing.T, g *Gateway, id, typ, part string) ([]submission.Event, bool) {
	t.Helper()
	evs, err := g.Broker.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	return evs, slices.ContainsFunc(evs, func(e submission.Event) bool { return e.Type == typ && strings.Contains(e.Detail, part) })
}
