package gateway

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/mailbox/mailboxclient"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/submission"
)

// TestClerkDoesNotTakeTheFachverfahrensCase: an office polls the pull API and
// keeps the web mailbox as its fallback (docs/pull.md: kanaele [api, mailbox]).
// A clerk who opened a case in the inbox while it waited for the Fachverfahren
// made the opening its pickup: the case left the pull list, and the running
// Fachverfahren never got the application its Zustellbestaetigung said was
// delivered (an audit, 2026-12-05). The page shows the record and offers the
// takeover; only that is the pickup, and then the case is the clerk's.
func TestClerkDoesNotTakeTheFachverfahrensCase(t *testing.T) {
	ctx := context.Background()
	dirFile := filepath.Join(t.TempDir(), "abruf.yaml")
	if err := os.WriteFile(dirFile, []byte(`services:
  - {key: "`+pullService+`", name: "Abruftest", quelle: "test"}
offices:
  - id: `+pullOffice+`
    name: "Amt mit Abruf"
    kanaele: [{kind: api, level: 3}, {kind: mailbox, level: 1}]
responsibilities:
  - {leistung: "`+pullService+`", gebiet: "14", stelle: `+pullOffice+`}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	f := start(t, func(c *config.Config) {
		c.Directory.Files = []string{dirFile}
		c.Offices[pullOffice] = config.OfficeClient{Token: pullToken, Channels: map[string]config.Channel{channel.API: {}}}
		c.Mailbox.Users = []config.MailboxUser{{Name: "paula", Office: pullOffice, PasswordHash: cheapHash(t, "pw")}}
	})
	submit := func() string {
		t.Helper()
		p := paket.ExampleWith(pullService, paket.NewMessageID(), time.Now())
		p.Kopf.Ort = paket.Ort{PLZ: "01067"}
		res, err := f.portal.Submit(ctx, p)
		if err != nil || res.Status != http.StatusCreated {
			t.Fatalf("submit: %v %+v", err, res)
		}
		waitFor(t, "the hand-over to the pull API", func() bool {
			s, err := f.g.Broker.Submission(res.SubmissionID)
			return err == nil && s.State == submission.StateHandedOver
		})
		return res.SubmissionID
	}
	looked, taken := submit(), submit()

	clerk := mailboxclient.New(f.g.URL() + MailboxPath + "/")
	inbox, err := clerk.Login(ctx, "paula", "pw")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if !strings.Contains(inbox, looked) || !strings.Contains(inbox, "für Ihr Fachverfahren (Abruf-Schnittstelle)") {
		t.Fatalf("the inbox does not list the case as the Fachverfahren's:\n%.3000s", inbox)
	}
	page, err := clerk.Open(ctx, looked)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page, "Der Papierkorb") || !strings.Contains(page, "Eingang hier übernehmen") {
		t.Errorf("the page of a case waiting for the Fachverfahren shows its form, or no takeover:\n%.3000s", page)
	}
	if s, _ := f.g.Broker.Submission(looked); s.DeliveredAt != nil {
		t.Fatalf("looking at the case delivered it to %q", s.Receiver)
	}

	if page, err = clerk.TakeOver(ctx, taken); err != nil || !strings.Contains(page, "Der Papierkorb") || !strings.Contains(page, "übernommen") {
		t.Fatalf("the takeover: %v\n%.3000s", err, page)
	}
	if s, _ := f.g.Broker.Submission(taken); s.State != submission.StateDelivered || !strings.Contains(s.Receiver, "paula") {
		t.Fatalf("after the takeover: %s by %q", s.State, s.Receiver)
	}

	fv, err := fachverfahren.Start(fachverfahren.Options{Token: pullToken})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	if _, err := fv.Poll(ctx, f.g.URL()); err != nil {
		t.Fatal(err)
	}
	if _, ok := fv.Processed()[looked]; !ok {
		t.Errorf("the Fachverfahren did not get the case the clerk only looked at")
	}
	// The Fachverfahren's sweep of delivered, undecided cases (its first round)
	// leaves the case a clerk took over: it is hers (a review).
	if _, ok := fv.Processed()[taken]; ok {
		t.Errorf("the Fachverfahren took the case the clerk had taken over")
	}
	if s, _ := f.g.Broker.Submission(taken); s.Decision != nil || !strings.Contains(s.Receiver, "paula") {
		t.Errorf("the case taken over: receiver %q, decided %+v", s.Receiver, s.Decision)
	}
}
