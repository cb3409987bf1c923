package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/freeport"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// The federation demo: two gateways in one process, Saxony's (amtsbote-sn) and
// Bavaria's (amtsbote-by), each with its own data folder, development PKI and
// directory overlay, trusting each other's gateway certificate (peers/). An Amt24
// package for München crosses the state border: sn forwards it, by delivers it to
// the Kreisverwaltungsreferat's Fachverfahren, the office accepts, and the Amt24
// portal reads "accepted" in sn's status.

const (
	demoMuenchenARS    = "091620000000"
	demoMuenchenOffice = "muenchen-kvr"
	demoOfficeToken    = "demo-office-token-muenchen"
	demoOfficeSecret   = "whsec_ZGVtby1zZWNyZXQtbXVlbmNoZW4tMTIzNDU2"
	demoMuenchenName   = "Landeshauptstadt München, Kreisverwaltungsreferat"
)

// demoState is one gateway of the demo before it starts.
type demoState struct {
	id, label, dir, addr string
	cfg                  config.Config
}

func runFederationDemo(ctx context.Context, stdout, stderr io.Writer, timeout time.Duration, verbose bool) int {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &printer{w: stdout, start: time.Now()}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "demo failed: "+format+"\n", args...)
		return 1
	}
	root, err := os.MkdirTemp("", "amtsbote-federation-demo-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(root)
	level := "error"
	if verbose {
		level = "info"
	}

	sn := &demoState{id: "amtsbote-sn", label: "sn gateway", dir: filepath.Join(root, "sn")}
	by := &demoState{id: "amtsbote-by", label: "by gateway", dir: filepath.Join(root, "by")}
	for _, s := range []*demoState{sn, by} {
		if s.addr, err = freeport.Addr(); err != nil {
			return fail("%v", err)
		}
		if _, err := signing.EnsureDevPKI(filepath.Join(s.dir, "pki"), s.id); err != nil {
			return fail("dev PKI: %v", err)
		}
	}
	// Trust exchange: each gateway's certificate (the leaf, not its CA) goes into the
	// other's trust store, folder peers/.
	for _, pair := range [][2]*demoState{{sn, by}, {by, sn}} {
		from, to := pair[0], pair[1]
		data, err := os.ReadFile(filepath.Join(from.dir, "pki", "gateway.pem"))
		if err != nil {
			return fail("%v", err)
		}
		certs, err := signing.ParseCertificatesPEM(data)
		if err != nil {
			return fail("%v", err)
		}
		dst := filepath.Join(to.dir, "pki", "trust", "peers", from.id+".pem")
		if err := os.WriteFile(dst, signing.CertPEM(certs[0]), 0o644); err != nil {
			return fail("%v", err)
		}
		out.say("operator", "trust: certificate of %s (serial %x) -> %s", from.id, certs[0].SerialNumber.Bytes()[:6], strings.TrimPrefix(dst, root+"/"))
	}

	office, err := fachverfahren.Start(fachverfahren.Options{Token: demoOfficeToken, Secret: demoOfficeSecret,
		Bescheid: demoBescheid(demoMuenchenName),
		Logf:     func(format string, args ...any) { out.say("KVR München", format, args...) }})
	if err != nil {
		return fail("%v", err)
	}
	defer office.Close()

	peerEntry := func(land, name string, s *demoState) string {
		return fmt.Sprintf("peers:\n  - {land: %q, name: %q, gatewayId: %s, baseUrl: \"http://%s\"}\n", land, name, s.id, s.addr)
	}
	overlays := map[*demoState]string{
		sn: peerEntry("09", "Bayern", by),
		by: `homeLands: ["09"]
offices:
  - id: ` + demoMuenchenOffice + `
    name: "` + demoMuenchenName + `"
    hausanschrift: {strasse: "Ruppertstraße 19", plz: "80337", ort: "München"}
    kanaele: [{kind: webhook, level: 3}]
responsibilities:
  - {leistung: "99999001000000", gebiet: "09162", stelle: ` + demoMuenchenOffice + `}
` + peerEntry("14", "Sachsen", sn),
	}
	for _, s := range []*demoState{sn, by} {
		overlay := filepath.Join(s.dir, "directory.yaml")
		if err := os.WriteFile(overlay, []byte(overlays[s]), 0o644); err != nil {
			return fail("%v", err)
		}
		c := config.Default()
		c.GatewayID, c.DataDir, c.Listen = s.id, filepath.Join(s.dir, "data"), s.addr
		c.PKI.Dir = filepath.Join(s.dir, "pki")
		c.Directory.Files = []string{overlay}
		c.Delivery.BackoffBase = 300 * time.Millisecond
		s.cfg = c
	}
	sn.cfg.Peers = []config.Peer{{ID: by.id, Name: "Bayern", Lands: []string{"09"}, BaseURL: "http://" + by.addr, PollInterval: time.Second}}
	by.cfg.Peers = []config.Peer{{ID: sn.id, Name: "Sachsen", Lands: []string{"14"}, BaseURL: "http://" + sn.addr, PollInterval: time.Second}}
	by.cfg.Offices = map[string]config.OfficeClient{demoMuenchenOffice: {Token: demoOfficeToken,
		Channels: map[string]config.Channel{"webhook": {Endpoint: office.URL(), Secret: demoOfficeSecret}}}}

	gws := map[*demoState]*gateway.Gateway{}
	for _, s := range []*demoState{by, sn} {
		g, err := gateway.Start(ctx, s.cfg, newLogger(stderr, level, "text"))
		if err != nil {
			return fail("start %s: %v", s.id, err)
		}
		gws[s] = g
		defer func() {
			sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
			defer c()
			_ = g.Shutdown(sctx)
		}()
		out.say(s.label, "%s listening on %s; peer %s", s.id, g.URL(), s.cfg.Peers[0].ID)
	}

	done := make(chan string, 16)     // ids at sn whose office decided
	replied := make(chan struct{}, 1) // the office's Bescheid is back at sn
	for _, s := range []*demoState{sn, by} {
		label := s.label
		isSN := s == sn
		gws[s].Broker.Observe(func(sub *submission.Submission, e submission.Event) {
			switch e.Type {
			case submission.EventReceived:
				out.say(label, "received: %s", e.Detail)
			case submission.EventRouted:
				if sub.CaseID != "" {
					out.say(label, "routed: Nachreichung to case %s -> %s", sub.CaseID, cmp.Or(sub.OfficeName, sub.OfficeID))
					break
				}
				out.say(label, "routed: %s in %s -> %s", sub.ServiceName, sub.AreaName, sub.OfficeName)
			case submission.EventQueued:
				out.say(label, "%s", queuedLine(e))
			case submission.EventAttemptFailed:
				out.say(label, "delivery attempt %d by %s failed: %s", e.Attempt, e.Channel, e.Detail)
			case submission.EventForwarded:
				out.say(label, "FORWARDED across the state border %s; its signed Eingangsbestätigung is stored", e.Detail)
			case submission.EventArrivedFromPeer:
				out.say(label, "arrived from a peer: %s", e.Detail)
			case submission.EventDelivered:
				out.say(label, "delivered (%s): %s", e.Channel, e.Detail)
			case submission.EventAccepted, submission.EventRejected:
				out.say(label, "office decision: %s %s (by %s)", e.Type, e.Detail, e.Actor)
				if isSN {
					offerID(done, sub.ID)
				}
			case submission.EventReplied:
				if isSN {
					out.say(label, "the office's reply came BACK across the state border: %s, stored for Amt24", e.Detail)
					select {
					case replied <- struct{}{}:
					default:
					}
				} else {
					out.say(label, "replied %s %s: the office's answer to the applicant", e.Channel, e.Detail)
				}
			default:
				out.say(label, "%s %s %s", e.Type, e.Channel, e.Detail)
			}
		})
	}

	gsn := gws[sn]
	signer, err := signing.LoadSigner(gsn.PKI.PortalKey, gsn.PKI.PortalCert)
	if err != nil {
		return fail("portal key: %v", err)
	}
	client := &portal.Client{BaseURL: gsn.URL(), Signer: signer, Token: gsn.Config.Portals[signing.DevPortalID].Token}
	p := paket.Example("99999001000000")
	p.Kopf.Ort = paket.Ort{ARS: demoMuenchenARS, Name: "München"}
	out.say("Amt24", "a citizen reports a defect in München (ARS %s) on Saxony's portal", demoMuenchenARS)
	res, err := submitDemo(ctx, client, p, "submission")
	if err != nil {
		return fail("%v", err)
	}
	out.say("Amt24", "%d Created at %s: submission %s", res.Status, sn.id, res.SubmissionID)

	awaitDecision := func(id string) error {
		if !awaitID(ctx, done, id) {
			return fmt.Errorf("no decision came back within %s", timeout)
		}
		return nil
	}
	if err := awaitDecision(res.SubmissionID); err != nil {
		return fail("%v", err)
	}
	st, err := client.Status(ctx, res.SubmissionID)
	if err != nil {
		return fail("status: %v", err)
	}
	out.say("Amt24", "status at %s: %s; event log: %s", sn.id, st.State, eventSummary(st.Events))
	if st.State != wire.StateAccepted {
		return fail("state %s, want accepted", st.State)
	}
	for _, e := range st.Events {
		if e.Type == submission.EventForwarded || e.Type == submission.EventDelivered || e.Type == submission.EventAccepted {
			out.say("Amt24", "  %-10s %s", e.Type, e.Detail)
		}
	}
	zb, err := client.Receipt(ctx, res.SubmissionID, "zustellung")
	if err != nil || !strings.Contains(string(zb), "<Kanal>peer</Kanal>") {
		return fail("Zustellbestaetigung at %s: %v", sn.id, err)
	}
	out.say("Amt24", "Zustellbestätigung of %s received (channel peer)", sn.id)

	// The office's Bescheid, sent at by after its decision, comes back with sn's
	// next question to by (federation/tracker.go); the portal reads it at sn as
	// it reads its own offices' replies.
	select {
	case <-replied:
	case <-ctx.Done():
		return fail("the office's Bescheid did not come back to %s within %s", sn.id, timeout)
	}
	if st, err = client.Status(ctx, res.SubmissionID); err != nil {
		return fail("status: %v", err)
	}
	if len(st.Replies) == 0 {
		return fail("the status at %s lists no reply", sn.id)
	}
	r := st.Replies[0]
	if err := readDemoReply(ctx, client, res.SubmissionID, r, filepath.Join(root, "antwort-1"+replyExtension(r.ContentType))); err != nil {
		return fail("%v", err)
	}
	out.say("Amt24", "status at %s now: %s; event log: %s", sn.id, st.State, eventSummary(st.Events))
	out.say("Amt24", "%s of %s read at %s (%s, %d bytes%s, channel %s), SHA-256 as the status lists it", r.Kind, demoMuenchenName, sn.id, r.ContentType, r.Size, namedAs(r), r.Channel)

	// The applicant's Nachreichung at Saxony's portal: sn sends it where the
	// case went, across the border, and by files it with the case it has.
	follow := paket.ExampleNachreichung("99999001000000", p.Kopf.NachrichtID)
	follow.Kopf.Ort = p.Kopf.Ort
	out.say("Amt24", "the citizen adds a photo: a Nachreichung naming NachrichtID %s (Kopf/Bezug)", p.Kopf.NachrichtID)
	fres, err := submitDemo(ctx, client, follow, "Nachreichung")
	if err != nil {
		return fail("%v", err)
	}
	out.say("Amt24", "%d Created at %s: Nachreichung %s", fres.Status, sn.id, fres.SubmissionID)
	if err := awaitDecision(fres.SubmissionID); err != nil {
		return fail("Nachreichung: %v", err)
	}
	fst, err := client.Status(ctx, fres.SubmissionID)
	if err != nil {
		return fail("status of the Nachreichung: %v", err)
	}
	if fst.CaseID != res.SubmissionID {
		return fail("the Nachreichung's status at %s names case %q, not the application %s", sn.id, fst.CaseID, res.SubmissionID)
	}
	out.say("Amt24", "Nachreichung %s at %s: %s, case %s (the application's); event log: %s", fres.SubmissionID, sn.id, fst.State, fst.CaseID, eventSummary(fst.Events))

	out.end()
	fmt.Fprintf(stdout, "\ndemo complete: the application crossed from Saxony to Bavaria, reached %s and is %s; its Bescheid came back to Saxony's portal.\n", "Landeshauptstadt München", st.State)
	fmt.Fprintf(stdout, "its Nachreichung %s followed it across the border to the same office and is %s.\n", fres.SubmissionID, fst.State)
	return 0
}
