package xta

import (
	"context"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// TestReplyFileNamesLoseTheirPaths: the filename of a reply's Message and
// Attachments is what the portal shows the applicant and saves under. Office
// systems fill it from the file they read, path and all: the names passed on
// unchanged, and the applicant saw the clerk's Windows account
// (C:\Users\max.mustermann\…) and the office's folder structure, or a name
// with ..\ a careless portal could write outside its folder. The gateway keeps
// the name's last element now, as browsers send an upload's name and as the
// web mailbox names its downloads; a name that is nothing but a path
// (.., /) is left out, the part goes without one. The bundle's Content-Disposition
// is read raw: Go's Part.FileName() cuts at "/" itself, not at "\".
func TestReplyFileNamesLoseTheirPaths(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	id := closedCase(t, e)
	for _, tc := range []struct{ sent, want string }{
		{`C:\Users\max.mustermann\Desktop\Bescheid.pdf`, "Bescheid.pdf"},
		{"/home/x/a.pdf", "a.pdf"},
		{`..\a.pdf`, "a.pdf"},
		{"../../etc/passwd", "passwd"},
		{`\\fileserver\bauamt$\Anlage 1.pdf`, "Anlage 1.pdf"},
		{`Anlage\`, "Anlage"},
		{"Bescheid Müller.pdf", "Bescheid Müller.pdf"},
		{"..", ""},
		{"/", ""},
		// A drive-relative Windows path: .NET's Path.Combine takes it for a
		// rooted one and writes on that drive, Path.GetFileName gives "a.pdf".
		{"C:a.pdf", "a.pdf"},
		{`D:..\a.pdf`, "a.pdf"},
		{"C:", ""},
	} {
		t.Run(tc.sent, func(t *testing.T) {
			container := `<ns:Message contentType="text/plain" filename="` + tc.sent + `" id="m1">` + b64("Bescheid") + `</ns:Message>` +
				`<ns:Attachment contentType="application/pdf" filename="` + tc.sent + `" id="a1">` + b64("%PDF-1.7") + `</ns:Attachment>`
			req := soapUIRequest(xtaA, replyHeader(NewMessageID("amtsbote"), xtaA, MessageID("amtsbote", id), "Bescheid"),
				`<ns:ContentContainer>`+container+`</ns:ContentContainer>`)
			// The request is valid XTA: the names are the schema's to allow.
			v.AddMessage("request "+tc.sent, req, nil)
			mustOK(t, "sendMessage", post(t, e.client("office-a"), e.base+PathSender, actionCT(portSender, "sendMessage"), req))
			s, _ := e.b.Submission(id)
			rep := s.Replies[len(s.Replies)-1]
			_, params, err := mime.ParseMediaType(rep.ContentType)
			if err != nil {
				t.Fatal(err)
			}
			_, rc, err := e.b.OpenReply(context.Background(), officeA, id, rep.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			mr := multipart.NewReader(rc, params["boundary"])
			for i := 0; ; i++ {
				p, err := mr.NextPart()
				if err == io.EOF {
					if i != 2 {
						t.Errorf("%d parts, want 2", i)
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				cd := p.Header.Get("Content-Disposition")
				got := ""
				if cd != "" {
					_, dp, err := mime.ParseMediaType(cd)
					if err != nil {
						t.Fatalf("part %d: Content-Disposition %q: %v", i, cd, err)
					}
					got = dp["filename"]
				}
				if got != tc.want {
					t.Errorf("part %d: file name %q (Content-Disposition %q), want %q", i, got, cd, tc.want)
				}
			}
		})
	}
	v.Run()
}

// TestReplyStoredWithItsPathIsARepeat: a reply stored before the gateway kept
// only the names' last elements holds them with their paths. Its repeat (the
// same XTAMessageID, sent again because the answer was lost, as in the
// gateway's restart for the update) is the same message: it is answered as a
// repeat and stored once, not refused as another message under a used id,
// which the office's system would send again under a new one, and the
// applicant would get the Bescheid twice.
func TestReplyStoredWithItsPathIsARepeat(t *testing.T) {
	e := startEnv(t, nil)
	id := closedCase(t, e)
	replyID := NewMessageID("amtsbote")
	const path = `C:\Users\max.mustermann\Desktop\Bescheid.pdf`
	// As the gateway stored it before: the names as sent.
	old, ct := bundle(bundlePart{contentType: "text/plain", filename: path, content: []byte("Bescheid")},
		[]bundlePart{{contentType: "application/pdf", filename: path, content: []byte("%PDF-1.7")}})
	if _, err := e.b.Reply(context.Background(), officeA, id, broker.ReplyIn{Kind: "Bescheid", MessageID: replyID, ContentType: ct,
		Content: old, Actor: "XTA account " + xtaA, Channel: channel.XTA}); err != nil {
		t.Fatal(err)
	}
	container := `<ns:Message contentType="text/plain" filename="` + path + `" id="m1">` + b64("Bescheid") + `</ns:Message>` +
		`<ns:Attachment contentType="application/pdf" filename="` + path + `" id="a1">` + b64("%PDF-1.7") + `</ns:Attachment>`
	mustOK(t, "the repeat", sendContainer(t, e, replyID, id, "Bescheid", container))
	if s, _ := e.b.Submission(id); len(s.Replies) != 1 {
		t.Errorf("%d replies stored, want the one", len(s.Replies))
	}
	// Another message under the id is still refused.
	other := `<ns:Message contentType="text/plain" filename="` + path + `" id="m1">` + b64("Rueckfrage") + `</ns:Message>` +
		`<ns:Attachment contentType="application/pdf" filename="` + path + `" id="a1">` + b64("%PDF-1.7") + `</ns:Attachment>`
	if _, exc := sendContainer(t, e, replyID, id, "Bescheid", other).fault(); exc != string(ParameterIsNotValid) {
		t.Errorf("another message under the id: %q, want ParameterIsNotValidException", exc)
	}
}

// TestReplyAloneKeepsItsName: a Message without Attachments is the reply's
// bytes, and its filename (last element) is the reply's file name, which the
// portal reads in the status and the download's Content-Disposition — until
// 2026-12-07 the name was dropped and the applicant saved the Bescheid under
// an id. A repeat under the XTAMessageID with the same name is the same
// message; with another name it is another message, refused.
func TestReplyAloneKeepsItsName(t *testing.T) {
	e := startEnv(t, nil)
	id := closedCase(t, e)
	replyID := NewMessageID("amtsbote")
	msg := func(name string) string {
		return `<ns:Message contentType="application/pdf" filename="` + name + `" id="m1">` + b64("%PDF-1.7 Bescheid") + `</ns:Message>`
	}
	mustOK(t, "sendMessage", sendContainer(t, e, replyID, id, "Bescheid", msg(`C:\Users\max.mustermann\Bescheid Müller.pdf`)))
	s, _ := e.b.Submission(id)
	if len(s.Replies) != 1 || s.Replies[0].FileName != "Bescheid Müller.pdf" {
		t.Fatalf("replies %+v, want one named Bescheid Müller.pdf", s.Replies)
	}
	mustOK(t, "the repeat", sendContainer(t, e, replyID, id, "Bescheid", msg("Bescheid Müller.pdf")))
	if s, _ := e.b.Submission(id); len(s.Replies) != 1 {
		t.Errorf("%d replies stored, want the one", len(s.Replies))
	}
	if _, exc := sendContainer(t, e, replyID, id, "Bescheid", msg("Widerruf.pdf")).fault(); exc != string(ParameterIsNotValid) {
		t.Errorf("another name under the id: %q, want ParameterIsNotValidException", exc)
	}
	// A name no file has is refused, as an attachment's.
	if _, exc := sendContainer(t, e, NewMessageID("amtsbote"), id, "Bescheid", msg(strings.Repeat("a", 300)+".pdf")).fault(); exc != string(ParameterIsNotValid) {
		t.Errorf("a name of 304 bytes: %q, want ParameterIsNotValidException", exc)
	}
}
