package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/paket"
)

// TestPeerRepeatOnlyForTheSamePeerAndPackage: the receiving gateway answered a
// forwarded package whose NachrichtID it knew — from its own portal, from another
// peer, or with other bytes — with 200 and the signed receipt of the package it
// had, telling a peer about a package it never sent (docs/federation.md: a peer
// learns only about packages it forwarded). Now only a repeat of the same package
// by the same peer gets the first receipt again; anything else is a 409.
func TestPeerRepeatOnlyForTheSamePeerAndPackage(t *testing.T) {
	sn, by, nw := newFedNode(t, "amtsbote-sn"), newFedNode(t, "amtsbote-by"), newFedNode(t, "amtsbote-nw")
	fedTrust(t, sn, by)
	fedTrust(t, nw, by)
	by.office("09", "09162", "muenchen-kvr", fedHook(t))
	by.peer(sn, "", time.Hour, "14")
	by.peer(nw, "", time.Hour, "05")
	by.start(t) // sn and nw do not run: they only sign envelopes here

	muenchen := paket.Ort{ARS: fedMuenchenARS}
	refused := func(what string, code int, body []byte) {
		t.Helper()
		var p problem.Problem
		_ = json.Unmarshal(body, &p)
		if code != http.StatusConflict || p.Type != problem.TypeConflict {
			t.Errorf("%s: %d %.200s, want 409 %s", what, code, body, problem.TypeConflict)
		}
		if strings.Contains(string(body), "Eingangsbestaetigung") {
			t.Errorf("%s: the answer carries a receipt", what)
		}
	}

	// A package of by's own portal; sn forwards the same NachrichtID, with its
	// own package and then with exactly by's portal's bytes.
	own := paket.NewMessageID()
	ownPkg := by.signedPackage(t, own, muenchen)
	res, err := by.portal(t).SubmitRaw(t.Context(), ownPkg)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("by's portal: %v %+v", err, res)
	}
	code, body := sn.forwardRaw(t, by, own, sn.signedPackage(t, own, muenchen))
	refused("another package under the NachrichtID of by's own portal", code, body)
	code, body = sn.forwardRaw(t, by, own, ownPkg)
	refused("by's own portal's package, forwarded by sn", code, body)

	// nw forwarded a package; sn forwards the very same bytes.
	fromNW := paket.NewMessageID()
	nwPkg := nw.signedPackage(t, fromNW, muenchen)
	if code, body := nw.forwardRaw(t, by, fromNW, nwPkg); code != http.StatusCreated {
		t.Fatalf("nw's forwarding: %d %s", code, body)
	}
	code, body = sn.forwardRaw(t, by, fromNW, nwPkg)
	refused("nw's package, forwarded by sn", code, body)

	// sn's own repeat: the same package again is the same receipt; other bytes
	// under its NachrichtID are not.
	mine := paket.NewMessageID()
	pkg := sn.signedPackage(t, mine, muenchen)
	c1, r1 := sn.forwardRaw(t, by, mine, pkg)
	c2, r2 := sn.forwardRaw(t, by, mine, pkg)
	if c1 != http.StatusCreated || c2 != http.StatusOK || string(r1) != string(r2) {
		t.Fatalf("sn's hop %d, its repeat %d; the same receipt: %v", c1, c2, string(r1) == string(r2))
	}
	code, body = sn.forwardRaw(t, by, mine, sn.signedPackage(t, mine, paket.Ort{PLZ: "80331"})) // München too
	refused("other bytes under a NachrichtID sn forwarded before", code, body)
}

// TestPeerEnvelopeMustNameItsPackage: a peer's envelope that names another
// NachrichtID or LeiKa key than the signed package it carries was taken: the
// package was received under its own name while the forwarding gateway tracked
// (and its operator looked for) it under the envelope's. Now it is a 422
// federation/envelope-mismatch and nothing is received; the honest envelope of
// the same package is taken afterwards.
func TestPeerEnvelopeMustNameItsPackage(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	by.start(t) // sn does not run: it only signs envelopes here
	id := paket.NewMessageID()
	pkg := sn.signedPackage(t, id, paket.Ort{ARS: fedMuenchenARS})
	for what, edit := range map[string]func(*federation.Envelope){
		"another NachrichtID": func(e *federation.Envelope) { e.MessageID = paket.NewMessageID() },
		"another LeiKa key":   func(e *federation.Envelope) { e.LeikaKey = "99010003001006" },
	} {
		code, body := sn.forwardRaw(t, by, id, pkg, edit)
		var p problem.Problem
		_ = json.Unmarshal(body, &p)
		if code != http.StatusUnprocessableEntity || p.Type != federation.TypeEnvelopeMismatch {
			t.Errorf("%s: %d %.300s, want 422 %s", what, code, body, federation.TypeEnvelopeMismatch)
		}
	}
	if s, err := by.g.Broker.FindMessage("amt24", id); err == nil {
		t.Fatalf("a mismatched envelope's package was received: %s", s.ID)
	}
	if code, body := sn.forwardRaw(t, by, id, pkg); code != http.StatusCreated {
		t.Fatalf("the honest envelope: %d %.300s", code, body)
	}
}
