package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

const (
	pullOffice  = "sn-abruf-amt"
	pullToken   = "office-token-abruf"
	pullService = "99123456789013"
)

// pullDirectory is a directory overlay with one office that only polls: channel
// api, responsible for pullService in all of Saxony.
func pullDirectory(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "abruf.yaml")
	if err := os.WriteFile(f, []byte(`services:
  - {key: "`+pullService+`", name: "Abruftest", quelle: "test"}
offices:
  - id: `+pullOffice+`
    name: "Amt mit Abruf"
    kanaele: [{kind: api, level: 3}]
responsibilities:
  - {leistung: "`+pullService+`", gebiet: "14", stelle: `+pullOffice+`}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// startPullHandedOver starts a gateway with the pull office of pullDirectory,
// submits one package for it and waits until it is handed over.
func startPullHandedOver(t *testing.T) (*fixture, string) {
	t.Helper()
	f := start(t, func(c *config.Config) {
		c.Directory.Files = []string{pullDirectory(t)}
		c.Offices[pullOffice] = config.OfficeClient{Token: pullToken, Channels: map[string]config.Channel{channel.API: {}}}
	})
	p := paket.ExampleWith(pullService, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	res, err := f.portal.Submit(context.Background(), p)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	waitFor(t, "the hand-over to the pull API", func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateHandedOver
	})
	return f, res.SubmissionID
}

// TestPullOfficeGetsItsPackagesHandedOver: an office whose system polls the pull
// API and takes no notification (channel api) has each package handed over at
// once, listed for it as handed_over, and delivered by its first fetch, with the
// Zustellbestaetigung. Before, such an office had no channel: each package was
// held, a dead letter with the operator's alert, although nothing had failed.
func TestPullOfficeGetsItsPackagesHandedOver(t *testing.T) {
	f, id := startPullHandedOver(t)
	if v := scrapeValue(t, f.g.URL(), "amtsbote_submissions_held"); v != "0" {
		t.Errorf("held: %s, want 0", v)
	}
	if status, body := officeGet(t, f.g.URL()+"/v1/office/submissions?state=handed_over", pullToken); status != http.StatusOK || !strings.Contains(body, id) {
		t.Fatalf("the office's list of what waits for it: %d %s", status, body)
	}
	if status, body := officeGet(t, f.g.URL()+"/v1/admin/dead-letters", adminToken); status != http.StatusOK || strings.Contains(body, id) {
		t.Fatalf("a dead letter: %d %s", status, body)
	}
	// The first fetch is the delivery.
	if status, body := officeGet(t, f.g.URL()+"/v1/office/submissions/"+id+"/package", pullToken); status != http.StatusOK || !strings.Contains(body, "Antragspaket") {
		t.Fatalf("fetch: %d %.200s", status, body)
	}
	s, err := f.g.Broker.Submission(id)
	if err != nil || s.State != submission.StateDelivered {
		t.Fatalf("after the fetch: %v %+v", err, s)
	}
	if status, body := officeGet(t, f.g.URL()+"/v1/office/submissions/"+id+"/receipts/zustellung", pullToken); status != http.StatusOK || !strings.Contains(body, "Zustellbestaetigung") {
		t.Fatalf("the Zustellbestaetigung: %d %.300s", status, body)
	}
}

// TestPullChannelNeedsAToken: an office with the api channel and no token could
// never fetch; the configuration is refused, naming the office. So is an address
// for the channel (most likely a webhook's URL under the wrong name).
func TestPullChannelNeedsAToken(t *testing.T) {
	for _, token := range []string{"", "  "} { // blank: no client signs in with it
		c := config.Default()
		c.Offices = map[string]config.OfficeClient{pullOffice: {Token: token, Channels: map[string]config.Channel{channel.API: {}}}}
		c.Resolve()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "offices."+pullOffice+".channels.api: the office fetches through the pull API and needs offices."+pullOffice+".token") {
			t.Fatalf("validate with token %q: %v", token, err)
		}
	}
	_, err := Start(context.Background(), func() config.Config {
		cfg := config.Default()
		cfg.DataDir = t.TempDir() // the development PKI goes there, not into the source tree
		cfg.Listen = "127.0.0.1:0"
		cfg.Offices = map[string]config.OfficeClient{pullOffice: {Token: pullToken, Channels: map[string]config.Channel{channel.API: {Endpoint: "https://fachverfahren.example/hook"}}}}
		return cfg
	}(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "offices."+pullOffice+".channels.api.endpoint") {
		t.Fatalf("start with an address for the pull channel: %v", err)
	}
}

// officeGet is a GET with a bearer token, answered with status and body.
func officeGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	resp, b := authed(t, http.MethodGet, url, token)
	return resp.StatusCode, string(b)
}

// loseFirst is a transport that loses the first request matching its method
// and path suffix, as a dropped connection does: before sending it, or (cut)
// after the gateway has answered, so the gateway did its part and the client
// learns nothing of it.
type loseFirst struct {
	method, suffix string
	cut            bool
	mu             sync.Mutex
	left           int
}

func (l *loseFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	lose := r.Method == l.method && strings.HasSuffix(r.URL.Path, l.suffix) && l.left > 0
	if lose {
		l.left--
	}
	l.mu.Unlock()
	if !lose {
		return http.DefaultTransport.RoundTrip(r)
	}
	if l.cut {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	return nil, errors.New("connection reset (simulated)")
}

// TestPollingOfficeDecidesAfterALostAnswer: fachverfahren.Office.Poll fetches a
// package — the delivery: it is no longer listed as waiting — and then its
// answer is lost on the way, or the fetch itself is cut off after the gateway
// counted it. The next round decides it all the same; it had been dropped for
// good, since the list names only what waits.
func TestPollingOfficeDecidesAfterALostAnswer(t *testing.T) {
	for _, lost := range []*loseFirst{
		{method: http.MethodPost, suffix: "/accept", left: 1},
		{method: http.MethodGet, suffix: "/package", cut: true, left: 1},
	} {
		t.Run(lost.method+lost.suffix, func(t *testing.T) {
			f, id := startPullHandedOver(t)
			fv, err := fachverfahren.Start(fachverfahren.Options{Token: pullToken, Client: &http.Client{Transport: lost}})
			if err != nil {
				t.Fatal(err)
			}
			defer fv.Close()
			if n, err := fv.Poll(context.Background(), f.g.URL()); err != nil || n != 0 {
				t.Fatalf("first round (lost on the way): %d %v", n, err)
			}
			if s, _ := f.g.Broker.Submission(id); s.State != submission.StateDelivered {
				t.Fatalf("after the fetch: %s, want delivered", s.State)
			}
			if n, err := fv.Poll(context.Background(), f.g.URL()); err != nil || n != 1 {
				t.Fatalf("second round: %d %v", n, err)
			}
			if s, _ := f.g.Broker.Submission(id); s.State != submission.StateAccepted {
				t.Fatalf("after the second round: %s, want accepted", s.State)
			}
		})
	}
}

// TestPollingOfficeStartsAgainAfterGivingUp: a package whose fetch keeps failing
// for a curable reason is given up after RetryFor (its outcome the error), but
// not forgotten: while the list names it, a later round starts it again. It had
// been skipped for good as a duplicate.
func TestPollingOfficeStartsAgainAfterGivingUp(t *testing.T) {
	f, id := startPullHandedOver(t)
	lost := &loseFirst{method: http.MethodGet, suffix: "/package", left: 2}
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: pullToken, RetryFor: 50 * time.Millisecond, Client: &http.Client{Transport: lost}})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	ctx := context.Background()
	if n, err := fv.Poll(ctx, f.g.URL()); err != nil || n != 0 {
		t.Fatalf("first round: %d %v", n, err)
	}
	time.Sleep(100 * time.Millisecond)
	if n, err := fv.Poll(ctx, f.g.URL()); err != nil || n != 1 || fv.Processed()[id].Err == nil {
		t.Fatalf("second round (given up): %d %v %+v", n, err, fv.Processed()[id])
	}
	if n, err := fv.Poll(ctx, f.g.URL()); err != nil || n != 1 || fv.Processed()[id].Err != nil {
		t.Fatalf("third round (started again): %d %v %+v", n, err, fv.Processed()[id])
	}
	if s, _ := f.g.Broker.Submission(id); s.State != submission.StateAccepted {
		t.Fatalf("after the third round: %s, want accepted", s.State)
	}
}

// TestErasedCaseWaitsForNothing: a case whose bytes an operator erased before
// the office fetched it can be neither fetched nor decided (410); it stayed
// listed as waiting for the office, counted as handed over (the gauge, so
// AmtsboteUnconfirmedForDays fired for it for ever) and in the admin backlog.
// An office's Fachverfahren paging through what waits met such cases first on
// every poll. Now none of them names it; a live case beside it stays listed.
func TestErasedCaseWaitsForNothing(t *testing.T) {
	f, erased := startPullHandedOver(t)
	p := paket.ExampleWith(pullService, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	res, err := f.portal.Submit(context.Background(), p)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	live := res.SubmissionID
	waitFor(t, "the second hand-over", func() bool {
		s, err := f.g.Broker.Submission(live)
		return err == nil && s.State == submission.StateHandedOver
	})
	if _, err := f.g.Broker.Erase(context.Background(), erased, "operator (test)", "Antrag der Betroffenen"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"?state=handed_over", "?state=queued,retrying,handed_over,held", "?state=handed_over&limit=1"} {
		status, body := officeGet(t, f.g.URL()+"/v1/office/submissions"+q, pullToken)
		if status != http.StatusOK || strings.Contains(body, erased) || !strings.Contains(body, live) {
			t.Fatalf("the office's list %s: %d, erased case listed %v, live case listed %v: %s", q, status, strings.Contains(body, erased), strings.Contains(body, live), body)
		}
	}
	if v := scrapeValue(t, f.g.URL(), "amtsbote_submissions_handed_over"); v != "1" {
		t.Errorf("amtsbote_submissions_handed_over %s, want 1 (the live case)", v)
	}
	// The admin backlog's rows and its total (amtsbote admin offices prints it:
	// "1 package waits for 1 office") leave the erased case out alike; the total
	// counted it, as it counted every record read.
	status, body := officeGet(t, f.g.URL()+"/v1/admin/offices", adminToken)
	var backlog struct {
		Offices []struct {
			HandedOver int `json:"handedOver"`
		} `json:"offices"`
		Waiting int `json:"waiting"`
	}
	if err := json.Unmarshal([]byte(body), &backlog); status != http.StatusOK || err != nil ||
		len(backlog.Offices) != 1 || backlog.Offices[0].HandedOver != 1 || backlog.Waiting != 1 {
		t.Errorf("the admin backlog: %d %s (%v), want one office with 1 handed over, 1 waiting", status, body, err)
	}
	// The erased case itself is still there to read (its record, its receipts).
	if status, body := officeGet(t, f.g.URL()+"/v1/office/submissions/"+erased, pullToken); status != http.StatusOK || !strings.Contains(body, erased) {
		t.Errorf("the erased case's record: %d %s", status, body)
	}
}

// TestErasedHeldCaseIsNoDeadLetter: a held package whose bytes an operator erased
// has nothing left to replay and nobody to wait for; it stayed in the held gauge
// (AmtsbotePackagesHeld fired for ever: the retention never removes a record
// without an answer) and among the dead letters. The held list still names it.
func TestErasedHeldCaseIsNoDeadLetter(t *testing.T) {
	f := start(t)
	res, err := f.portal.Submit(context.Background(), f.example())
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	id := res.SubmissionID
	waitFor(t, "the package held", func() bool {
		s, err := f.g.Broker.Submission(id)
		return err == nil && s.State == submission.StateHeld
	})
	if status, body := officeGet(t, f.g.URL()+"/v1/admin/dead-letters", adminToken); status != http.StatusOK || !strings.Contains(body, id) {
		t.Fatalf("before the erasure the package is no dead letter (the checks below prove nothing): %d %s", status, body)
	}
	if _, err := f.g.Broker.Erase(context.Background(), id, "operator (test)", "Antrag zurückgezogen"); err != nil {
		t.Fatal(err)
	}
	if v := scrapeValue(t, f.g.URL(), "amtsbote_submissions_held"); v != "0" {
		t.Errorf("amtsbote_submissions_held %s, want 0", v)
	}
	if status, body := officeGet(t, f.g.URL()+"/v1/admin/dead-letters", adminToken); status != http.StatusOK || strings.Contains(body, id) {
		t.Errorf("the dead letters after the erasure: %d %s", status, body)
	}
	if status, body := officeGet(t, f.g.URL()+"/v1/admin/submissions?state=held", adminToken); status != http.StatusOK || !strings.Contains(body, id) {
		t.Errorf("the held list after the erasure: %d %s", status, body)
	}
}

// officePost is a POST of a JSON body with a bearer token, answered with status
// and body.
func officePost(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDecisionWithAnotherReasonIsAConflict: two instances of one office system
// accept one case, each with its own file number. The first is recorded; the
// second was answered 200 as a repeat although its reason was dropped, so that
// instance believed its file number had reached the portal. It is a 409 naming
// the decision that stands; the very same decision again is still a repeat.
func TestDecisionWithAnotherReasonIsAConflict(t *testing.T) {
	f, id := startPullHandedOver(t)
	base := f.g.URL() + "/v1/office/submissions/" + id
	if st, body := officePost(t, base+"/accept", pullToken, `{"reason":"AZ-A-0001"}`); st != http.StatusOK {
		t.Fatalf("instance A: %d %s", st, body)
	}
	st, body := officePost(t, base+"/accept", pullToken, `{"reason":"AZ-B-0002"}`)
	if st != http.StatusConflict || !strings.Contains(body, `"type":"`+problem.TypeConflict+`"`) || !strings.Contains(body, `AZ-A-0001`) {
		t.Errorf("instance B, the same outcome with another reason: %d %s, want 409 conflict naming AZ-A-0001", st, body)
	}
	// A reject after it names the decision that stands too.
	if st, body := officePost(t, base+"/reject", pullToken, `{"reason":"zu spät"}`); st != http.StatusConflict || !strings.Contains(body, `AZ-A-0001`) {
		t.Errorf("reject after accept: %d %s, want 409 naming AZ-A-0001", st, body)
	}
	// A retry of A's own request (its answer lost) is the repeat it always was;
	// surrounding blanks are trimmed as when it was stored.
	if st, body := officePost(t, base+"/accept", pullToken, `{"reason":" AZ-A-0001 "}`); st != http.StatusOK || !strings.Contains(body, "AZ-A-0001") {
		t.Errorf("instance A again: %d %s, want 200", st, body)
	}
	s, err := f.g.Broker.Submission(id)
	if err != nil || s.Decision == nil || s.Decision.Reason != "AZ-A-0001" {
		t.Fatalf("the decision kept: %v %+v", err, s.Decision)
	}
	evs, _ := f.g.Broker.Events(context.Background(), pullOffice, id)
	n := 0
	for _, e := range evs {
		if e.Type == submission.EventAccepted || e.Type == submission.EventRejected {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d decision events, want 1", n)
	}
}

// TestOfficeTokenRotation: an office running two instances of its system
// rotates its API token: the operator configures offices.<id>.tokens, the new
// token before the old one, and each instance switches when it can. With one
// token only, the instance not yet switched was refused (401) until the next
// restart. Neither a word of a token nor the two together authenticate.
func TestOfficeTokenRotation(t *testing.T) {
	const newTok, oldTok = "office-token-abruf-new", "office-token-abruf-old"
	f := start(t, func(c *config.Config) {
		c.Directory.Files = []string{pullDirectory(t)}
		c.Offices[pullOffice] = config.OfficeClient{Tokens: []string{newTok, oldTok}, Channels: map[string]config.Channel{channel.API: {}}}
	})
	for _, tok := range []string{newTok, oldTok} {
		if st, body := officeGet(t, f.g.URL()+"/v1/office/submissions?state=handed_over", tok); st != http.StatusOK {
			t.Errorf("the instance with token %s: %d %s", tok, st, body)
		}
	}
	for _, tok := range []string{newTok + " " + oldTok, "office-token-abruf"} {
		if st, _ := officeGet(t, f.g.URL()+"/v1/office/submissions?state=handed_over", tok); st != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", tok, st)
		}
	}
}

// TestOfficeTokenWithBlanksAuthenticatesWhole: offices.<id>.token is one token,
// a blank inside it part of it, and the office system sends it whole. For a few
// hours the setting was split at blanks for a rotation: the system sending the
// whole passphrase got 401 without a warning at start, and each half alone
// authenticated the office, a secret of half the strength.
func TestOfficeTokenWithBlanksAuthenticatesWhole(t *testing.T) {
	const first, second = "office-a-secret-part-one", "office-a-secret-part-two" // each long enough to have passed as a token of a rotation
	f := start(t, func(c *config.Config) {
		c.Directory.Files = []string{pullDirectory(t)}
		c.Offices[pullOffice] = config.OfficeClient{Token: first + " " + second + "\n", Channels: map[string]config.Channel{channel.API: {}}}
	})
	if st, body := officeGet(t, f.g.URL()+"/v1/office/submissions?state=handed_over", first+" "+second); st != http.StatusOK {
		t.Errorf("the office system sending its whole token: %d %s", st, body)
	}
	for _, tok := range []string{first, second} {
		if st, _ := officeGet(t, f.g.URL()+"/v1/office/submissions?state=handed_over", tok); st != http.StatusUnauthorized {
			t.Errorf("half of the token, %q: %d, want 401", tok, st)
		}
	}
}

// TestDevCredentialsLeaveAnOfficesTokens: on the development PKI the demo
// office gets the generated token when the configuration has none. An office
// rotating with offices.<id>.tokens has tokens: a generated token beside them
// would make the start refuse token and tokens together.
func TestDevCredentialsLeaveAnOfficesTokens(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Offices = map[string]config.OfficeClient{DemoOfficeID: {Tokens: []string{"demo-office-token-new", "demo-office-token-old"}}}
	g := &Gateway{Config: cfg, PKI: &signing.DevPKI{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := g.setupCredentials(); err != nil {
		t.Fatal(err)
	}
	if o := g.Config.Offices[DemoOfficeID]; o.Token != "" || len(o.Tokens) != 2 {
		t.Errorf("the demo office's tokens became token %q, tokens %d", o.Token, len(o.Tokens))
	}
	g.Config.Resolve()
	if err := g.Config.Validate(); err != nil {
		t.Errorf("the configuration with development credentials: %v", err)
	}
}

// TestUndecidedCasesAreCountedAndListed: a case the office's system fetched and
// never decided (it died in between: docs/pull.md, "Running several instances")
// stayed delivered, and nothing showed it. It is counted now
// (amtsbote_submissions_delivered_undecided, with its age for
// AmtsboteUndecidedForDays) and listed for the operator (GET
// /v1/admin/undecided); a fetched case the office decided and one an operator
// erased are neither.
func TestUndecidedCasesAreCountedAndListed(t *testing.T) {
	f, decided := startPullHandedOver(t)
	ids := []string{decided}
	for range 2 {
		p := paket.ExampleWith(pullService, paket.NewMessageID(), time.Now())
		p.Kopf.Ort = paket.Ort{PLZ: "01067"}
		res, err := f.portal.Submit(context.Background(), p)
		if err != nil || res.Status != http.StatusCreated {
			t.Fatalf("submit: %v %+v", err, res)
		}
		ids = append(ids, res.SubmissionID)
	}
	erased, open := ids[1], ids[2]
	fetchWhenHandedOver(t, f, ids...)
	if status, body := officePost(t, f.g.URL()+"/v1/office/submissions/"+decided+"/accept", pullToken, `{"reason":"AZ 1"}`); status != http.StatusOK {
		t.Fatalf("accept: %d %s", status, body)
	}
	if status, body := officePost(t, f.g.URL()+"/v1/admin/submissions/"+erased+"/erase", adminToken, `{"operator":"m.meier"}`); status != http.StatusOK {
		t.Fatalf("erase: %d %s", status, body)
	}
	if v := scrapeValue(t, f.g.URL(), "amtsbote_submissions_delivered_undecided"); v != "1" {
		t.Errorf("amtsbote_submissions_delivered_undecided %q, want 1 (the open case)", v)
	}
	s, err := f.g.Broker.Submission(open)
	if err != nil {
		t.Fatal(err)
	}
	v := scrapeValue(t, f.g.URL(), `amtsbote_submissions_oldest_received_timestamp_seconds{state="delivered_undecided"}`)
	if at, err := strconv.ParseFloat(v, 64); err != nil || math.Abs(at-float64(s.ReceivedAt.UnixNano())/1e9) > 0.001 {
		t.Errorf("oldest undecided received at %q, want the open case's %v", v, s.ReceivedAt)
	}
	for _, q := range []string{"", "?office=" + pullOffice} {
		status, body := officeGet(t, f.g.URL()+"/v1/admin/undecided"+q, adminToken)
		if status != http.StatusOK || !strings.Contains(body, open) || strings.Contains(body, decided) || strings.Contains(body, erased) {
			t.Errorf("the admin's list%s: %d %s", q, status, body)
		}
	}
	if status, body := officeGet(t, f.g.URL()+"/v1/admin/undecided?office="+DemoOfficeID, adminToken); status != http.StatusOK || strings.Contains(body, open) {
		t.Errorf("another office's list: %d %s", status, body)
	}
}

// TestOfficeListsItsCasesAwaitingDecision: an office system run as several
// instances sweeps for the cases one of them fetched and never decided
// (docs/pull.md, "Running several instances"). It could ask only
// state=delivered, which reads every case the office ever had and names XTA's
// and decided ones' neighbours alike; awaiting=decision lists exactly what the
// undecided index holds for the calling office: its system's undecided fetch
// and a clerk's takeover (deliveredVia leaves that out), not a decided case,
// not one XTA delivered, not another office's. Paged by the next link, which
// keeps the query; a state beside it, another awaiting and a deliveredVia
// alone or naming XTA are refused with invalid-field.
func TestOfficeListsItsCasesAwaitingDecision(t *testing.T) {
	ctx := context.Background()
	f, open := startPullHandedOver(t)
	ids := []string{open}
	for range 3 {
		p := paket.ExampleWith(pullService, paket.NewMessageID(), time.Now())
		p.Kopf.Ort = paket.Ort{PLZ: "01067"}
		res, err := f.portal.Submit(ctx, p)
		if err != nil || res.Status != http.StatusCreated {
			t.Fatalf("submit: %v %+v", err, res)
		}
		ids = append(ids, res.SubmissionID)
	}
	decided, byXTA, clerks := ids[1], ids[2], ids[3]
	for _, id := range ids {
		waitFor(t, "the hand-over", func() bool {
			s, err := f.g.Broker.Submission(id)
			return err == nil && s.State == submission.StateHandedOver
		})
	}
	for _, id := range []string{open, decided} {
		if status, body := officeGet(t, f.g.URL()+wire.OfficePackagePath(id), pullToken); status != http.StatusOK {
			t.Fatalf("fetch: %d %.200s", status, body)
		}
	}
	if status, body := officePost(t, f.g.URL()+wire.OfficeDecisionPath(decided, wire.OutcomeAccepted), pullToken, `{"reason":"AZ 1"}`); status != http.StatusOK {
		t.Fatalf("accept: %d %s", status, body)
	}
	// What the XTA face's close and the mailbox's takeover record.
	for id, p := range map[string]broker.Pickup{byXTA: {Channel: channel.XTA, Receiver: "xta"}, clerks: {Channel: channel.Mailbox, Receiver: "user paula (mailbox)"}} {
		if _, err := f.g.Broker.Confirm(ctx, pullOffice, id, p); err != nil {
			t.Fatal(err)
		}
	}
	// Another office's case its system fetched and has not decided.
	res, err := f.portal.Submit(ctx, f.example())
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	theirs := res.SubmissionID
	if status, body := officeGet(t, f.g.URL()+wire.OfficePackagePath(theirs), officeToken); status != http.StatusOK {
		t.Fatalf("the other office's fetch: %d %.200s", status, body)
	}

	list := func(path, token string) ([]string, string) {
		t.Helper()
		status, body := officeGet(t, f.g.URL()+path, token)
		var l wire.OfficeList
		if status != http.StatusOK || json.Unmarshal([]byte(body), &l) != nil {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		var got []string
		for _, s := range l.Submissions {
			if s.State != wire.StateDelivered || s.DeliveryID == "" || s.PackageSHA256 == "" {
				t.Errorf("%s: an entry not as the list's: %s %s", path, s.ID, s.State)
			}
			got = append(got, s.ID)
		}
		return got, l.Next
	}
	if got, next := list(wire.OfficeAwaitingDecisionPath("", 0, ""), pullToken); !slices.Equal(got, []string{open, clerks}) || next != "" {
		t.Errorf("awaiting=decision: %v next %q, want %v", got, next, []string{open, clerks})
	}
	if got, _ := list(wire.OfficeAwaitingDecisionPath("", 0, "api,webhook"), pullToken); !slices.Equal(got, []string{open}) {
		t.Errorf("awaiting=decision&deliveredVia=api,webhook: %v, want %v", got, []string{open})
	}
	if got, _ := list("/v1/office/submissions?awaiting=decision&deliveredVia=api&deliveredVia=mailbox", pullToken); !slices.Equal(got, []string{open, clerks}) {
		t.Errorf("deliveredVia repeated: %v, want both", got)
	}
	got, next := list(wire.OfficeAwaitingDecisionPath("", 1, ""), pullToken)
	if !slices.Equal(got, []string{open}) || next != wire.OfficeAwaitingDecisionPath(open, 1, "") {
		t.Fatalf("first page: %v next %q", got, next)
	}
	if got, next := list(next, pullToken); !slices.Equal(got, []string{clerks}) || next != "" {
		t.Errorf("second page: %v next %q", got, next)
	}
	if got, _ := list(wire.OfficeAwaitingDecisionPath("", 0, ""), officeToken); !slices.Equal(got, []string{theirs}) {
		t.Errorf("the other office's: %v, want only its own %s", got, theirs)
	}

	for q, field := range map[string]string{
		"awaiting=decision&state=delivered":    "state",
		"awaiting=decision&state=accepted":     "state",
		"awaiting=decided":                     "awaiting",
		"awaiting=decision&awaiting=decision":  "awaiting",
		"deliveredVia=api":                     "deliveredVia",
		"awaiting=decision&deliveredVia=xta":   "deliveredVia",
		"awaiting=decision&deliveredVia=api,x": "deliveredVia",
	} {
		resp, body := authed(t, http.MethodGet, f.g.URL()+"/v1/office/submissions?"+q, pullToken)
		p := problemOf(t, resp, body)
		var named struct{ Field string }
		_ = json.Unmarshal(body, &named)
		if resp.StatusCode != http.StatusUnprocessableEntity || p.Type != problem.TypeInvalidField || named.Field != field {
			t.Errorf("?%s: %d %s, want 422 invalid-field on %s", q, resp.StatusCode, body, field)
		}
	}
}

// fetchWhenHandedOver fetches each case's package as the office's system does,
// once the case is handed over: the fetch is the delivery.
func fetchWhenHandedOver(t *testing.T, f *fixture, ids ...string) {
	t.Helper()
	for _, id := range ids {
		waitFor(t, "the hand-over", func() bool {
			s, err := f.g.Broker.Submission(id)
			return err == nil && s.State == submission.StateHandedOver
		})
		if status, body := officeGet(t, f.g.URL()+"/v1/office/submissions/"+id+"/package", pullToken); status != http.StatusOK {
			t.Fatalf("fetch: %d %.200s", status, body)
		}
	}
}
