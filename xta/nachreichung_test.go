package xta

import (
	"context"
	"testing"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/xta/xtaclient"
)

// TestNachreichungNamesItsCase: a Nachreichung in the office's box carries
// the case it belongs to — amtsbote:caseId, the first package's submission
// id, and amtsbote:caseMessageId, the XTAMessageID that first message had,
// by which the Fachverfahren knows the case — in the status list and in
// getMessage's metadata; a new case carries neither.
func TestNachreichungNamesItsCase(t *testing.T) {
	ctx := context.Background()
	e := startEnv(t, nil)
	first := e.submit(t, officeA, pkgBytes(500))
	r, err := e.b.Receive(ctx, broker.Intake{
		MessageID: "msg-" + uuidString(), Sender: "amt24", SignerID: "amt24", LeikaKey: "99010003001006", ServiceName: "Bauantrag",
		Place: "Dresden", AreaName: "Dresden", OfficeID: officeA, OfficeName: "Bauaufsichtsamt",
		Targets: []submission.Target{{Channel: channel.XTA}}, Package: pkgBytes(400), CaseID: first.ID,
	})
	if err != nil {
		t.Fatal(err)
	}
	follow := e.wait(t, r.Submission.ID, submission.StateHandedOver)
	c := e.xtaClient(t, "office-a", xtaA, -1)
	l, err := c.GetStatusList(ctx, xtaclient.Query{MaxMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, md := range l.Messages {
		switch md.Property("amtsbote:submissionId") {
		case first.ID:
			seen++
			if md.Property("amtsbote:caseId") != "" || md.Property("amtsbote:caseMessageId") != "" {
				t.Errorf("the new case names a case: %+v", md.Properties)
			}
		case follow.ID:
			seen++
			if md.Property("amtsbote:caseId") != first.ID || md.Property("amtsbote:caseMessageId") != MessageID("amtsbote", first.ID) {
				t.Errorf("the Nachreichung's metadata: caseId %q, caseMessageId %q; want %s, %s", md.Property("amtsbote:caseId"),
					md.Property("amtsbote:caseMessageId"), first.ID, MessageID("amtsbote", first.ID))
			}
		}
	}
	if seen != 2 {
		t.Fatalf("status list %+v, want both messages", l.Messages)
	}
	m, err := c.GetMessage(ctx, MessageID("amtsbote", follow.ID))
	if err != nil {
		t.Fatal(err)
	}
	if m.MetaData.Property("amtsbote:caseMessageId") != MessageID("amtsbote", first.ID) {
		t.Errorf("getMessage's metadata: caseMessageId %q", m.MetaData.Property("amtsbote:caseMessageId"))
	}
}
