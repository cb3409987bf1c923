package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters/transfer"
	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/mailbox/mailboxclient"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// hookRecv is an office endpoint that checks the gateway's signature with the secret
// it knows, as a real office system does, and answers with a fixed status.
type hookRecv struct {
	srv    *httptest.Server
	secret string
	status int

	mu  sync.Mutex
	got []string // submission ids of correctly signed notifications
	bad int      // notifications that failed verification
}

func newHookRecv(t *testing.T, secret string, status int) *hookRecv {
	h := &hookRecv{secret: secret, status: status}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := webhook.Verify(r.Header, body, h.secret, time.Now(), 5*time.Minute); err != nil {
			h.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var n webhook.Notification
		_ = json.Unmarshal(body, &n)
		if h.status/100 == 2 {
			h.got = append(h.got, n.SubmissionIDs...)
		}
		w.WriteHeader(h.status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookRecv) seen() (ok []string, bad int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...), h.bad
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	secretA = "whsec_c2VjcmV0LW9mLW9mZmljZS1hLTEyMzQ1Njc4OTA="
	secretB = "whsec_c2VjcmV0LW9mLW9mZmljZS1iLTEyMzQ1Njc4OTA="
	// Landratsamt Mittelsachsen (sample office with a webhook channel in the built-in
	// directory) is responsible for this service in Jahnatal.
	kreisOffice  = "kreis-14522"
	kreisService = "99107023037000"
	jahnatalARS  = "145220275275"
)

// TestChannelsForTwoOfficesDeliver: offices.<id>.channels.webhook for two offices;
// each office's packages reach its own endpoint, signed with its own secret.
func TestChannelsForTwoOfficesDeliver(t *testing.T) {
	a, b := newHookRecv(t, secretA, 200), newHookRecv(t, secretB, 200)
	f := start(t, func(c *config.Config) {
		c.Offices[DemoOfficeID] = c.Offices[DemoOfficeID].WithChannel(channel.Webhook, config.Channel{Endpoint: a.srv.URL, Secret: secretA})
		c.Offices[kreisOffice] = config.OfficeClient{Channels: map[string]config.Channel{
			channel.Webhook: {Endpoint: b.srv.URL, Secret: secretB, Params: map[string]string{"receiver": "Fachverfahren Mittelsachsen"}}}}
	})
	ctx := context.Background()
	resA, err := f.portal.Submit(ctx, f.example())
	if err != nil || !resA.Accepted() {
		t.Fatalf("submit to Dresden: %v %+v", err, resA)
	}
	pb := paket.ExampleWith(kreisService, paket.NewMessageID(), time.Now())
	pb.Kopf.Ort = paket.Ort{ARS: jahnatalARS}
	resB, err := f.portal.Submit(ctx, pb)
	if err != nil || !resB.Accepted() {
		t.Fatalf("submit to Mittelsachsen: %v %+v", err, resB)
	}
	waitFor(t, "both deliveries", func() bool {
		ga, _ := a.seen()
		gb, _ := b.seen()
		return len(ga) == 1 && len(gb) == 1
	})
	ga, badA := a.seen()
	gb, badB := b.seen()
	if ga[0] != resA.SubmissionID || gb[0] != resB.SubmissionID || badA+badB != 0 {
		t.Fatalf("A got %v (bad %d), B got %v (bad %d)", ga, badA, gb, badB)
	}
	waitFor(t, "the delivery record", func() bool {
		s, err := f.g.Broker.Submission(resB.SubmissionID)
		return err == nil && s.State == submission.StateDelivered
	})
	s, _ := f.g.Broker.Submission(resB.SubmissionID)
	if s.Receiver != "Fachverfahren Mittelsachsen" {
		t.Fatalf("params.receiver not used: %q", s.Receiver)
	}
}

// TestRotationSendsWaitingPackagesToTheNewEndpoint: a package waits while the office's
// endpoint is down; the operator moves the office to a new endpoint with a new secret
// and restarts. The waiting package goes to the new endpoint, signed with the new
// secret (before, the endpoint was frozen at intake: old URL, new secret).
func TestRotationSendsWaitingPackagesToTheNewEndpoint(t *testing.T) {
	old := newHookRecv(t, secretA, 503)
	dir := t.TempDir()
	f := start(t, func(c *config.Config) {
		c.DataDir = dir
		c.Delivery.BackoffBase, c.Delivery.BackoffMax = 50*time.Millisecond, 100*time.Millisecond
		c.Delivery.MaxAttempts = 1000
		c.Offices[DemoOfficeID] = c.Offices[DemoOfficeID].WithChannel(channel.Webhook, config.Channel{Endpoint: old.srv.URL, Secret: secretA})
	})
	res, err := f.portal.Submit(context.Background(), f.example())
	if err != nil || !res.Accepted() {
		t.Fatalf("submit: %v %+v", err, res)
	}
	waitFor(t, "a failed attempt at the old endpoint", func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateRetrying
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	rotated := newHookRecv(t, secretB, 200)
	f2 := start(t, func(c *config.Config) {
		c.DataDir = dir
		c.Offices[DemoOfficeID] = c.Offices[DemoOfficeID].WithChannel(channel.Webhook, config.Channel{Endpoint: rotated.srv.URL, Secret: secretB})
	})
	waitFor(t, "delivery at the new endpoint", func() bool {
		got, _ := rotated.seen()
		return len(got) == 1
	})
	if got, bad := rotated.seen(); got[0] != res.SubmissionID || bad != 0 {
		t.Fatalf("new endpoint got %v, %d badly signed", got, bad)
	}
	if _, bad := old.seen(); bad != 0 {
		t.Fatalf("the old endpoint saw %d notifications signed with another secret", bad)
	}
	waitFor(t, "the delivery record", func() bool {
		s, err := f2.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateDelivered
	})
}

// TestStartRefusesUnusableChannels: a channel the gateway cannot deliver on is a start
// error that names office and field, not a stream of failed deliveries later.
func TestStartRefusesUnusableChannels(t *testing.T) {
	tests := []struct {
		name string
		ch   map[string]config.Channel
		want string
	}{
		{"bad url", map[string]config.Channel{channel.Webhook: {Endpoint: "ftp://x", Secret: secretA}}, "offices.o1.channels.webhook.endpoint"},
		{"bad secret", map[string]config.Channel{channel.Webhook: {Endpoint: "http://127.0.0.1:9/hook", Secret: "hunter2"}}, "offices.o1.channels.webhook.secret"},
		{"no adapter", map[string]config.Channel{channel.Peer: {Endpoint: "https://peer.example"}}, "offices.o1.channels.peer: this gateway has no peer channel"},
		{"unknown name", map[string]config.Channel{"fax": {}}, "offices.o1.channels.fax: unknown channel"},
		// Pull needs the XTA server; without xta.listen nobody could fetch (the
		// packages waited in a message box nobody could reach).
		{"xta pull without a server", map[string]config.Channel{channel.XTA: {Endpoint: "urn:de:xta:o1"}}, "offices.o1.channels.xta.params.mode"},
	}
	// Two offices in one transfer folder (or one inside the other): each import
	// would take the other authority's cases.
	share := t.TempDir()
	for _, sub := range []string{"", "o2"} {
		if err := os.MkdirAll(filepath.Join(share, sub, transfer.LedgerDir), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	linked := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(share, linked); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, other string }{{"same transfer folder", share}, {"nested transfer folder", filepath.Join(share, "o2")}, {"transfer folder by a link", linked}} {
		tests = append(tests, struct {
			name string
			ch   map[string]config.Channel
			want string
		}{tc.name, map[string]config.Channel{channel.Transfer: {Endpoint: tc.other}}, "offices.o0.channels.transfer.endpoint and offices.o1.channels.transfer.endpoint"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			cfg.Listen = "127.0.0.1:0"
			cfg.Offices = map[string]config.OfficeClient{"o1": {Channels: tc.ch}}
			if _, ok := tc.ch[channel.Transfer]; ok {
				cfg.Offices["o0"] = config.OfficeClient{Channels: map[string]config.Channel{channel.Transfer: {Endpoint: share}}}
			}
			g, err := Start(context.Background(), cfg, nil)
			if err == nil {
				_ = g.Shutdown(context.Background())
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the secret is in the error: %v", err)
			}
		})
	}
}

// TestPeerServingPartOfALandRefusesTheRestBefore201: a peer that serves only a
// Kreis of a Land (areas) gives the Land's peer office its channel; a place of
// that Land outside the Kreis was acknowledged and then held ("no peer gateway is
// configured for the place"). It is a 422 now, and a place inside still goes.
func TestPeerServingPartOfALandRefusesTheRestBefore201(t *testing.T) {
	f := start(t, func(c *config.Config) {
		c.Peers = []config.Peer{{ID: "gw-muc", Name: "München", Areas: []string{"09162"}, BaseURL: "http://127.0.0.1:1"}}
	})
	inside := f.example()
	inside.Kopf.Ort = paket.Ort{PLZ: "80331"} // München, Kreis 09162
	res, err := f.portal.Submit(context.Background(), inside)
	if err != nil || res.Status != 201 {
		t.Fatalf("a place the peer serves: %v %+v", err, res)
	}
	outside := f.example()
	outside.Kopf.Ort = paket.Ort{PLZ: "90402"} // Nürnberg, Kreis 09564
	res, err = f.portal.Submit(context.Background(), outside)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusUnprocessableEntity || !strings.HasSuffix(res.Problem.Type, "no-responsible-office") {
		t.Fatalf("a place of the Land no peer serves: %d %+v, want 422 no-responsible-office", res.Status, res.Problem)
	}
}

// TestPeerWithoutConnectionIsRefusedBefore201: a place in another state whose
// gateway this one cannot reach is a 422 at intake, not a package nobody will get.
func TestPeerWithoutConnectionIsRefusedBefore201(t *testing.T) {
	f := start(t)
	p := f.example()
	p.Kopf.Ort = paket.Ort{PLZ: "80331"} // München
	res, err := f.portal.Submit(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusUnprocessableEntity || !strings.HasSuffix(res.Problem.Type, "no-responsible-office") ||
		!strings.Contains(res.Problem.Detail, "Land 09") {
		t.Fatalf("status %d %+v", res.Status, res.Problem)
	}
}

// TestPeerRouteNamesTheConfiguredPeer: a package for another state's office is
// recorded, and its signed Eingangsbestaetigung names the office, as the peer
// gateway this gateway forwards it to (its configured id and name). It named the
// directory's built-in sample peer ("gateway-by"), a gateway that does not exist,
// in the portal's receipt, the status API and the operators' backlog.
func TestPeerRouteNamesTheConfiguredPeer(t *testing.T) {
	f := start(t, func(c *config.Config) {
		c.Peers = []config.Peer{{ID: "gw-muc", Name: "München", Lands: []string{"09"}, BaseURL: "http://127.0.0.1:1"}}
	})
	p := f.example()
	p.Kopf.Ort = paket.Ort{PLZ: "80331"} // München
	res, err := f.portal.Submit(context.Background(), p)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("%v %+v", err, res)
	}
	s, err := f.g.Broker.Submission(res.SubmissionID)
	if err != nil {
		t.Fatal(err)
	}
	if s.OfficeID != "peer-09" || !strings.Contains(s.OfficeName, "gw-muc") || !strings.Contains(s.OfficeName, "München") {
		t.Errorf("recorded office %q %q, want peer-09 named as the configured peer gw-muc (München)", s.OfficeID, s.OfficeName)
	}
	if !strings.Contains(string(res.Receipt), "gw-muc") || strings.Contains(string(res.Receipt), "gateway-by") {
		t.Errorf("the receipt does not name the configured peer gw-muc, or names the sample peer gateway-by:\n%s", res.Receipt)
	}
}

// portalGet asks the gateway of f as the portal does and reads the JSON answer.
func portalGet(t *testing.T, f *fixture, path string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.g.URL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+portalToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

// TestDirectoryAnswersAsIntakeDoes: /v1/resolve, /v1/routes and lookup's intake
// decision (Admit) answer a place in another state as intake answers its package.
// Both endpoints answered 200 with a signed destination (and lookup "would be held
// for pickup", exit 0) for a place whose package intake then refused with 422
// no-responsible-office: the gateway has no peer for it, or its peer serves only
// another part of the Land.
func TestDirectoryAnswersAsIntakeDoes(t *testing.T) {
	const gewerbe = "99050012104000"
	get := func(f *fixture, path string) (int, map[string]any) {
		t.Helper()
		return portalGet(t, f, path)
	}
	submit := func(f *fixture, plz string) int {
		t.Helper()
		p := f.example()
		p.Kopf.Ort = paket.Ort{PLZ: plz}
		res, err := f.portal.Submit(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		return res.Status
	}
	for _, tc := range []struct {
		name  string
		peers []config.Peer
		plz   string
		ars   string
		taken bool
	}{
		{"no peer", nil, "80331", "091620000000", false},
		{"a peer for another Kreis", []config.Peer{{ID: "gw-muc", Name: "München", Areas: []string{"09162"}, BaseURL: "http://127.0.0.1:1"}}, "90402", "095640000000", false},
		{"a peer for the Kreis", []config.Peer{{ID: "gw-muc", Name: "München", Areas: []string{"09162"}, BaseURL: "http://127.0.0.1:1"}}, "80331", "091620000000", true},
		{"an office here", nil, "01067", "146120000000", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, func(c *config.Config) { c.Peers = tc.peers })
			intake := submit(f, tc.plz)
			if (intake == http.StatusCreated) != tc.taken {
				t.Fatalf("intake: %d, want taken=%v", intake, tc.taken)
			}
			st, body := get(f, "/v1/resolve?leikaKey="+gewerbe+"&place="+tc.plz)
			switch {
			case tc.taken && st != http.StatusOK:
				t.Errorf("/v1/resolve: %d %v, intake took the package", st, body)
			case !tc.taken && (st != http.StatusUnprocessableEntity || !strings.HasSuffix(fmt.Sprint(body["type"]), "no-responsible-office")):
				t.Errorf("/v1/resolve: %d %v, intake answered %d no-responsible-office", st, body, intake)
			}
			st, body = get(f, "/v1/routes?leikaKey="+gewerbe+"&ars="+tc.ars)
			want := 0.0
			if tc.taken {
				want = 1
			}
			if st != http.StatusOK || body["totalCount"] != want {
				t.Errorf("/v1/routes: %d %v, want %v routes (intake: %d)", st, body, want, intake)
			}
			d := f.g.Directory.Current()
			rt, err := d.Resolve(gewerbe, tc.plz)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Admit(f.g.Config)(rt); (err == nil) != tc.taken || err != nil && !errors.Is(err, routing.ErrNoResponsibleOffice) {
				t.Errorf("Admit (lookup): %v, intake answered %d", err, intake)
			}
		})
	}
}

// TestTransferFolderJourney: an office with a transfer folder gets one case folder
// per package; its import (here: deleting the folder) is the confirmation, recorded
// with the Zustellbestaetigung.
func TestTransferFolderJourney(t *testing.T) {
	const office, place = "gemeinde-146285229270", "146285229270" // Pirna: transfer + mailbox in the directory
	folder := t.TempDir()
	f := start(t, func(c *config.Config) {
		c.Offices[office] = config.OfficeClient{Channels: map[string]config.Channel{channel.Transfer: {Endpoint: folder}}}
	})
	p := f.example()
	p.Kopf.Ort = paket.Ort{ARS: place}
	res, err := f.portal.Submit(context.Background(), p)
	if err != nil || !res.Accepted() {
		t.Fatalf("submit: %v %+v", err, res)
	}
	var caseDir string
	waitFor(t, "the case folder", func() bool {
		entries, _ := os.ReadDir(folder)
		for _, e := range entries {
			if e.IsDir() && strings.HasSuffix(e.Name(), res.SubmissionID) {
				caseDir = filepath.Join(folder, e.Name())
				return true
			}
		}
		return false
	})
	for _, name := range []string{"antrag.xml", "index.json", "index.xml", "zusammenfassung.pdf"} {
		if _, err := os.Stat(filepath.Join(caseDir, name)); err != nil {
			t.Errorf("case folder lacks %s: %v", name, err)
		}
	}
	// The folder appears before the broker records the hand-over; it is handed over,
	// never delivered, until the import takes it.
	waitFor(t, "the hand-over", func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateHandedOver
	})
	if err := os.RemoveAll(caseDir); err != nil { // the office's import took it
		t.Fatal(err)
	}
	waitFor(t, "the confirmation", func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateDelivered
	})
	if _, err := f.g.Broker.Receipt(context.Background(), office, res.SubmissionID, broker.ReceiptDelivery); err != nil {
		t.Fatalf("no Zustellbestaetigung: %v", err)
	}
}

// TestWebhookGoneFallsBackToTheMailbox: an office whose webhook fails for good (410)
// still gets the package — in its web mailbox, where a person finds it, opens it and
// decides. The portal's status says why.
func TestWebhookGoneFallsBackToTheMailbox(t *testing.T) {
	gone := newHookRecv(t, secretA, http.StatusGone)
	f := start(t, func(c *config.Config) {
		c.Offices[DemoOfficeID] = c.Offices[DemoOfficeID].WithChannel(channel.Webhook, config.Channel{Endpoint: gone.srv.URL, Secret: secretA})
		hash := cheapHash(t, "pruefer-passwort")
		c.Mailbox.Users = []config.MailboxUser{{Name: "anna", Office: DemoOfficeID, PasswordHash: hash}}
	})
	ctx := context.Background()
	res, err := f.portal.Submit(ctx, f.example())
	if err != nil || !res.Accepted() {
		t.Fatalf("submit: %v %+v", err, res)
	}
	waitFor(t, "the fallback to the mailbox", func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateHandedOver
	})
	st, err := f.portal.Status(ctx, res.SubmissionID)
	if err != nil {
		t.Fatal(err)
	}
	var why string
	for _, e := range st.Events {
		if e.Type == submission.EventChannelFailed {
			why = e.Detail
		}
	}
	if why != "receiver answered HTTP 410" {
		t.Fatalf("the portal does not see why: %q in %+v", why, st.Events)
	}

	person := mailboxclient.New(f.g.URL() + MailboxPath + "/")
	inbox, err := person.Login(ctx, "anna", "pruefer-passwort")
	if err != nil {
		t.Fatalf("login: %v\n%s", err, inbox)
	}
	if !strings.Contains(inbox, res.SubmissionID) {
		t.Fatalf("the inbox does not list %s", res.SubmissionID)
	}
	if page, err := person.Open(ctx, res.SubmissionID); err != nil || !strings.Contains(page, "Der Papierkorb") {
		t.Fatalf("open: %v", err)
	}
	s, _ := f.g.Broker.Submission(res.SubmissionID)
	if s.State != submission.StateDelivered || !strings.Contains(s.Receiver, "anna") {
		t.Fatalf("after opening: %s by %q", s.State, s.Receiver)
	}
	if _, err := person.Decide(ctx, res.SubmissionID, false, "Zuständig ist das Ordnungsamt."); err != nil {
		t.Fatal(err)
	}
	st, _ = f.portal.Status(ctx, res.SubmissionID)
	if st.State != "rejected" || st.Decision == nil || st.Decision.Reason != "Zuständig ist das Ordnungsamt." {
		t.Fatalf("portal sees %s %+v", st.State, st.Decision)
	}
	if got := fmt.Sprint(eventTypes(st.Events)); got != "[received routed queued channel_failed fallback handed_over delivered rejected]" {
		t.Fatalf("event log %s", got)
	}
}

func eventTypes(evs []wire.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// TestNoChannelGoesToTheMailboxAtOnce: an office without a configured channel gets
// the package in its web mailbox, and the Eingangsbestaetigung says so at the 201.
// An office with nobody who could log in holds it for the operator instead.
func TestNoChannelGoesToTheMailboxAtOnce(t *testing.T) {
	hash := cheapHash(t, "pruefer-passwort")
	f := start(t, func(c *config.Config) {
		c.Mailbox.Users = []config.MailboxUser{{Name: "anna", Office: DemoOfficeID, PasswordHash: hash}}
	})
	res, err := f.portal.Submit(context.Background(), f.example())
	if err != nil || !res.Accepted() {
		t.Fatalf("submit: %v %+v", err, res)
	}
	v, err := signing.NewVerifier(f.g.Trust, signing.VerifyOptions{}).Verify(res.Receipt, signing.RoleGateway)
	if err != nil {
		t.Fatal(err)
	}
	r, err := signing.ParseReceipt(v.Root)
	if err != nil || r.Channel != channel.Mailbox {
		t.Fatalf("receipt names channel %q: %v", r.Channel, err)
	}
	mailboxID := res.SubmissionID
	waitFor(t, "the hand-over to the mailbox", func() bool {
		s, err := f.g.Broker.Submission(mailboxID)
		return err == nil && s.State == submission.StateHandedOver
	})

	// Landratsamt Mittelsachsen has no mailbox user here: held, and visible as such.
	p := paket.ExampleWith(kreisService, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{ARS: jahnatalARS}
	res, err = f.portal.Submit(context.Background(), p)
	if err != nil || !res.Accepted() {
		t.Fatalf("submit: %v %+v", err, res)
	}
	waitFor(t, "held", func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateHeld
	})
	req, _ := http.NewRequest(http.MethodGet, f.g.URL()+"/v1/admin/submissions?state=held", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), res.SubmissionID) {
		t.Fatalf("admin list of held submissions lacks it: %s", body)
	}
	resp, err = http.Get(f.g.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "amtsbote_submissions_held 1") {
		t.Fatalf("metric amtsbote_submissions_held is not 1")
	}
	// And since when each waits: the mailbox case, the held one; nothing in the
	// outbox (NaN, so an alert on the age stays silent).
	handedOver, _ := f.g.Broker.Submission(mailboxID)
	held, _ := f.g.Broker.Submission(res.SubmissionID)
	for state, want := range map[string]float64{
		"handed_over": float64(handedOver.ReceivedAt.UnixNano()) / 1e9,
		"held":        float64(held.ReceivedAt.UnixNano()) / 1e9,
		"waiting":     math.NaN(),
	} {
		m := regexp.MustCompile(`(?m)^amtsbote_submissions_oldest_received_timestamp_seconds\{state="` + state + `"\} (\S+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("no oldest received time for %s in /metrics", state)
		}
		got, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil || math.IsNaN(want) != math.IsNaN(got) || !math.IsNaN(want) && math.Abs(got-want) > 0.001 {
			t.Errorf("oldest %s received at %s, want %v", state, m[1], want)
		}
	}
}

// TestRESTOverTLS: with tls.rest the REST API is served over TLS by the binary itself.
func TestRESTOverTLS(t *testing.T) {
	dir := t.TempDir()
	pki, err := signing.EnsureDevPKI(filepath.Join(dir, "pki"), "tls-test")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := signing.EnsureDevTLS(pki, DemoOfficeID)
	if err != nil {
		t.Fatal(err)
	}
	f := start(t, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: dev.ServerCert, KeyFile: dev.ServerKey, REST: true}
	})
	if !strings.HasPrefix(f.g.URL(), "https://") {
		t.Fatalf("URL %s", f.g.URL())
	}
	pool, err := certPool(pki.CACert)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(f.g.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("status %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}
}

// TestReplyVisibleToThePortal: a reply of the office (a Bescheid sent back by XTA or
// another face) shows in the portal's status, and its bytes are the portal's to read.
func TestReplyVisibleToThePortal(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	res, err := f.portal.Submit(ctx, f.example())
	if err != nil || !res.Accepted() {
		t.Fatalf("submit: %v %+v", err, res)
	}
	if _, err := f.g.Broker.Confirm(ctx, DemoOfficeID, res.SubmissionID, broker.Pickup{Channel: channel.XTA, Receiver: "Fachverfahren"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.g.Broker.Reply(ctx, DemoOfficeID, res.SubmissionID, broker.ReplyIn{Kind: "Bescheid", MessageID: "urn:de:xta:messageid:fv:1",
		ContentType: "application/xml", Content: []byte("<Bescheid>genehmigt</Bescheid>"), Actor: "Fachverfahren", Channel: channel.XTA}); err != nil {
		t.Fatal(err)
	}
	st, err := f.portal.Status(ctx, res.SubmissionID)
	if err != nil || len(st.Replies) != 1 || st.Replies[0].Kind != "Bescheid" {
		t.Fatalf("status: %v %+v", err, st.Replies)
	}
	req, _ := http.NewRequest(http.MethodGet, f.g.URL()+st.Replies[0].Link, nil)
	req.Header.Set("Authorization", "Bearer "+portalToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "<Bescheid>genehmigt</Bescheid>" {
		t.Fatalf("reply: %d %q", resp.StatusCode, b)
	}
	req.Header.Set("Authorization", "Bearer "+officeToken) // not a portal token
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an office token read the portal's reply: %d", resp.StatusCode)
	}
}

// TestOfficeParallelFromConfig: offices.<id>.parallel reaches the broker — an office
// whose endpoint holds every request gets that many at once, not delivery.per_office.
func TestOfficeParallelFromConfig(t *testing.T) {
	var active, peak atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := active.Add(1)
		defer active.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	f := start(t, func(c *config.Config) {
		c.Delivery.PerOffice = 1
		o := c.Offices[DemoOfficeID].WithChannel(channel.Webhook, config.Channel{Endpoint: srv.URL, Secret: secretA})
		o.Parallel = 3
		c.Offices[DemoOfficeID] = o
	})
	for range 5 {
		if res, err := f.portal.Submit(context.Background(), f.example()); err != nil || !res.Accepted() {
			t.Fatalf("submit: %v %+v", err, res)
		}
	}
	waitFor(t, "three requests held at once", func() bool { return active.Load() == 3 })
	time.Sleep(200 * time.Millisecond) // a fourth would have started by now
	if p := peak.Load(); p != 3 {
		t.Fatalf("%d requests at once, the office's cap is 3", p)
	}
}

// TestReplayTakesTheOfficesChannelsAsTheyAreNow: an office without a channel on
// the gateway (a misspelt office id in the configuration) had its packages held;
// the operator mended the configuration, restarted and replayed them — and they
// were held again, because the replay kept the channel plan fixed at intake
// (the mailbox alone) while the office's webhook stayed unused (an audit,
// 2026-12-05). The replay now takes the office's plan as intake makes it now.
func TestReplayTakesTheOfficesChannelsAsTheyAreNow(t *testing.T) {
	dir := t.TempDir()
	f := start(t, func(c *config.Config) { c.DataDir = dir })
	res, err := f.portal.Submit(context.Background(), f.example())
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	waitFor(t, "the package held (no channel, no mailbox user)", func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateHeld
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	hook := newHookRecv(t, secretA, 200)
	f2 := start(t, func(c *config.Config) {
		c.DataDir = dir
		c.Offices[DemoOfficeID] = c.Offices[DemoOfficeID].WithChannel(channel.Webhook, config.Channel{Endpoint: hook.srv.URL, Secret: secretA})
	})
	req, _ := http.NewRequest(http.MethodPost, f2.g.URL()+"/v1/admin/dead-letters/replay", strings.NewReader(`{"ids":["`+res.SubmissionID+`"]}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("replay: %d", resp.StatusCode)
	}
	waitFor(t, "the replayed package delivered by the office's webhook", func() bool {
		s, err := f2.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateDelivered
	})
	if got, bad := hook.seen(); len(got) != 1 || got[0] != res.SubmissionID || bad != 0 {
		t.Fatalf("the webhook got %v (%d badly signed)", got, bad)
	}
	evs, err := f2.g.Broker.Log(res.SubmissionID)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == submission.EventRequeued && !strings.Contains(e.Detail, "channels now webhook, mailbox (were mailbox)") {
			t.Errorf("the requeued event does not name the plans: %q", e.Detail)
		}
	}
}
