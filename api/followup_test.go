package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/mailbox/mailboxclient"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/wire"
)

// TestNachreichungReachesTheCasesOffice: the applicant answers the office's
// Rückfrage, or sends a missing document later. The portal submits it as a
// package whose Kopf/Bezug names the NachrichtID of the application it
// belongs to; it goes to the office that has that case — here although its
// own service is another office's by the directory — under the case's id
// (caseId in the office's view, the FIT-Connect way: one case, several
// submissions), also through a chain of them. Before, it was routed as a new
// application, and the office held two unrelated cases. A Bezug that names
// no application of this portal is 422 invalid-field naming the field, and
// nothing is stored.
func TestNachreichungReachesTheCasesOffice(t *testing.T) {
	g := startTakeoverGateway(t)
	ctx := context.Background()
	pc := &portal.Client{BaseURL: g.g.URL(), Signer: g.pki.Portal.Signer, Token: portalToken}
	first := paket.ExampleWith(pollingService, paket.NewMessageID(), time.Now())
	first.Kopf.Ort = paket.Ort{PLZ: "01067"}
	res, err := pc.Submit(ctx, first)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("the application: %v %+v", err, res)
	}
	caseID := res.SubmissionID

	// The Nachreichung names another service, which the directory gives to
	// mailOffice: it goes to pollingOffice, which has the case.
	submitFollowUp := func(service, bezug string) *portal.Result {
		t.Helper()
		p := paket.ExampleWith(service, paket.NewMessageID(), time.Now())
		p.Kopf.Ort = paket.Ort{PLZ: "01067"}
		p.Kopf.Bezug = bezug
		res, err := pc.Submit(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res = submitFollowUp(mailService, first.Kopf.NachrichtID)
	if res.Status != http.StatusCreated {
		t.Fatalf("the Nachreichung: %+v", res)
	}
	s, err := g.g.Broker.Submission(res.SubmissionID)
	if err != nil || s.OfficeID != pollingOffice || s.CaseID != caseID {
		t.Fatalf("the Nachreichung's record: office %s, case %s (%v); want %s, case %s", s.OfficeID, s.CaseID, err, pollingOffice, caseID)
	}
	// The office's system sees it with the case's id; the first package is
	// its own case.
	if v := officeView(t, g, res.SubmissionID); v.CaseID != caseID || v.SubmissionID != res.SubmissionID {
		t.Errorf("the office's view: caseId %s, submissionId %s; want the case %s", v.CaseID, v.SubmissionID, caseID)
	}
	if v := officeView(t, g, caseID); v.CaseID != caseID || v.Links[wire.LinkFollowUps] != wire.OfficeSubmissionsPath+"?caseId="+caseID {
		t.Errorf("the application's caseId %s, want its own id; its followUps link %q", v.CaseID, v.Links[wire.LinkFollowUps])
	}
	if v := officeView(t, g, res.SubmissionID); v.Links[wire.LinkFollowUps] != "" {
		t.Errorf("a Nachreichung links Nachreichungen of its own: %q", v.Links[wire.LinkFollowUps])
	}
	// The portal's view says so too, as its callbacks do.
	for id, want := range map[string]string{res.SubmissionID: caseID, caseID: caseID} {
		if st, err := pc.Status(ctx, id); err != nil || st.CaseID != want {
			t.Errorf("the portal's view of %s: caseId %q (%v), want %s", id, st.CaseID, err, want)
		}
	}
	// A Nachreichung to the Nachreichung (its NachrichtID in upper case, as
	// a portal may write a UUID) belongs to the same case.
	res = submitFollowUp(pollingService, strings.ToUpper(s.MessageID))
	if s2, err := g.g.Broker.Submission(res.SubmissionID); res.Status != http.StatusCreated || err != nil || s2.CaseID != caseID || s2.OfficeID != pollingOffice {
		t.Errorf("the second Nachreichung: %+v, record %+v %v, want case %s", res, s2, err, caseID)
	}

	// The office's system lists the case's Nachreichungen by its id, in pages
	// whose next link keeps the case.
	var listed []string
	for path := wire.OfficeSubmissionsPath + "?limit=1&caseId=" + caseID; path != ""; {
		l := officeList(t, g, path)
		for _, v := range l.Submissions {
			listed = append(listed, v.SubmissionID)
		}
		if l.Next != "" && !strings.Contains(l.Next, "caseId="+caseID) {
			t.Fatalf("the next link %q drops the case", l.Next)
		}
		path = l.Next
	}
	if want := []string{s.ID, res.SubmissionID}; !slices.Equal(listed, want) {
		t.Errorf("the case's Nachreichungen as the office lists them: %v, want %v", listed, want)
	}
	if l := officeList(t, g, wire.OfficeSubmissionsPath+"?caseId="+res.SubmissionID); len(l.Submissions) != 0 {
		t.Errorf("a Nachreichung's own Nachreichungen: %+v, want none", l.Submissions)
	}
	// The operator's view of the case names them too.
	if a := getAs[api.AdminSubmission](t, g, wire.AdminSubmissionPath(caseID), adminToken); !slices.Equal(a.FollowUps, []string{s.ID, res.SubmissionID}) {
		t.Errorf("the operator's view of the case: followUps %v, want [%s %s]", a.FollowUps, s.ID, res.SubmissionID)
	}

	// Refused, and nothing stored: a Bezug no application of this portal has.
	before, _ := g.g.Broker.List(ctx, pollingOffice, broker.ListQuery{})
	res = submitFollowUp(mailService, paket.NewMessageID())
	if res.Status != http.StatusUnprocessableEntity || res.Problem == nil || res.Problem.Type != problem.TypeInvalidField ||
		res.Problem.Extra["field"] != "Antragspaket/Kopf/Bezug" {
		t.Fatalf("an unknown Bezug: %+v %+v", res, res.Problem)
	}
	if after, _ := g.g.Broker.List(ctx, pollingOffice, broker.ListQuery{}); len(after.Items) != len(before.Items) {
		t.Errorf("the refused Nachreichung was stored: %d cases, were %d", len(after.Items), len(before.Items))
	}
}

// officeList is the polling office's list at path.
func officeList(t *testing.T, g takeoverGateway, path string) wire.OfficeList {
	t.Helper()
	return officeGet[wire.OfficeList](t, g, path)
}

// officeView is the polling office's view of submission id.
func officeView(t *testing.T, g takeoverGateway, id string) wire.OfficeSubmission {
	t.Helper()
	return officeGet[wire.OfficeSubmission](t, g, wire.OfficeSubmissionPath(id))
}

// officeGet is the polling office's GET of path, decoded as T.
func officeGet[T any](t *testing.T, g takeoverGateway, path string) T {
	t.Helper()
	return getAs[T](t, g, path, pollingToken)
}

// getAs is a GET of path with token, decoded as T.
func getAs[T any](t *testing.T, g takeoverGateway, path, token string) T {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.g.URL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return v
}

// TestNachreichungToATakenOverCaseGoesToTheClerk: a clerk took the case over
// in the web mailbox, and the office's system was told to drop it; the
// applicant's Nachreichung goes to her mailbox, not to that system.
func TestNachreichungToATakenOverCaseGoesToTheClerk(t *testing.T) {
	g := startTakeoverGateway(t)
	ctx := context.Background()
	pc := &portal.Client{BaseURL: g.g.URL(), Signer: g.pki.Portal.Signer, Token: portalToken}
	id := submitHandedOver(t, g.g, pc, pollingService)
	clerk := mailboxclient.New(g.g.URL() + gateway.MailboxPath + "/")
	if _, err := clerk.Login(ctx, "paula", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := clerk.TakeOver(ctx, id); err != nil {
		t.Fatal(err)
	}
	s, err := g.g.Broker.Submission(id)
	if err != nil || s.TakenOverFrom == "" {
		t.Fatalf("the takeover: %+v %v", s, err)
	}
	p := paket.ExampleWith(pollingService, paket.NewMessageID(), time.Now())
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	p.Kopf.Bezug = s.MessageID
	res, err := pc.Submit(ctx, p)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("the Nachreichung: %v %+v", err, res)
	}
	n, err := g.g.Broker.Submission(res.SubmissionID)
	if err != nil || n.CaseID != id || len(n.Targets) != 1 || n.Targets[0].Channel != channel.Mailbox {
		t.Fatalf("the Nachreichung's record: case %s, targets %+v (%v); want case %s for the mailbox alone", n.CaseID, n.Targets, err, id)
	}
}
