package xta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta/xtaclient"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

func (e *env) xtaClient(t testing.TB, cert, identifier string, threshold int64) *xtaclient.Client {
	t.Helper()
	c, err := xtaclient.New(xtaclient.Options{BaseURL: e.base, TLS: e.pki.clientTLS(cert), MTOMThreshold: threshold,
		Party: xtaclient.Party{Identifier: identifier, Scheme: "xoev", Name: "Bauaufsichtsamt Dresden", Directory: "DVDV"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestClient runs the office-side client through every operation against the
// server, inline and MTOM in both directions, and validates the requests it writes
// against the official XSDs.
func TestClient(t *testing.T) {
	v := xtatest.NewValidator(t)
	for _, tc := range []struct {
		name      string
		threshold int64 // server and client
		pkgSize   int
	}{{"inline", -1, 3000}, {"mtom", 1024, 300_000}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := startEnv(t, func(o *Options) { o.MTOMThreshold = tc.threshold })
			pkg := pkgBytes(tc.pkgSize)
			att := []byte("%PDF-1.7\n" + strings.Repeat("Lageplan ", 400) + "\n%%EOF\n")
			sub := e.submit(t, officeA, pkg, att)
			c := e.xtaClient(t, "office-a", xtaA, tc.threshold)

			if err := c.CheckAccountActive(ctx); err != nil {
				t.Fatal(err)
			}
			l, err := c.GetStatusList(ctx, xtaclient.Query{MaxMessages: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Messages) != 1 || l.Pending != 0 {
				t.Fatalf("status list %+v, want the one message", l)
			}
			md := l.Messages[0]
			if md.XTAMessageID != MessageID("amtsbote", sub.ID) || md.Author.Identifier != gatewayID || md.Reader.Identifier != xtaA ||
				md.Property("amtsbote:submissionId") != sub.ID || md.MessageSize != int64(len(pkg)+len(att)) || md.Origin.IsZero() {
				t.Errorf("metadata %+v", md)
			}
			m, err := c.GetMessage(ctx, md.XTAMessageID)
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(m.Message.Data); m.MetaData.Property("amtsbote:packageSha256") != hex.EncodeToString(sum[:]) {
				t.Errorf("amtsbote:packageSha256 %q does not match the package", m.MetaData.Property("amtsbote:packageSha256"))
			}
			if !bytes.Equal(m.Message.Data, pkg) || m.Message.ContentType != "application/xml" || m.Message.Filename != "antragspaket-"+sub.ID+".xml" {
				t.Fatalf("message: %d bytes %q %q", len(m.Message.Data), m.Message.ContentType, m.Message.Filename)
			}
			if len(m.Attachments) != 1 || !bytes.Equal(m.Attachments[0].Data, att) || m.Attachments[0].Filename != "Anlage 1.pdf" {
				t.Fatalf("attachments: %+v", len(m.Attachments))
			}
			if wantXOP := tc.threshold > 0; m.Message.XOP != wantXOP || m.Attachments[0].XOP != wantXOP {
				t.Errorf("XOP message %v attachment %v, want %v", m.Message.XOP, m.Attachments[0].XOP, wantXOP)
			}
			if m.MetaData.XTAMessageID != md.XTAMessageID || m.MetaData.InitialFetch.IsZero() {
				t.Errorf("getMessage metadata %+v", m.MetaData)
			}
			if r, err := c.GetTransportReport(ctx, md.XTAMessageID); err != nil || r.Status != StatusInProgress {
				t.Fatalf("report before close: %+v %v", r, err)
			}
			if err := c.Close(ctx, md.XTAMessageID); err != nil {
				t.Fatal(err)
			}
			e.wait(t, sub.ID, submission.StateDelivered)
			if err := c.Close(ctx, md.XTAMessageID); err != nil {
				t.Fatalf("repeated close: %v", err)
			}
			r, err := c.GetTransportReport(ctx, md.XTAMessageID)
			if err != nil || r.Status != StatusDelivered || r.MetaData.Reception.IsZero() || r.ServerIdentity != "amtsbote" {
				t.Fatalf("report after close: %+v %v", r, err)
			}
			if l, err := c.GetStatusList(ctx, xtaclient.Query{}); err != nil || len(l.Messages) != 0 {
				t.Fatalf("list after close: %+v %v", l, err)
			}

			// The answer: createMessageID, lookupService, sendMessage, sendMessageSync.
			id, err := c.CreateMessageID(ctx)
			if err != nil || !strings.HasPrefix(id, MessageIDPrefix) {
				t.Fatalf("createMessageID %q %v", id, err)
			}
			lr, err := c.LookupService(ctx, xtaclient.Lookup{Reader: md.Author}, xtaclient.Lookup{Reader: xtaclient.Party{Identifier: "dvdv:unknown"}})
			if err != nil || len(lr) != 2 || !lr[0].Available || lr[1].Available {
				t.Fatalf("lookupService %+v %v", lr, err)
			}
			bescheid := []byte(`<Bescheid xmlns="urn:xoev-de:xbau:2.3">` + strings.Repeat("Genehmigt. ", 200) + `</Bescheid>`)
			out := xtaclient.Reply(md, id, "Bescheid", xtaclient.Content{ContentType: "application/xml", Filename: "bescheid.xml", Data: bescheid})
			if err := c.SendMessage(ctx, out); err != nil {
				t.Fatal(err)
			}
			if err := c.SendMessage(ctx, out); err != nil {
				t.Fatalf("repeated sendMessage: %v", err)
			}
			out2 := xtaclient.Reply(md, NewMessageID("office-a"), "Rueckfrage", xtaclient.Content{ContentType: "text/plain", Data: []byte("Bitte Lageplan nachreichen.")},
				xtaclient.Content{ContentType: "application/pdf", Filename: "plan.pdf", Data: att})
			if _, err := c.SendMessageSync(ctx, out2); err != nil {
				t.Fatal(err)
			}
			s, _ := e.b.Submission(sub.ID)
			if len(s.Replies) != 2 || s.Replies[0].MessageID != id || s.Replies[0].Kind != "Bescheid" || s.Replies[1].Kind != "Rueckfrage" {
				t.Fatalf("replies %+v", s.Replies)
			}
			_, rc, err := e.b.OpenReply(ctx, officeA, sub.ID, s.Replies[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			_, _ = got.ReadFrom(rc)
			rc.Close()
			if !bytes.Equal(got.Bytes(), bescheid) {
				t.Errorf("stored Bescheid differs (%d bytes, want %d)", got.Len(), len(bescheid))
			}
			if r, err := c.GetTransportReport(ctx, id); err != nil || r.Status != StatusDelivered || r.MetaData.Property("InReplyTo") != md.XTAMessageID {
				t.Fatalf("report of the reply: %+v %v", r, err)
			}

			// Faults come back as *Fault with the exception.
			if _, err := c.GetMessage(ctx, MessageID("amtsbote", uuidString())); !xtaclient.IsException(err, xtaclient.InvalidMessageID) {
				t.Errorf("unknown id: %v", err)
			}
			stranger := e.xtaClient(t, "stranger", xtaA, tc.threshold)
			err = stranger.CheckAccountActive(ctx)
			var f *xtaclient.Fault
			if !xtaclient.IsException(err, xtaclient.PermissionDenied) || !errors.As(err, &f) || f.HTTPStatus != 400 || f.Code != "Sender" || f.ErrorCode == "" {
				t.Errorf("stranger: %#v", err)
			}
			noCert := e.xtaClient(t, "", xtaA, tc.threshold)
			if _, err := noCert.GetStatusList(ctx, xtaclient.Query{}); !xtaclient.IsException(err, xtaclient.PermissionDenied) {
				t.Errorf("no certificate: %v", err)
			}
		})
	}

	// The requests the client writes are valid XTA.
	p := xtaclient.Party{Identifier: xtaA, Scheme: "xoev", Name: "Bauaufsichtsamt Dresden", Directory: "DVDV"}
	md := xtaclient.MetaData{XTAMessageID: "urn:de:xta:messageid:office:1", Reader: xtaclient.Party{Identifier: gatewayID, Scheme: "xoev"}, Author: p,
		Sender: p, BusinessScenario: "Antwort", MessageType: "Bescheid", MessageSchema: "urn:x", Reception: time.Now(),
		Properties: []xtaclient.Property{{Key: "InReplyTo", Value: "urn:de:xta:messageid:amtsbote:x"}, {Key: "a&b", Value: "<c>"}}}
	for name, env := range map[string][]byte{
		"getStatusList":      xtaclient.Envelope(p, "", xtaclient.SelectorBody(xtaclient.Query{NewEntry: true, MaxMessages: 5, From: time.Now(), To: time.Now()})),
		"getStatusList-ids":  xtaclient.Envelope(p, "", xtaclient.SelectorBody(xtaclient.Query{IDs: []string{"urn:a", "urn:b"}})),
		"getMessage":         xtaclient.Envelope(p, "", xtaclient.FetchBody("urn:a")),
		"lookupService":      xtaclient.Envelope(p, "", xtaclient.LookupBody([]xtaclient.Lookup{{Reader: p, Service: "urn:s"}, {Reader: p}})),
		"getTransportReport": xtaclient.Envelope(p, "", xtaclient.ReportBody("urn:a")),
		"sendMessage":        xtaclient.Envelope(p, xtaclient.MetaDataXML(md), "<ns:ContentContainer><ns:Message id=\"m\">QQ==</ns:Message></ns:ContentContainer>"),
	} {
		v.AddMessage("request "+name, env, nil)
	}
	v.Run()
}
