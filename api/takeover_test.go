package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/gatewaytest"
	"github.com/amtsbote/amtsbote/mailbox/mailboxclient"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/signing/signingtest"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// The offices of the takeover tests: one whose system polls the pull API and
// keeps the web mailbox as its fallback (docs/pull.md), and one that has only
// the mailbox (and a token, so its cases can be read by the API too).
const (
	pollingOffice  = "sn-abruf-amt"
	pollingToken   = "office-token-abruf"
	pollingService = "99123456789013"
	mailOffice     = "sn-postfach-amt"
	mailToken      = "office-token-postfach"
	mailService    = "99123456789021"
)

// TestTakenOverCaseIsRefusedToTheOfficesSystem: a Fachverfahren that polls
// lists the cases waiting for it; a clerk then takes one of them over in the
// web mailbox ("Eingang hier übernehmen", the mailbox's real handler), and the
// system, which knows the id from its list, fetches it. The mailbox told the
// clerk the case was hers and the system would not get it; the pull API still
// handed the system the package and the attachment and took its decision, and
// the first decision won silently. Now each is 409 taken-over (in the
// contract), nothing is recorded, and the case's view says takenOver. A case
// the system fetched itself, and a mailbox-only office's case a clerk opened,
// are served as before.
func TestTakenOverCaseIsRefusedToTheOfficesSystem(t *testing.T) {
	ctx := context.Background()
	g := startTakeoverGateway(t)
	pc := &portal.Client{BaseURL: g.g.URL(), Signer: g.pki.Portal.Signer, Token: portalToken}
	taken := submitHandedOver(t, g.g, pc, pollingService)
	fetched := submitHandedOver(t, g.g, pc, pollingService)
	mailOnly := submitHandedOver(t, g.g, pc, mailService)
	router := contractRouter(t)
	call := func(method, path, token string, body []byte) (int, []byte, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, g.g.URL()+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); method != http.MethodHead && strings.Contains(ct, "json") {
			// The answers this test is about, refusals and views; the bytes of a
			// package or an attachment are TestContractOverGateway's. The
			// contract needs the request's body again for its check.
			req.Body = io.NopCloser(bytes.NewReader(body))
			_, _, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("%s %s is not in the contract: %v", method, path, err)
			}
			if err := conforms(req, resp, b); err != nil {
				t.Fatalf("%s %s: %d breaks the contract: %v\n%s", method, path, resp.StatusCode, err, b)
			}
		}
		return resp.StatusCode, b, resp.Header
	}
	view := func(id, token string) wire.OfficeSubmission {
		t.Helper()
		code, b, _ := call(http.MethodGet, wire.OfficeSubmissionPath(id), token, nil)
		var v wire.OfficeSubmission
		if code != http.StatusOK || json.Unmarshal(b, &v) != nil {
			t.Fatalf("the view of %s: %d %s", id, code, b)
		}
		return v
	}

	// The system lists both cases as waiting for it.
	code, b, _ := call(http.MethodGet, wire.OfficeListPath("", 100, string(wire.StateHandedOver)), pollingToken, nil)
	if code != http.StatusOK || !bytes.Contains(b, []byte(taken)) || !bytes.Contains(b, []byte(fetched)) {
		t.Fatalf("the system's list: %d %s", code, b)
	}

	// The clerk takes one over, through the mailbox's own takeover.
	clerk := mailboxclient.New(g.g.URL() + gateway.MailboxPath + "/")
	if _, err := clerk.Login(ctx, "paula", "pw"); err != nil {
		t.Fatal(err)
	}
	if page, err := clerk.TakeOver(ctx, taken); err != nil || !strings.Contains(page, "übernommen") {
		t.Fatalf("the takeover: %v\n%.2000s", err, page)
	}
	before, err := g.g.Broker.Events(ctx, pollingOffice, taken)
	if err != nil {
		t.Fatal(err)
	}

	// The system comes with the id it listed: refused, whatever it asks.
	accept, _ := json.Marshal(wire.DecisionRequest{Reason: "Aktenzeichen BA-1"})
	reject, _ := json.Marshal(wire.DecisionRequest{Reason: "unvollständig"})
	for _, tc := range []struct {
		name, method, path string
		body               []byte
	}{
		{"the package", http.MethodGet, wire.OfficePackagePath(taken), nil},
		{"the attachment", http.MethodGet, wire.OfficeAttachmentPath(taken, "anlage-1"), nil},
		{"an acceptance", http.MethodPost, wire.OfficeDecisionPath(taken, wire.OutcomeAccepted), accept},
		{"a rejection", http.MethodPost, wire.OfficeDecisionPath(taken, wire.OutcomeRejected), reject},
	} {
		code, b, _ := call(tc.method, tc.path, pollingToken, tc.body)
		var p problem.Problem
		if err := json.Unmarshal(b, &p); code != http.StatusConflict || err != nil || p.Type != problem.TypeTakenOver {
			t.Errorf("%s of the case taken over: %d %s, want 409 %s", tc.name, code, b, problem.TypeTakenOver)
		}
		if strings.Contains(string(b), "paula") {
			t.Errorf("%s: the refusal names the clerk: %s", tc.name, b)
		}
	}
	if code, _, _ := call(http.MethodHead, wire.OfficePackagePath(taken), pollingToken, nil); code != http.StatusConflict {
		t.Errorf("HEAD of the package of the case taken over: %d, want 409 as its GET", code)
	}
	sub, err := g.g.Broker.Submission(taken)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Decision != nil || sub.DeliveredVia != channel.Mailbox || sub.TakenOverFrom != channel.API {
		t.Errorf("the case taken over: decided %+v, delivered via %q, taken over from %q", sub.Decision, sub.DeliveredVia, sub.TakenOverFrom)
	}
	if after, _ := g.g.Broker.Events(ctx, pollingOffice, taken); len(after) != len(before) {
		t.Errorf("the refusals recorded %d events: %+v", len(after)-len(before), after[len(before):])
	}
	v := view(taken, pollingToken)
	if v.TakenOver == nil || v.TakenOver.From != channel.API || v.DeliveredAt == nil || !v.TakenOver.At.Equal(*v.DeliveredAt) {
		t.Errorf("the view of the case taken over: takenOver %+v, deliveredAt %v", v.TakenOver, v.DeliveredAt)
	}
	// Its entry in the sweep's list says so too, so the system can drop it there.
	code, b, _ = call(http.MethodGet, wire.OfficeAwaitingDecisionPath("", 100, ""), pollingToken, nil)
	var list wire.OfficeList
	if code != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list.Submissions) != 1 || list.Submissions[0].TakenOver == nil {
		t.Errorf("awaiting=decision: %d %s, want the case taken over, marked", code, b)
	}

	// The clerk decides it in the mailbox; the system's decision is still the
	// refusal, not a conflict naming her decision.
	if _, err := clerk.Decide(ctx, taken, true, ""); err != nil {
		t.Fatal(err)
	}
	code, b, _ = call(http.MethodPost, wire.OfficeDecisionPath(taken, wire.OutcomeAccepted), pollingToken, []byte(`{}`))
	if code != http.StatusConflict || !strings.Contains(string(b), "taken-over") || strings.Contains(string(b), "paula") {
		t.Errorf("the system's decision after the clerk's: %d %s, want 409 taken-over without her name", code, b)
	}

	// The case the system fetched itself is its own, as before.
	if code, b, _ := call(http.MethodGet, wire.OfficePackagePath(fetched), pollingToken, nil); code != http.StatusOK {
		t.Fatalf("the system's own case: %d %s", code, b)
	}
	if code, b, _ := call(http.MethodGet, wire.OfficeAttachmentPath(fetched, "anlage-1"), pollingToken, nil); code != http.StatusOK {
		t.Fatalf("the attachment of the system's own case: %d %s", code, b)
	}
	if code, b, _ := call(http.MethodPost, wire.OfficeDecisionPath(fetched, wire.OutcomeAccepted), pollingToken, accept); code != http.StatusOK {
		t.Fatalf("the system's decision of its own case: %d %s", code, b)
	}
	if v := view(fetched, pollingToken); v.TakenOver != nil || v.Decision == nil {
		t.Errorf("the system's own case: takenOver %+v, decision %+v", v.TakenOver, v.Decision)
	}
	if page, err := clerk.Open(ctx, fetched); err != nil || strings.Contains(page, "Eingang hier übernehmen") {
		t.Errorf("the clerk is offered the takeover of a case the system has: %v", err)
	}

	// A mailbox-only office's case a clerk opened is no takeover: its package
	// is served to the office's token as before.
	other := mailboxclient.New(g.g.URL() + gateway.MailboxPath + "/")
	if _, err := other.Login(ctx, "max", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open(ctx, mailOnly); err != nil {
		t.Fatal(err)
	}
	if s, _ := g.g.Broker.Submission(mailOnly); s.DeliveredVia != channel.Mailbox || s.TakenOverFrom != "" {
		t.Fatalf("the mailbox-only case opened: delivered via %q, taken over from %q", s.DeliveredVia, s.TakenOverFrom)
	}
	if code, b, _ := call(http.MethodGet, wire.OfficePackagePath(mailOnly), mailToken, nil); code != http.StatusOK {
		t.Errorf("the package of a mailbox-only case a clerk opened: %d %s", code, b)
	}
	if v := view(mailOnly, mailToken); v.TakenOver != nil {
		t.Errorf("a mailbox-only case a clerk opened shows takenOver %+v", v.TakenOver)
	}
}

// takeoverGateway is a running gateway and its test PKI.
type takeoverGateway struct {
	g   *gateway.Gateway
	pki *signingtest.PKI
}

// startTakeoverGateway is a gateway with the two offices of the takeover tests
// (pollingOffice: api, then mailbox; mailOffice: mailbox only) and a mailbox
// user of each (paula, max, password "pw"); edit changes the rest of its
// configuration.
func startTakeoverGateway(t *testing.T, edit ...func(*config.Config)) takeoverGateway {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "abruf.yaml")
	if err := os.WriteFile(dir, []byte(`services:
  - {key: "`+pollingService+`", name: "Abruftest", quelle: "test"}
  - {key: "`+mailService+`", name: "Postfachtest", quelle: "test"}
offices:
  - id: `+pollingOffice+`
    name: "Amt mit Abruf"
    kanaele: [{kind: api, level: 3}, {kind: mailbox, level: 1}]
  - id: `+mailOffice+`
    name: "Amt mit Postfach"
    kanaele: [{kind: mailbox, level: 1}]
responsibilities:
  - {leistung: "`+pollingService+`", gebiet: "14", stelle: `+pollingOffice+`}
  - {leistung: "`+mailService+`", gebiet: "14", stelle: `+mailOffice+`}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	g, pki := gatewaytest.Start(t, func(c *config.Config) {
		c.AdminToken = adminToken
		c.Portals = map[string]config.PortalClient{"amt24": {Token: portalToken}}
		c.Directory.Files = []string{dir}
		c.Offices = map[string]config.OfficeClient{
			pollingOffice: {Token: pollingToken, Channels: map[string]config.Channel{channel.API: {}}},
			mailOffice:    {Token: mailToken},
		}
		c.Mailbox.Users = []config.MailboxUser{
			{Name: "paula", Office: pollingOffice, PasswordHash: string(hash)},
			{Name: "max", Office: mailOffice, PasswordHash: string(hash)},
		}
		for _, e := range edit {
			e(c)
		}
	})
	return takeoverGateway{g: g, pki: pki}
}

// submitHandedOver submits an example package for service in Dresden and
// waits until its channel handed it over (to the pull API, to the mailbox).
func submitHandedOver(t *testing.T, g *gateway.Gateway, pc *portal.Client, service string) string {
	t.Helper()
	p := paket.ExampleWith(service, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	res, err := pc.Submit(context.Background(), p)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	// A liveness bound, not a timing assertion: the hand-over takes milliseconds.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s, err := g.Broker.Submission(res.SubmissionID)
		if err == nil && s.State == submission.StateHandedOver {
			return res.SubmissionID
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not handed over: %v (%v)", res.SubmissionID, s, err)
		}
	}
}

// TestDecisionOnAForwardedCaseIsNoRepeat: a case forwarded to a peer gateway is
// decided by the peer's report alone (docs/federation.md), and the pull API
// refuses an office system's decision on it. It was answered 200 as a repeat
// when the peer's decision had the same outcome and reason: the refusal fell
// into the look-up of the decision that stands, which named the peer's as the
// system's own. Now it is 409 conflict, and nothing is recorded.
func TestDecisionOnAForwardedCaseIsNoRepeat(t *testing.T) {
	g := startTakeoverGateway(t)
	pc := &portal.Client{BaseURL: g.g.URL(), Signer: g.pki.Portal.Signer, Token: portalToken}
	id := submitHandedOver(t, g.g, pc, pollingService)
	b := g.g.Broker
	if _, err := b.RecordForwarded(id, submission.Forward{Peer: "amtsbote-by", PeerSubmissionID: "by-1"}, []byte("<Eingangsbestaetigung/>")); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	if _, err := b.RecordPeerStatus(id, submission.PeerStatus{Peer: "amtsbote-by", State: submission.StateDelivered, Receiver: "office by-1", DeliveredAt: &at}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RecordPeerStatus(id, submission.PeerStatus{Peer: "amtsbote-by", State: submission.StateAccepted, Receiver: "office by-1", DeliveredAt: &at,
		Decision: &submission.Decision{Outcome: submission.OutcomeAccepted, At: at, Actor: "office by-1"}}); err != nil {
		t.Fatal(err)
	}
	before, err := b.Events(context.Background(), pollingOffice, id)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(wire.DecisionRequest{})
	req, _ := http.NewRequest(http.MethodPost, g.g.URL()+wire.OfficeDecisionPath(id, wire.OutcomeAccepted), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+pollingToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var p problem.Problem
	if err := json.Unmarshal(got, &p); resp.StatusCode != http.StatusConflict || err != nil || p.Type != problem.TypeConflict {
		t.Errorf("the system's acceptance of a case the peer decided alike: %d %s, want 409 %s", resp.StatusCode, got, problem.TypeConflict)
	}
	if after, err := b.Events(context.Background(), pollingOffice, id); err != nil || len(after) != len(before) {
		t.Errorf("the refused decision recorded %v (%v)", after[len(before):], err)
	}
}
