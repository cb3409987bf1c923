package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/routing/routingcli"
	"github.com/amtsbote/amtsbote/submission"
)

// bavarianKey is a LeiKa key only the Bavarian gateway's directory knows: Länder
// have service keys and catalogue entries of their own.
const bavarianKey = "99123456789012"

// TestUnknownServiceAtAnotherStatesPlaceIsForwarded: a key this gateway's
// directory does not know, for a place in another state, goes to that state's
// gateway, whose directory is the one that must know it. It was refused (422
// unknown-service) before the place was looked at, although the Bavarian gateway
// routes it to its office. A key that gateway does not know either is refused
// there, and the package is held here with its refusal (docs/federation.md,
// "peer refuses"). At a home-land place the key stays unknown-service.
func TestUnknownServiceAtAnotherStatesPlaceIsForwarded(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.offices = strings.Replace(by.offices, "offices:", `services:
  - {key: "`+bavarianKey+`", name: "Bayerische Leistung"}
offices:`, 1) + fmt.Sprintf("  - {leistung: %q, gebiet: \"09162\", stelle: muenchen-kvr}\n", bavarianKey)
	by.start(t)
	sn.peer(by, "", 100*time.Millisecond, "09")
	sn.start(t)

	res, msg := sn.submitKey(t, bavarianKey, fedMuenchenARS)
	if res.Status != http.StatusCreated {
		t.Fatalf("a key only Bavaria knows, for München: %d %+v; want 201, forwarded", res.Status, res.Problem)
	}
	s := sn.waitState(t, res.SubmissionID, submission.StateDelivered)
	if s.OfficeID != "peer-09" || s.LeikaKey != bavarianKey || s.ServiceName != paket.ExampleServiceName {
		t.Errorf("recorded at sn: office %q, key %q, service %q; want peer-09 and the package's own key and name", s.OfficeID, s.LeikaKey, s.ServiceName)
	}
	at, err := by.g.Broker.Lookup("amt24", msg)
	if err != nil || at.Submission.OfficeID != "muenchen-kvr" || at.Submission.ServiceName != "Bayerische Leistung" {
		t.Fatalf("at by: %+v, %v; want the Munich office", at, err)
	}

	// Unknown at both gateways: by refuses, sn holds the package with by's words.
	res, _ = sn.submitKey(t, "99123456789099", fedMuenchenARS)
	if res.Status != http.StatusCreated {
		t.Fatalf("a key neither knows, for München: %d %+v; want 201 (only the peer can tell)", res.Status, res.Problem)
	}
	sn.waitState(t, res.SubmissionID, submission.StateHeld)
	evs, err := sn.g.Broker.Log(res.SubmissionID)
	if err != nil {
		t.Fatal(err)
	}
	refused := false
	for _, e := range evs {
		refused = refused || e.Type == submission.EventChannelFailed && strings.Contains(e.Detail, "amtsbote-by") && strings.Contains(e.Detail, "unknown service")
	}
	if !refused {
		t.Errorf("the portal does not read by's refusal: %+v", evs)
	}

	// At a place of this gateway's own state the key is unknown, as before.
	res, _ = sn.submitKey(t, bavarianKey, "146120000000")
	if res.Status != http.StatusUnprocessableEntity || !strings.HasSuffix(res.Problem.Type, "unknown-service") {
		t.Errorf("a key unknown here, for Dresden: %d %+v; want 422 unknown-service", res.Status, res.Problem)
	}
}

// TestUnknownServiceAnsweredAsIntakeAnswers: intake, /v1/resolve, /v1/routes and
// lookup's intake decision (Admit) give one answer for a key this gateway's
// directory does not know: a place in another state with a configured peer
// gateway for it is that peer's (the package is taken and forwarded; /v1/routes
// lists the peer's route); without such a peer, or at a home-land place, it is 422
// unknown-service everywhere, as before (rule 1 stands where no peer can be
// asked). /v1/routes answered 422 unknown-service also where intake took the
// package.
func TestUnknownServiceAnsweredAsIntakeAnswers(t *testing.T) {
	muc := []config.Peer{{ID: "gw-muc", Name: "München", Areas: []string{"09162"}, BaseURL: "http://127.0.0.1:1"}}
	by := []config.Peer{{ID: "gw-by", Name: "Bayern", Lands: []string{"09"}, BaseURL: "http://127.0.0.1:1"}}
	for _, tc := range []struct {
		name  string
		peers []config.Peer
		plz   string
		ars   string
		taken bool
	}{
		{"a peer for the Land", by, "80331", "091620000000", true},
		{"a peer for the Kreis", muc, "80331", "091620000000", true},
		{"no peer", nil, "80331", "091620000000", false},
		{"a peer for another Kreis", muc, "90402", "095640000000", false},
		{"a home-land place", by, "01067", "146120000000", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, func(c *config.Config) { c.Peers = tc.peers })
			p := paket.ExampleWith(bavarianKey, paket.NewMessageID(), time.Now())
			p.Kopf.Ort = paket.Ort{PLZ: tc.plz}
			res, err := f.portal.Submit(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if tc.taken != (res.Status == http.StatusCreated) ||
				!tc.taken && (res.Status != http.StatusUnprocessableEntity || !strings.HasSuffix(res.Problem.Type, "unknown-service")) {
				t.Fatalf("intake: %d %+v, want taken=%v, else 422 unknown-service", res.Status, res.Problem, tc.taken)
			}
			for _, q := range []string{"leikaKey=" + bavarianKey, "service=" + bavarianKey} {
				st, body := portalGet(t, f, "/v1/resolve?"+q+"&place="+tc.plz)
				switch {
				case tc.taken && (st != http.StatusOK || body["peer"] == nil):
					t.Errorf("/v1/resolve?%s: %d %v, intake took the package for the peer", q, st, body)
				case !tc.taken && (st != http.StatusUnprocessableEntity || !strings.HasSuffix(fmt.Sprint(body["type"]), "unknown-service")):
					t.Errorf("/v1/resolve?%s: %d %v, intake answered 422 unknown-service", q, st, body)
				}
			}
			st, body := portalGet(t, f, "/v1/routes?leikaKey="+bavarianKey+"&ars="+tc.ars)
			switch {
			case tc.taken && (st != http.StatusOK || body["totalCount"] != 1.0):
				t.Errorf("/v1/routes: %d %v, want the peer's route (intake took the package)", st, body)
			case tc.taken:
				route := body["routes"].([]any)[0].(map[string]any)
				if route["peer"] == nil || route["leikaKey"] != bavarianKey || route["officeId"] != nil {
					t.Errorf("/v1/routes: %v, want the peer's route for %s", route, bavarianKey)
				}
			case st != http.StatusUnprocessableEntity || !strings.HasSuffix(fmt.Sprint(body["type"]), "unknown-service"):
				t.Errorf("/v1/routes: %d %v, want 422 unknown-service as intake", st, body)
			}
			rt, err := f.g.Directory.Current().Resolve(bavarianKey, tc.plz)
			if err == nil {
				_, err = Admit(f.g.Config)(rt)
			}
			if (err == nil) != tc.taken || err != nil && !errors.Is(err, routing.ErrUnknownService) {
				t.Errorf("Resolve and Admit (lookup): %v, intake answered %d", err, res.Status)
			}
		})
	}
}

// TestUnknownServiceAtAPlaceOfSeveralStatesWithoutPeerGateway: a key this
// directory does not know, at a name several places bear (Frankfurt: am Main in
// Hesse, an der Oder in Brandenburg), none of which a configured peer gateway
// serves. Whichever the citizen chose, intake would refuse the key (422
// unknown-service), so that is the answer now, as docs/problems.md orders it
// (the key before the place): it was 422 ambiguous-place, the portal asked the
// citizen to choose, and then refused the key. With a peer gateway for one of
// them the choice is the citizen's, as before. Intake, /v1/resolve and lookup's
// Resolve and Admit answer alike.
func TestUnknownServiceAtAPlaceOfSeveralStatesWithoutPeerGateway(t *testing.T) {
	he := []config.Peer{{ID: "gw-he", Name: "Hessen", Lands: []string{"06"}, BaseURL: "http://127.0.0.1:1"}}
	for _, tc := range []struct {
		name  string
		peers []config.Peer
		want  string // problem type suffix
	}{
		{"no peer gateway", nil, "unknown-service"},
		{"a peer gateway for one of them", he, "ambiguous-place"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, func(c *config.Config) { c.Peers = tc.peers })
			p := paket.ExampleWith(bavarianKey, paket.NewMessageID(), time.Now())
			p.Kopf.Ort = paket.Ort{Name: "Frankfurt"}
			res, err := f.portal.Submit(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != http.StatusUnprocessableEntity || res.Problem == nil || !strings.HasSuffix(res.Problem.Type, tc.want) {
				t.Errorf("intake: %d %+v; want 422 %s", res.Status, res.Problem, tc.want)
			}
			st, body := portalGet(t, f, "/v1/resolve?leikaKey="+bavarianKey+"&place=Frankfurt")
			if st != http.StatusUnprocessableEntity || !strings.HasSuffix(fmt.Sprint(body["type"]), tc.want) {
				t.Errorf("/v1/resolve: %d %v; want 422 %s as intake", st, body, tc.want)
			}
			load := func(string) (*routing.Store, routingcli.Usable, routingcli.Admit, error) {
				return f.g.Directory, nil, Admit(f.g.Config), nil
			}
			var out, errOut strings.Builder
			code := routingcli.Lookup(context.Background(), load, []string{"--service", bavarianKey, "--place", "Frankfurt"}, &out, &errOut)
			wantCode, wantText := routingcli.ExitNotFound, "unknown service"
			if tc.peers != nil {
				wantCode, wantText = routingcli.ExitAmbiguous, "nicht eindeutig"
			}
			if code != wantCode || !strings.Contains(out.String()+errOut.String(), wantText) {
				t.Errorf("lookup: exit %d, %q %q; want exit %d and %q", code, out.String(), errOut.String(), wantCode, wantText)
			}
		})
	}
}
