package xta

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/wire"
	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// closedCase is a case of office A its system closed by XTA, ready for replies.
func closedCase(t *testing.T, e *env) string {
	t.Helper()
	sub := e.submit(t, officeA, pkgBytes(300))
	if _, err := e.b.Confirm(context.Background(), officeA, sub.ID, broker.Pickup{Channel: channel.XTA, Receiver: "test"}); err != nil {
		t.Fatal(err)
	}
	return sub.ID
}

// sendContainer sends a reply with the XTAMessageID replyID to the case and the
// given ContentContainer content, as message type kind.
func sendContainer(t *testing.T, e *env, replyID, caseID, kind, container string) *soapResp {
	t.Helper()
	return post(t, e.client("office-a"), e.base+PathSender, actionCT(portSender, "sendMessage"),
		soapUIRequest(xtaA, replyHeader(replyID, xtaA, MessageID("amtsbote", caseID), kind), `
      <ns:ContentContainer>`+container+`</ns:ContentContainer>`))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestReplyRepeatWithOtherContentIsRefused: a sendMessage whose XTAMessageID
// already names a reply to the case is a repeat, stored once. One with other
// content (or another MessageType) under that id was answered as a repeat
// too, and its content dropped: a Fachverfahren that names its messages by
// its own case number sent its Bescheid after a Rückfrage, was told it was
// stored, and the applicant never got it. It is refused now with
// ParameterIsNotValidException, as the pull API's 409 for an Idempotency-Key
// of another reply, and nothing is stored. A true repeat is still answered
// without error, also of a reply with attachments (stored as one multipart
// document whose boundary is drawn afresh for every request).
func TestReplyRepeatWithOtherContentIsRefused(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	caseID := closedCase(t, e)
	one := `<ns:Message contentType="text/plain" filename="r.txt" id="m1">` + b64("Rückfrage: bitte Grundriss nachreichen") + `</ns:Message>`
	withAtt := one + `<ns:Attachment contentType="application/pdf" filename="anlage.pdf" id="a1">` + b64("%PDF-1.7 Anlage") + `</ns:Attachment>`
	plain, bundled := NewMessageID("office-a-fv"), NewMessageID("office-a-fv")
	for i := range 2 {
		mustOK(t, "sendMessage", sendContainer(t, e, plain, caseID, "Rueckfrage", one))
		mustOK(t, "sendMessage with an attachment", sendContainer(t, e, bundled, caseID, "Rueckfrage", withAtt))
		if i == 0 {
			continue
		}
		if s, _ := e.b.Submission(caseID); len(s.Replies) != 2 {
			t.Fatalf("the repeats stored %d replies, want 2: %+v", len(s.Replies), s.Replies)
		}
	}
	other := map[string]*soapResp{
		"other content":    sendContainer(t, e, plain, caseID, "Rueckfrage", `<ns:Message contentType="text/plain" filename="r.txt" id="m1">`+b64("Bescheid: genehmigt")+`</ns:Message>`),
		"other type":       sendContainer(t, e, plain, caseID, "Bescheid", one),
		"other media type": sendContainer(t, e, plain, caseID, "Rueckfrage", strings.Replace(one, "text/plain", "application/xml", 1)),
		"other attachment": sendContainer(t, e, bundled, caseID, "Rueckfrage", strings.Replace(withAtt, b64("%PDF-1.7 Anlage"), b64("%PDF-1.7 andere Anlage"), 1)),
		"attachment less":  sendContainer(t, e, bundled, caseID, "Rueckfrage", one),
		"attachment more":  sendContainer(t, e, plain, caseID, "Rueckfrage", withAtt),
	}
	for name, r := range other {
		v.AddMessage(name, r.root, r.parts)
		if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) {
			t.Errorf("a repeat of an XTAMessageID with %s: HTTP %d %s %s, want 400 env:Sender ParameterIsNotValidException\n%s", name, r.status, code, exc, r.root)
		} else if !strings.Contains(string(r.root), "another reply") {
			t.Errorf("a repeat of an XTAMessageID with %s: the fault does not say why:\n%s", name, r.root)
		}
	}
	if s, _ := e.b.Submission(caseID); len(s.Replies) != 2 {
		t.Errorf("the refused repeats stored replies: %+v", s.Replies)
	}
	v.Run()
}

// TestReplyContentMustBeContent: a content element is base64 (or one
// xop:Include); an XML document put in it as elements (a common mistake)
// came through as no text, and an empty Bescheid was stored and answered as
// sent. A second Message (the schema allows one) overwrote the first, which
// was lost without a word. An empty Message is no answer either (the pull
// API refuses an empty reply too). Each is ParameterIsNotValidException now,
// and nothing is stored.
func TestReplyContentMustBeContent(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	caseID := closedCase(t, e)
	msg := func(content string) string {
		return `<ns:Message contentType="application/xml" filename="b.xml" id="m1">` + content + `</ns:Message>`
	}
	for name, container := range map[string]string{
		"an XML document as elements":       msg(`<Bescheid xmlns="urn:fv"><Tenor>genehmigt</Tenor></Bescheid>`),
		"base64 around an element":          msg(b64("<Bescheid/>") + `<x:Note xmlns:x="urn:x"/>`),
		"an element beside the xop:Include": msg(`<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:x"/><x:Note xmlns:x="urn:x"/>`),
		"an element in an Attachment":       msg(b64("<Bescheid/>")) + `<ns:Attachment contentType="application/xml" filename="a.xml" id="a1"><Anlage/></ns:Attachment>`,
		"two Messages":                      msg(b64("<Bescheid>1</Bescheid>")) + `<ns:Message contentType="application/xml" filename="c.xml" id="m2">` + b64("<Bescheid>2</Bescheid>") + `</ns:Message>`,
		"an empty Message":                  msg(``),
		"a Message of whitespace":           msg("\n   \n"),
	} {
		r := sendContainer(t, e, NewMessageID("office-a-fv"), caseID, "Bescheid", container)
		if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) {
			t.Errorf("a reply with %s: HTTP %d %s %s, want 400 env:Sender ParameterIsNotValidException\n%s", name, r.status, code, exc, r.root)
		}
		v.AddMessage(name, r.root, r.parts)
	}
	if s, _ := e.b.Submission(caseID); len(s.Replies) != 0 {
		t.Errorf("refused replies were stored: %+v", s.Replies)
	}
	mustOK(t, "a reply with its content", sendContainer(t, e, NewMessageID("office-a-fv"), caseID, "Bescheid", msg(b64("<Bescheid/>"))))
	v.Run()
}

// TestReplyBeforeCloseSaysWhatToDo: a reply to a case the office's system has
// fetched but not closed is refused (the office has the case only once it
// confirmed it), with ParameterIsNotValidException that said "not possible
// in the message's current state"; it names the close now.
func TestReplyBeforeCloseSaysWhatToDo(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	sub := e.submit(t, officeA, pkgBytes(300))
	if _, err := e.b.RecordFetch(context.Background(), officeA, sub.ID, channel.XTA, time.Now()); err != nil {
		t.Fatal(err)
	}
	r := sendReply(t, e, NewMessageID("office-a-fv"), MessageID("amtsbote", sub.ID))
	v.AddMessage("sendMessage before close", r.root, r.parts)
	if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) || !strings.Contains(string(r.root), "with close") {
		t.Errorf("sendMessage before close: HTTP %d %s %s, want 400 env:Sender ParameterIsNotValidException that names close\n%s", r.status, code, exc, r.root)
	}
	if s, _ := e.b.Submission(sub.ID); len(s.Replies) != 0 {
		t.Errorf("the refused reply was stored: %+v", s.Replies)
	}
	v.Run()
}

// TestReplyKindIsBounded: the reply's kind is its MessageType, which the
// portal reads as wire.Reply.Kind (at most wire.MaxReplyKindLength
// characters, as the pull API refuses longer) and the clerk's page shows. A
// MessageType of any length or with a line break was stored as the kind; it
// is ParameterIsNotValidException now, and nothing is stored.
func TestReplyKindIsBounded(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	caseID := closedCase(t, e)
	msg := `<ns:Message contentType="application/xml" filename="b.xml" id="m1">` + b64("<Bescheid/>") + `</ns:Message>`
	for name, kind := range map[string]string{
		"101 characters": strings.Repeat("K", wire.MaxReplyKindLength+1),
		"a line break":   "Bescheid&#10;Zweite Zeile",
		"a tab":          "Bescheid&#9;x",
	} {
		r := sendContainer(t, e, NewMessageID("office-a-fv"), caseID, kind, msg)
		v.AddMessage(name, r.root, r.parts)
		if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) {
			t.Errorf("a MessageType of %s: HTTP %d %s %s, want 400 env:Sender ParameterIsNotValidException", name, r.status, code, exc)
		}
	}
	if s, _ := e.b.Submission(caseID); len(s.Replies) != 0 {
		t.Errorf("refused replies were stored: %+v", s.Replies)
	}
	mustOK(t, "a MessageType of 100 characters", sendContainer(t, e, NewMessageID("office-a-fv"), caseID, strings.Repeat("ä", wire.MaxReplyKindLength), msg))
	v.Run()
}
