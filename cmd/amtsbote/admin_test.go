package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/gatewaytest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestAdminCommands: the person on call works through the admin API with the
// CLI alone: what waits for a person, one package's story, the replay, the
// endpoints, a state's list, what waits per office; a wrong token and a reload without directory files
// say what happened; the token never comes from the command line.
func TestAdminCommands(t *testing.T) {
	g, pki := gatewaytest.Start(t, func(c *config.Config) {
		c.Portals = map[string]config.PortalClient{"amt24": {Token: "portal-token"}}
		c.AdminToken = "admin-token-of-the-test"
	})
	// The example goes to Dresden, whose office here has no channel and no
	// mailbox user: it is held.
	submit := func(extra ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if rc := runSubmit(context.Background(), append([]string{"-url", g.URL(), "-data", t.TempDir(), "-key", pki.Portal.KeyFile, "-cert", pki.Portal.CertFile,
			"-token", "portal-token", "-wait", "2s"}, extra...), &out, &errb); rc != 0 {
			t.Fatalf("submit: rc %d\n%s%s", rc, out.String(), errb.String())
		}
		id := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f-]{27}`).FindString(out.String())
		if id == "" {
			t.Fatalf("no submission id in\n%s", out.String())
		}
		return id
	}
	id, erased := submit(), submit()
	admin := func(token string, args ...string) (int, string, string) {
		t.Helper()
		t.Setenv("AMTSBOTE_ADMIN_TOKEN", token)
		var out, errb bytes.Buffer
		rc := runAdmin(context.Background(), append([]string{"-url", g.URL(), "-data", t.TempDir()}, args...), &out, &errb)
		return rc, out.String(), errb.String()
	}
	const token = "admin-token-of-the-test"
	waitHeld := func() string {
		t.Helper()
		var last string
		for range 100 {
			rc, out, errs := admin(token, "held")
			if rc != 0 {
				t.Fatalf("held: rc %d\n%s", rc, errs)
			}
			if strings.Contains(out, id) && strings.Contains(out, erased) {
				return out
			}
			last = out
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("the package is not listed as held:\n%s", last)
		return ""
	}
	held := waitHeld()
	t.Logf("amtsbote admin held:\n%s", held)
	if !strings.Contains(held, "2 held") || !strings.Contains(held, "HELD SINCE") {
		t.Errorf("held:\n%s", held)
	}
	rc, out2, _ := admin(token, "show", id)
	t.Logf("amtsbote admin show: rc %d\n%s", rc, out2)
	if rc, out, errs := admin(token, "show", id); rc != 0 || !strings.Contains(out, "state") || !strings.Contains(out, "held") ||
		!strings.Contains(out, "received") || !strings.Contains(out, "events:") {
		t.Errorf("show: rc %d\n%s%s", rc, out, errs)
	}
	// By what the portal knows of it: its Absender and NachrichtID.
	s, err := g.Broker.Submission(id)
	if err != nil {
		t.Fatal(err)
	}
	if rc, out, errs := admin(token, "find", s.Sender, s.MessageID); rc != 0 || !strings.Contains(out, id) || !strings.Contains(out, "events:") {
		t.Errorf("find: rc %d\n%s%s", rc, out, errs)
	}
	if rc, _, errs := admin(token, "find", s.Sender, "no-such-message"); rc != 1 || !strings.Contains(errs, "404") {
		t.Errorf("find of an unknown NachrichtID: rc %d\n%s", rc, errs)
	}
	if rc, out, errs := admin(token, "list", "-state", "held"); rc != 0 || !strings.Contains(out, id) || !strings.Contains(out, "2 held") {
		t.Errorf("list: rc %d\n%s%s", rc, out, errs)
	}
	// For whom it waits: both held packages, one office, received when the first was.
	rc, offices, _ := admin(token, "offices")
	t.Logf("amtsbote admin offices: rc %d\n%s", rc, offices)
	if rc, out, errs := admin(token, "offices"); rc != 0 || !strings.Contains(out, "HELD") ||
		!regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d +\S+ +0 +0 +0 +2 +Stadt Dresden`).MatchString(out) ||
		!strings.Contains(out, "2 packages wait for 1 office.") {
		t.Errorf("offices: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := admin(token, "-json", "offices"); rc != 0 || !regexp.MustCompile(`"held":\s*2`).MatchString(out) || !regexp.MustCompile(`"complete":\s*true`).MatchString(out) {
		t.Errorf("offices -json: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := admin(token, "replay", id); rc != 0 || !strings.Contains(out, "replayed 1") {
		t.Errorf("replay: rc %d\n%s%s", rc, out, errs)
	}
	if rc, _, errs := admin(token, "erase", erased); rc != 2 || !strings.Contains(errs, "-operator") {
		t.Errorf("erase without -operator: rc %d\n%s", rc, errs)
	}
	// The applicant sent a document later for the case to be erased: the
	// erasure of the case takes it too.
	es, err := g.Broker.Submission(erased)
	if err != nil {
		t.Fatal(err)
	}
	nachreichung := submit("-bezug", es.MessageID)
	for i := 0; ; i++ {
		if n, err := g.Broker.Submission(nachreichung); err == nil && n.State == submission.StateHeld {
			break
		} else if i == 100 {
			t.Fatalf("the Nachreichung is not held: %+v %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rc, out, errs := admin(token, "show", erased); rc != 0 || !regexp.MustCompile(`(?m)^nachreichungen +`+nachreichung+`$`).MatchString(out) {
		t.Errorf("show of the case names no Nachreichung: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := admin(token, "show", nachreichung); rc != 0 || !regexp.MustCompile(`(?m)^nachreichung to +`+erased+`$`).MatchString(out) {
		t.Errorf("show of the Nachreichung names no case: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := admin(token, "erase", "-operator", "Datenschutz (Frau Weber)", "-note", "Antrag 2026-17", erased); rc != 0 || !strings.Contains(out, erased+" erased") ||
		!strings.Contains(out, "Nachreichung "+nachreichung+" erased") {
		t.Errorf("erase: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := admin(token, "show", erased); rc != 0 || !strings.Contains(out, "Datenschutz (Frau Weber) (admin API)") {
		t.Errorf("show after erase: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := admin(token, "erase", "-operator", "Datenschutz", erased); rc != 0 || !strings.Contains(out, "removed before") {
		_, show, _ := admin(token, "show", erased)
		t.Errorf("erase again: rc %d\n%s%s\n%s", rc, out, errs, show)
	}
	if rc, out, errs := admin(token, "endpoints"); rc != 0 || out == "" {
		t.Errorf("endpoints: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := admin(token, "-json", "show", id); rc != 0 || !strings.Contains(out, `"submission"`) {
		t.Errorf("show -json: rc %d\n%s%s", rc, out, errs)
	}
	// What goes wrong says so, and exits 1 (2: the command line).
	if rc, _, errs := admin(token, "replay", "no-such-id"); rc != 1 || !strings.Contains(errs, "404") || !strings.Contains(errs, "no-such-id") {
		t.Errorf("replay of an unknown id: rc %d\n%s", rc, errs)
	}
	if rc, out, errs := admin(token, "reload"); rc != 0 || !strings.HasPrefix(out, "reloaded, ") {
		t.Errorf("reload: rc %d\n%s%s", rc, out, errs)
	}
	if rc, _, errs := admin("a-wrong-token", "held"); rc != 1 || !strings.Contains(errs, "401") || !strings.Contains(errs, "admin token") ||
		strings.Contains(errs, "a-wrong-token") {
		t.Errorf("wrong token: rc %d\n%s", rc, errs)
	}
	if rc, _, errs := admin(token, "show"); rc != 2 || !strings.Contains(errs, "usage") {
		t.Errorf("show without an id: rc %d\n%s", rc, errs)
	}
	if rc, _, errs := admin(token, "frobnicate"); rc != 2 || !strings.Contains(errs, "usage") {
		t.Errorf("unknown verb: rc %d\n%s", rc, errs)
	}
	if rc, _, errs := admin("", "held"); rc != 2 || !strings.Contains(errs, "no admin token") {
		t.Errorf("no token: rc %d\n%s", rc, errs)
	}
}

// TestAdminEraseWithoutAnAnswer: when the connection ends without an answer (the
// server's write timeout while it searches a big store for shared files), the
// gateway finishes the erasure all the same; the command says so and how to
// check, where it used to print only "EOF". A problem answer gets no such hint.
func TestAdminEraseWithoutAnAnswer(t *testing.T) {
	drop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/refused/erase") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"type": "https://amtsbote.example/problems/conflict", "detail": "waits for a delivery attempt"}`))
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer drop.Close()
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "token")
	erase := func(id string) (int, string) {
		var out, errb bytes.Buffer
		rc := runAdmin(context.Background(), []string{"-url", drop.URL, "-data", t.TempDir(), "erase", "-operator", "Frau Weber", id}, &out, &errb)
		return rc, errb.String()
	}
	if rc, errs := erase("01a2-dropped"); rc != 1 || !strings.Contains(errs, "amtsbote admin show 01a2-dropped") || !strings.Contains(errs, "erasing again is safe") {
		t.Fatalf("dropped connection: rc %d\n%s", rc, errs)
	}
	if rc, errs := erase("refused"); rc != 1 || !strings.Contains(errs, "409") || strings.Contains(errs, "admin show") {
		t.Fatalf("a problem answer: rc %d\n%s", rc, errs)
	}
}

// TestAdminTokenAsTheGatewayTakesIt: the gateway trims its tokens (a token
// from a secret file or a Kubernetes secret ends in a newline), and the CLI sent
// admin_token as it came: "Bearer T\n" is no valid header value, so admin and
// store backup failed before the request with "invalid header field value"
// while the gateway would have taken the token.
func TestAdminTokenAsTheGatewayTakesIt(t *testing.T) {
	g, _ := gatewaytest.Start(t, func(c *config.Config) { c.AdminToken = "admin-token-of-the-test" })
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "admin-token-of-the-test\n")
	var out, errb bytes.Buffer
	if rc := runAdmin(context.Background(), []string{"-url", g.URL(), "-data", t.TempDir(), "endpoints"}, &out, &errb); rc != 0 {
		t.Fatalf("admin endpoints with a token ending in a newline: rc %d\n%s%s", rc, out.String(), errb.String())
	}
}

// TestAdminSaysWhatIsWrong: a command line admin cannot use printed only the
// general usage, and the reason it had built (a mistyped verb, an -operator
// missing) was dropped; `erase ID -operator NAME` read -operator as a second id.
// Now the reason comes first, and erase takes its flags after the id too.
func TestAdminSaysWhatIsWrong(t *testing.T) {
	var erased []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Operator, Note string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		erased = append(erased, r.Method+" "+r.URL.Path+" "+body.Operator+"/"+body.Note)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id": "case-1", "state": "delivered", "blobsDeleted": 2}`))
	}))
	defer srv.Close()
	t.Setenv("AMTSBOTE_CONFIG", "")
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "token")
	admin := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		rc := runAdmin(context.Background(), append([]string{"-url", srv.URL, "-data", t.TempDir()}, args...), &out, &errb)
		return rc, out.String(), errb.String()
	}
	for _, tc := range []struct {
		args   []string
		reason string
	}{
		{[]string{"helt"}, `amtsbote admin: no verb "helt"`},
		{[]string{"erase", "case-1"}, "amtsbote admin erase: erase needs -operator NAME"},
		{[]string{"erase", "-operator", "Frau Weber", "case-1", "case-2"}, `amtsbote admin erase: erase takes one submission id, got ["case-1" "case-2"]`},
		{[]string{"show"}, "amtsbote admin show: show takes one submission id"},
		{[]string{"find", "amt24"}, "amtsbote admin find: find takes SENDER NACHRICHTID"},
		{[]string{"held", "amt-01"}, `amtsbote admin held: held takes no arguments besides -office, -from and -to, got ["amt-01"]`},
		{[]string{"list"}, "amtsbote admin list: list takes -state STATE"},
	} {
		rc, out, errs := admin(tc.args...)
		reason, usage := strings.Index(errs, tc.reason), strings.Index(errs, "usage: amtsbote admin")
		if rc != 2 || reason < 0 || usage < reason {
			t.Errorf("%q: rc %d, want 2 with the reason %q before the usage\n%s%s", tc.args, rc, tc.reason, out, errs)
		}
	}
	if len(erased) != 0 {
		t.Fatalf("a wrong command line reached the gateway: %q", erased)
	}

	// The flags after the id, or before it, or a "--" before an id that looks like a flag.
	for _, args := range [][]string{
		{"erase", "case-1", "-operator", "Frau Weber", "-note", "Antrag 17"},
		{"erase", "-operator", "Frau Weber", "case-1", "-note", "Antrag 17"},
		{"erase", "-operator", "Frau Weber", "-note", "Antrag 17", "--", "case-1"},
	} {
		if rc, out, errs := admin(args...); rc != 0 || !strings.Contains(out, "case-1 erased") {
			t.Errorf("%q: rc %d\n%s%s", args, rc, out, errs)
		}
	}
	want := "POST /v1/admin/submissions/case-1/erase Frau Weber/Antrag 17"
	if len(erased) != 3 || erased[0] != want || erased[1] != want || erased[2] != want {
		t.Fatalf("the gateway got %q, want 3 × %q", erased, want)
	}
}

// TestAdminReloadListsEveryGateway: in a cluster the reload reaches every
// gateway, and the command lists each one's result, also when one refused a
// file or did not answer (the answer is then no success and the command exits
// 1). Before, a reload reached the one gateway the load balancer picked and
// printed "reloaded".
func TestAdminReloadListsEveryGateway(t *testing.T) {
	answer, status := "", 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	t.Setenv("AMTSBOTE_CONFIG", "")
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "token")
	reload := func() (int, string, string) {
		var out, errb bytes.Buffer
		rc := runAdmin(context.Background(), []string{"-url", srv.URL, "-data", t.TempDir(), "reload"}, &out, &errb)
		return rc, out.String(), errb.String()
	}
	status, answer = 200, `{"status": "reloaded", "counts": {"services": 27}, "nodes": [
		{"node": "a1", "address": "gw-1:8443", "status": "reloaded"}, {"node": "b2", "address": "gw-2:8443", "status": "reloaded"}]}`
	if rc, out, errs := reload(); rc != 0 || !strings.HasPrefix(out, "reloaded, 27 services\n") ||
		!regexp.MustCompile(`(?m)^b2 +gw-2:8443 +reloaded`).MatchString(out) {
		t.Errorf("every gateway reloaded: rc %d\n%s%s", rc, out, errs)
	}
	status, answer = 504, `{"type": "https://amtsbote.de/problems/reload-incomplete", "status": 504, "detail": "1 of 2 gateways did not answer", "nodes": [
		{"node": "a1", "address": "gw-1:8443", "status": "reloaded"}, {"node": "b2", "address": "gw-2:8443", "status": "no answer", "error": "no answer within 20s"}]}`
	if rc, out, errs := reload(); rc != 1 || !regexp.MustCompile(`(?m)^b2 +gw-2:8443 +no answer +no answer within 20s`).MatchString(out) ||
		!strings.Contains(errs, "504") || !strings.Contains(errs, "did not answer") {
		t.Errorf("a gateway without an answer: rc %d\n%s%s", rc, out, errs)
	}
}

// TestAdminJSONReloadPrintsTheRefusal: with -json a failed cluster reload printed
// the text table; a script reading JSON got "GATEWAY ADDRESS RESULT" instead of
// the answer, which names each gateway's result.
func TestAdminJSONReloadPrintsTheRefusal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = w.Write([]byte(`{"type": "https://amtsbote.de/problems/reload-incomplete", "status": 504, "detail": "1 of 2", "nodes": [
		{"node": "a1", "address": "gw-1:8443", "status": "reloaded"}, {"node": "b2", "address": "gw-2:8443", "status": "no answer"}]}`))
	}))
	defer srv.Close()
	t.Setenv("AMTSBOTE_CONFIG", "")
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "token")
	var out, errb bytes.Buffer
	rc := runAdmin(context.Background(), []string{"-url", srv.URL, "-data", t.TempDir(), "-json", "reload"}, &out, &errb)
	if rc == 0 {
		t.Error("a failed reload exited 0")
	}
	if !json.Valid(out.Bytes()) || !strings.Contains(out.String(), `"no answer"`) {
		t.Errorf("-json reload: stdout is not the answer:\n%s", out.String())
	}
}

// TestBacklogSentenceAgrees: one package waits, two wait ("1 package wait for
// 1 office" was printed, found in the docs audit of 12-05 night).
func TestBacklogSentenceAgrees(t *testing.T) {
	for _, c := range []struct {
		n, offices int
		want       string
	}{
		{1, 1, "1 package waits for 1 office."},
		{2, 1, "2 packages wait for 1 office."},
		{3, 2, "3 packages wait for 2 offices."},
	} {
		if got := backlogSentence(c.n, c.offices, true); !strings.HasPrefix(got, c.want) {
			t.Errorf("%d, %d: %q, want it to begin %q", c.n, c.offices, got, c.want)
		}
	}
	if got := backlogSentence(1, 1, false); !strings.Contains(got, "1 package waits for 1 office (the first read; more wait).") {
		t.Errorf("incomplete: %q", got)
	}
}

// TestAdminUndecided: the person on call sees which cases an office's system
// fetched and never decided, and per office how many since when — the answer to
// AmtsboteUndecidedForDays — without curl; an office with none says so.
func TestAdminUndecided(t *testing.T) {
	const token, officeToken = "admin-token-of-the-test", "office-token-of-the-test"
	g, pki := gatewaytest.Start(t, func(c *config.Config) {
		c.Portals = map[string]config.PortalClient{"amt24": {Token: "portal-token"}}
		c.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Token: officeToken}}
		c.AdminToken = token
	})
	var out, errb bytes.Buffer
	if rc := runSubmit(context.Background(), []string{"-url", g.URL(), "-data", t.TempDir(), "-key", pki.Portal.KeyFile, "-cert", pki.Portal.CertFile,
		"-token", "portal-token", "-wait", "2s"}, &out, &errb); rc != 0 {
		t.Fatalf("submit: rc %d\n%s%s", rc, out.String(), errb.String())
	}
	id := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f-]{27}`).FindString(out.String())
	// The office's system fetches the package (the delivery) and decides nothing.
	req, _ := http.NewRequest(http.MethodGet, g.URL()+"/v1/office/submissions/"+id+"/package", nil)
	req.Header.Set("Authorization", "Bearer "+officeToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetch %s: %v %v", id, resp, err)
	}
	resp.Body.Close()
	admin := func(args ...string) (int, string, string) {
		t.Helper()
		t.Setenv("AMTSBOTE_ADMIN_TOKEN", token)
		var out, errb bytes.Buffer
		rc := runAdmin(context.Background(), append([]string{"-url", g.URL(), "-data", t.TempDir()}, args...), &out, &errb)
		return rc, out.String(), errb.String()
	}
	rc, list, errs := admin("undecided")
	t.Logf("amtsbote admin undecided:\n%s", list)
	if rc != 0 || !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d +`+id+` +`+gateway.DemoOfficeID+` +api +\d{4}`).MatchString(list) ||
		!regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d +`+gateway.DemoOfficeID+` +1 +Stadt Dresden`).MatchString(list) ||
		!strings.Contains(list, "1 case undecided, at 1 office.") {
		t.Errorf("undecided: rc %d\n%s%s", rc, list, errs)
	}
	if rc, out, errs := admin("undecided", "-office", "leipzig-ordnungsamt"); rc != 0 || strings.Contains(out, id) || !strings.Contains(out, "no case waits") {
		t.Errorf("undecided of another office: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := admin("-json", "undecided", "-office", gateway.DemoOfficeID); rc != 0 || !strings.Contains(out, `"id": "`+id+`"`) {
		t.Errorf("undecided -json: rc %d\n%s%s", rc, out, errs)
	}
	if rc, _, errs := admin("undecided", "extra"); rc != 2 || !strings.Contains(errs, "usage") {
		t.Errorf("undecided with an argument: rc %d\n%s", rc, errs)
	}
}

// TestAllPagesFollowsTheNextLinks: the CLI reads a paged listing to its end, in
// order, keeps each page for -json, and says so when a page is not one. The
// gateway's side of the paging is gateway.TestDeadLetterPages; the listings
// have more than one page only past 1,000 rows, so the reader is tried here on
// pages of one.
func TestAllPagesFollowsTheNextLinks(t *testing.T) {
	pages := map[string]string{
		"/v1/admin/x?limit=1":         `{"rows":[{"id":"a"}],"next":"/v1/admin/x?after=a&limit=1"}`,
		"/v1/admin/x?after=a&limit=1": `{"rows":[{"id":"b"}],"next":"/v1/admin/x?after=b&limit=1"}`,
		"/v1/admin/x?after=b&limit=1": `{"rows":[]}`,
		"/v1/admin/bad":               `{"rows":{"id":"a"}}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := pages[r.URL.RequestURI()]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	c := &adminClient{base: srv.URL, token: "t", http: srv.Client()}
	type row struct{ ID string }
	rows, raws, err := allPages[row](context.Background(), c, "/v1/admin/x?limit=1", "rows")
	if err != nil || len(rows) != 2 || rows[0].ID != "a" || rows[1].ID != "b" || len(raws) != 3 {
		t.Fatalf("rows %+v, %d pages, err %v; want a, b from 3 pages", rows, len(raws), err)
	}
	if _, _, err := allPages[row](context.Background(), c, "/v1/admin/bad", "rows"); err == nil {
		t.Fatal("a page whose rows are no list was read without an error")
	}
}

// TestAdminRefusesTheTokenInTheClear: `amtsbote admin` and `store backup` sent
// the admin token (a backup: the whole store) to public_url or -url, plain
// http:// to another host included, where anyone on the way could read it (a
// security audit, 2026-12-06). They refuse that before any request; loopback
// and https stay.
func TestAdminRefusesTheTokenInTheClear(t *testing.T) {
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "admin-token-of-the-test")
	for base, refused := range map[string]bool{
		"http://192.0.2.1:8080":      true,
		"http://gateway.amt.example": true,
		"http://127.0.0.1:1":         false,
		"http://[::1]:1":             false,
		"http://localhost:1":         false,
		"https://127.0.0.1:1/":       false,
	} {
		var out, errb bytes.Buffer
		rc := runAdmin(context.Background(), []string{"-url", base, "-data", t.TempDir(), "offices"}, &out, &errb)
		got := rc == 2 && strings.Contains(errb.String(), "refusing to send the admin token in the clear")
		if got != refused {
			t.Errorf("%s: rc %d, refused %v, want %v\n%s", base, rc, got, refused, errb.String())
		}
		if strings.Contains(errb.String(), "admin-token-of-the-test") {
			t.Errorf("%s: the token in the message", base)
		}
	}
}

// TestAdminNotFoundSaysWhatWasNotFound: the admin API answers 404 with "no such
// resource" for whatever it did not find, and `amtsbote admin` printed just that:
// the person on call could not tell a mistyped id from a wrong gateway, and
// `enable` on a channel that was never disabled (docs/operations.md: 404, nothing
// to enable) read like a wrong office. Each verb now names what it looked for.
func TestAdminNotFoundSaysWhatWasNotFound(t *testing.T) {
	g, _ := gatewaytest.Start(t, func(c *config.Config) {
		c.AdminToken = "admin-token-of-the-test"
	})
	t.Setenv("AMTSBOTE_CONFIG", "")
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "admin-token-of-the-test")
	const id = "01a24d4d-0000-7000-8000-000000000000"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"show", id}, "no submission " + id + " on this gateway"},
		{[]string{"erase", "-operator", "m.meier", id}, "no submission " + id + " on this gateway"},
		{[]string{"find", "amt24", "no-such-message"}, `no package of "amt24" with NachrichtID "no-such-message" on this gateway`},
		{[]string{"enable", "dresden-allgemeine-verwaltung", "webhook"}, "nothing to enable"},
	} {
		var out, errb bytes.Buffer
		rc := runAdmin(context.Background(), append([]string{"-url", g.URL(), "-data", t.TempDir()}, tc.args...), &out, &errb)
		if rc != 1 || !strings.Contains(errb.String(), tc.want) || !strings.Contains(errb.String(), "404") {
			t.Errorf("admin %q: rc %d, want 1 and %q\n%s%s", tc.args, rc, tc.want, out.String(), errb.String())
		}
	}
}
