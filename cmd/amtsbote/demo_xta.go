package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/xta"
	"github.com/amtsbote/amtsbote/xta/xtaclient"
)

// --- xta: the Fachverfahren pulls by XTA 2 and answers with a Bescheid ---

// demoXTAIdentifier is Stadt Dresden's XTA account in the demo.
const demoXTAIdentifier = "urn:de:amtsbote:dev:xta:" + gateway.DemoOfficeID

type xtaOffice struct {
	poller
	out    *printer
	client *xtaclient.Client

	mu      sync.Mutex
	handled map[string]error // submission id -> what fetch, check, close and reply found
	answers map[string]chan struct{}
}

func newXTAOffice(e *demoEnv) (demoOffice, error) {
	if err := useDemoChannels(e, channel.XTA, channel.Mailbox); err != nil {
		return nil, err
	}
	e.cfg.XTA.Listen = "127.0.0.1:0"
	e.cfg.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Channels: map[string]config.Channel{
		channel.XTA: {Endpoint: demoXTAIdentifier, Params: map[string]string{xta.ParamMode: xta.ModePull}}}}}
	e.out.say("Fachverfahren", "Stadt Dresden's office system pulls by XTA 2 as %s", demoXTAIdentifier)
	return &xtaOffice{out: e.out, handled: map[string]error{}, answers: map[string]chan struct{}{}}, nil
}

func (x *xtaOffice) start(ctx context.Context, g *gateway.Gateway) error {
	base := g.XTAURL()
	if base == "" || g.DevTLS == nil || g.PKI == nil {
		return errors.New("xta demo: the gateway runs no XTA listener on the development PKI")
	}
	cert, err := tls.LoadX509KeyPair(g.DevTLS.ClientCert, g.DevTLS.ClientKey)
	if err != nil {
		return fmt.Errorf("xta demo: client certificate: %w", err)
	}
	caPEM, err := os.ReadFile(g.PKI.CACert)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("xta demo: no certificate in " + g.PKI.CACert)
	}
	c, err := xtaclient.New(xtaclient.Options{BaseURL: base,
		TLS:   &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: roots},
		Party: xtaclient.Party{Identifier: demoXTAIdentifier, Name: "Stadt Dresden"}})
	if err != nil {
		return err
	}
	if err := c.CheckAccountActive(ctx); err != nil {
		return fmt.Errorf("xta demo: checkAccountActive: %w", err)
	}
	x.out.say("Fachverfahren", "checkAccountActive at %s: client certificate %q accepted", base, cert.Leaf.Subject.CommonName)
	verifier := signing.NewVerifier(g.Trust, signing.VerifyOptions{})
	x.client = c
	failing := false
	x.run(ctx, 200*time.Millisecond, func(ctx context.Context) {
		l, err := c.GetStatusList(ctx, xtaclient.Query{MaxMessages: 10})
		if err != nil {
			if ctx.Err() == nil && !failing {
				x.out.say("Fachverfahren", "getStatusList failed: %v; polling on", err)
			}
			failing = true
			return
		}
		failing = false
		for _, md := range l.Messages {
			id := md.Property("amtsbote:submissionId")
			x.mu.Lock()
			_, seen := x.handled[id]
			x.mu.Unlock()
			if seen {
				continue
			}
			x.out.say("Fachverfahren", "getStatusList: %s waiting (%s, %d bytes%s)", md.XTAMessageID, md.MessageType, md.MessageSize,
				fachverfahren.CaseNote(id, md.Property("amtsbote:caseId")))
			err := x.take(ctx, c, verifier, md)
			x.mu.Lock()
			x.handled[id] = err
			ch := x.answer(id)
			x.mu.Unlock()
			close(ch)
		}
	})
	return nil
}

// answer is the channel closed once the case was handled (x.mu held).
func (x *xtaOffice) answer(id string) chan struct{} {
	ch, ok := x.answers[id]
	if !ok {
		ch = make(chan struct{})
		x.answers[id] = ch
	}
	return ch
}

// take is the office's whole work on one message: getMessage, check, close, and
// the Bescheid back with sendMessage.
func (x *xtaOffice) take(ctx context.Context, c *xtaclient.Client, v *signing.Verifier, md xtaclient.MetaData) error {
	m, err := c.GetMessage(ctx, md.XTAMessageID)
	if err != nil {
		return fmt.Errorf("getMessage: %w", err)
	}
	via := "inline"
	if m.Message.XOP {
		via = "MTOM/XOP"
	}
	sum := sha256.Sum256(m.Message.Data)
	digest := hex.EncodeToString(sum[:])
	if want := m.MetaData.Property("amtsbote:packageSha256"); want != digest {
		return fmt.Errorf("getMessage: package SHA-256 %s, the metadata says %q", digest, want)
	}
	x.out.say("Fachverfahren", "getMessage: %s (%d bytes, %s), SHA-256 matches the metadata", m.Message.Filename, len(m.Message.Data), via)
	vr, err := v.Verify(m.Message.Data, signing.RolePortal)
	if err != nil {
		return fmt.Errorf("portal signature: %w", err)
	}
	x.out.say("Fachverfahren", "portal signature verified: signed by %q", vr.Signer.ID)
	for _, a := range m.Attachments {
		x.out.say("Fachverfahren", "attachment %s (%s, %d bytes)", a.Filename, a.ContentType, len(a.Data))
	}
	if err := c.Close(ctx, md.XTAMessageID); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	x.out.say("Fachverfahren", "close %s: receipt confirmed", md.XTAMessageID)

	replyID, err := c.CreateMessageID(ctx)
	if err != nil {
		return fmt.Errorf("createMessageID: %w", err)
	}
	bescheid := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Bescheid xmlns="urn:amtsbote:demo:bescheid">
  <Bezug>%s</Bezug>
  <Ergebnis>Ihre Meldung wurde aufgenommen; der Papierkorb wird geleert.</Ergebnis>
  <Stelle>Stadt Dresden, Abt. Allgemeine Verwaltung/Grundsatz</Stelle>
</Bescheid>
`, md.Property("amtsbote:submissionId"))
	reply := xtaclient.Reply(m.MetaData, replyID, "Bescheid", xtaclient.Content{ContentType: "application/xml", Encoding: "UTF-8",
		Filename: "bescheid.xml", Data: []byte(bescheid)})
	if err := c.SendMessage(ctx, reply); err != nil {
		return fmt.Errorf("sendMessage: %w", err)
	}
	x.out.say("Fachverfahren", "sendMessage %s: Bescheid (%d bytes) in reply to %s", replyID, len(bescheid), md.XTAMessageID)
	return nil
}

// The office only confirms receipt; the Bescheid goes back as a reply.
func (x *xtaOffice) decides() bool { return false }

// check waits until the office has sent its Bescheid (close delivers first, the
// reply follows) and reports what it found.
func (x *xtaOffice) check(id string) error {
	x.mu.Lock()
	ch := x.answer(id)
	x.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(15 * time.Second):
		return errors.New("the Fachverfahren never fetched the case by XTA")
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.handled[id]
}

func (x *xtaOffice) close() {
	x.stop()
	if x.client != nil {
		x.client.CloseIdleConnections()
	}
}
