package xta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/internal/httpmetrics"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
)

// countingDesk is the real desk that counts its List calls and answers them with
// err when set, as a store without quorum does after its timeout.
type countingDesk struct {
	broker.OfficeDesk
	lists *atomic.Int32
	err   error
}

func (d countingDesk) List(ctx context.Context, officeID string, q broker.ListQuery) (broker.Page, error) {
	d.lists.Add(1)
	if d.err != nil {
		return broker.Page{}, d.err
	}
	return d.OfficeDesk.List(ctx, officeID, q)
}

// Waiting counts and fails as List does: the status list reads the index with it.
func (d countingDesk) Waiting(ctx context.Context, officeID string) ([]broker.WaitingEntry, error) {
	d.lists.Add(1)
	if d.err != nil {
		return nil, d.err
	}
	return d.OfficeDesk.Waiting(ctx, officeID)
}

// TestStoreDownIsATechnicalProblem: while the gateway knows its store is out of
// reach (Options.StoreDown) an operation is a TechnicalProblemException at once,
// without asking the desk (which would wait out the store's 30 s); and a desk
// that fails with the store out of reach gives the same fault with the same
// text, not "internal error".
func TestStoreDownIsATechnicalProblem(t *testing.T) {
	for _, tc := range []struct {
		name      string
		down      error
		deskErr   error
		wantLists int32
	}{
		{"known down", errors.New("the NATS cluster does not answer for the store"), nil, 0},
		{"found down", nil, fmt.Errorf("jsstore: list: %w", broker.ErrStoreUnavailable), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lists atomic.Int32
			e := startEnv(t, func(o *Options) {
				o.Desk = countingDesk{OfficeDesk: o.Desk, lists: &lists, err: tc.deskErr}
				o.StoreDown = func() error { return tc.down }
			})
			req, err := http.NewRequest(http.MethodPost, e.base+PathRecipient, strings.NewReader(string(soapUIRequest(xtaA, "", statusListBody(false, 10, time.Time{}, time.Time{})))))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", actionCT(portRecipient, "getStatusList"))
			resp, err := e.client("office-a").Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), "TechnicalProblemException") || !strings.Contains(string(body), "does not answer now") ||
				strings.Contains(string(body), "NATS") {
				t.Errorf("getStatusList: %d\n%s", resp.StatusCode, body)
			}
			if n := lists.Load(); n != tc.wantLists {
				t.Errorf("the desk was asked %d times, want %d", n, tc.wantLists)
			}
		})
	}
}

// gettingDesk is the real desk, counting the records the face reads one by one
// (Get) and its listings (List).
type gettingDesk struct {
	broker.OfficeDesk
	gets, lists *atomic.Int32
}

func (d gettingDesk) Get(ctx context.Context, officeID, id string) (*submission.Submission, error) {
	d.gets.Add(1)
	return d.OfficeDesk.Get(ctx, officeID, id)
}

func (d gettingDesk) List(ctx context.Context, officeID string, q broker.ListQuery) (broker.Page, error) {
	d.lists.Add(1)
	return d.OfficeDesk.List(ctx, officeID, q)
}

// TestStatusListReadsWhatItLists: the usual poll (OtherCriteria without a time
// window) read every waiting record of the office to count MessagesPending; a
// box of thousands cost thousands of reads per poll. It reads the records it
// lists and counts the rest from the store's indexes, which know what was
// fetched: new entries only by default, every entry with NewEntry=false.
func TestStatusListReadsWhatItLists(t *testing.T) {
	var gets, lists atomic.Int32
	e := startEnv(t, func(o *Options) { o.Desk = gettingDesk{OfficeDesk: o.Desk, gets: &gets, lists: &lists} })
	var ids []string
	for range 12 {
		ids = append(ids, e.receive(t, officeA, pkgBytes(300)))
	}
	for _, id := range ids {
		e.wait(t, id, submission.StateHandedOver)
	}
	c := e.client("office-a")
	rec := e.base + PathRecipient
	// One fetched: a new-entries list leaves it out.
	mustOK(t, "getMessage", post(t, c, rec, actionCT(portRecipient, "getMessage"), soapUIRequest(xtaA, "", fetchBody(MessageID("amtsbote", ids[0])))))
	for _, tc := range []struct {
		name     string
		selector string
		first    string
		pending  string
	}{
		{"new entries (default)", `<ns:OtherCriteria><ns:MaxMessages>3</ns:MaxMessages></ns:OtherCriteria>`, ids[1], "8"},
		{"every entry", `<ns:OtherCriteria><ns:NewEntry>false</ns:NewEntry><ns:MaxMessages>3</ns:MaxMessages></ns:OtherCriteria>`, ids[0], "9"},
	} {
		gets.Store(0)
		lists.Store(0)
		r := post(t, c, rec, actionCT(portRecipient, "getStatusList"), soapUIRequest(xtaA, "", `<ns:MessageSelector>`+tc.selector+`</ns:MessageSelector>`))
		mustOK(t, tc.name, r)
		listed := r.doc.FindElements("//MessageStatusList/MessageMetaData")
		if len(listed) != 3 || r.text("//MessageStatusList/MessageMetaData/XTAMessageID") != MessageID("amtsbote", tc.first) {
			t.Errorf("%s: %d listed, first %s; want 3, first %s", tc.name, len(listed), r.text("//MessageStatusList/MessageMetaData/XTAMessageID"), MessageID("amtsbote", tc.first))
		}
		if got := r.text("//MessageBoxStatus/MessagesRemaining/MessagesPending"); got != tc.pending {
			t.Errorf("%s: MessagesPending %q, want %s", tc.name, got, tc.pending)
		}
		if g, l := gets.Load(), lists.Load(); g != 3 || l != 0 {
			t.Errorf("%s: %d records read one by one and %d listings, want the 3 listed and none", tc.name, g, l)
		}
	}
}

// TestFaultsAreCountedByTheirCode: the gateway counts the XTA face's answers
// (amtsbote_http_requests_total) with each fault's SOAP code, so that the 5xx
// alert pages for the service's own faults (Receiver: a store out of reach) and
// not for the HTTP 500 the SOAP binding prescribes for a caller's mistake
// (MustUnderstand, VersionMismatch); env:Sender faults are 400.
func TestFaultsAreCountedByTheirCode(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		o.StoreDown = func() error { return errors.New("the NATS cluster does not answer for the store") }
	})
	m := httpmetrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collectors()...)
	srv := httptest.NewUnstartedServer(m.Observe(e.xta, func(r *http.Request) string { return RouteOf(r.URL.Path) }, discardLogger()))
	srv.TLS = e.pki.serverTLS()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := e.client("office-a")
	send := func(path, contentType, body string) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send(PathRecipient, actionCT(portRecipient, "getStatusList"), string(soapUIRequest(xtaA, "", statusListBody(false, 10, time.Time{}, time.Time{}))))
	send(PathSender, "application/soap+xml; charset=utf-8", `<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Header>`+
		`<foo:Bar xmlns:foo="urn:foo" soap:mustUnderstand="true"/></soap:Header><soap:Body/></soap:Envelope>`)
	send(PathTransportBase, "text/xml; charset=utf-8", `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>`)
	send(PathRecipient, actionCT(portRecipient, "noSuchOperation"), string(soapUIRequest(xtaA, "", statusListBody(false, 10, time.Time{}, time.Time{}))))
	// A request is counted when its handler returns, and an early fault's
	// handler returns only after its drain: the client can have the answer
	// before that (1 run in 3 missed a count). Close waits for every handler.
	srv.Close()
	got := map[string]float64{}
	for _, s := range testenv.Samples(t, reg, "amtsbote_http_requests_total") {
		got[s.Labels["route"]+" "+s.Labels["status"]+" "+s.Labels["soap_fault"]] += s.Value
	}
	want := map[string]float64{
		PathRecipient + " 500 Receiver":            1,
		PathSender + " 500 MustUnderstand":         1,
		PathTransportBase + " 500 VersionMismatch": 1,
		PathRecipient + " 400 Sender":              1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("counted %v, want %v", got, want)
	}
}
