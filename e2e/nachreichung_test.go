package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/wire"
)

// TestNachreichungOnTheBuiltBinary: the applicant's answer to a Rückfrage, on
// the built binary as an operator runs it. `amtsbote submit -bezug` sends a
// package that names the first one's NachrichtID; it reaches the case's office
// under the case's id, the office's system lists it by the case, `amtsbote
// admin show` names it, and the erasure of the case on request takes it with
// it. (That it goes to the case's office whatever the directory says of its
// own service is api.TestNachreichungReachesTheCasesOffice's.)
func TestNachreichungOnTheBuiltBinary(t *testing.T) {
	dir := t.TempDir()
	p := serve(t, dir, []string{"AMTSBOTE_LISTEN=127.0.0.1:0", "AMTSBOTE_LOG_LEVEL=warn"})
	dataDir := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	submit := func(args ...string) string {
		t.Helper()
		out, err := run(t, ctx, dir, append([]string{"submit", "-url", p.url, "-data", dataDir, "-place", "01067"}, args...)...)
		if err != nil || !strings.HasPrefix(out, "201 accepted") {
			t.Fatalf("submit %v: %v\n%s\n%s", args, err, out, p.stderr.String())
		}
		m := regexp.MustCompile(`submission: (\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no submission id in:\n%s", out)
		}
		return m[1]
	}
	const first = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
	caseID := submit("-service", "Gewerbe anmelden", "-message-id", first)
	follow := submit("-service", "Meldung von Mängeln im Stadt- oder Gemeindegebiet", "-bezug", first)

	dc, err := gateway.LoadDevCredentials(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, token string, v any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
	}
	officeToken := dc.Offices[gateway.DemoOfficeID].Token
	var l wire.OfficeList
	get(wire.OfficeSubmissionsPath+"?caseId="+caseID, officeToken, &l)
	if len(l.Submissions) != 1 || l.Submissions[0].ID != follow || l.Submissions[0].CaseID != caseID {
		t.Fatalf("the case's Nachreichungen as the office lists them: %+v, want %s with caseId %s", l.Submissions, follow, caseID)
	}

	out, err := run(t, ctx, dir, "admin", "-url", p.url, "-data", dataDir, "show", caseID)
	if err != nil || !regexp.MustCompile(`(?m)^nachreichungen +`+follow+`$`).MatchString(out) {
		t.Fatalf("admin show of the case: %v\n%s", err, out)
	}
	out, err = run(t, ctx, dir, "admin", "-url", p.url, "-data", dataDir, "erase", "-operator", "Datenschutz", caseID)
	if err != nil || !strings.Contains(out, caseID+" erased") || !strings.Contains(out, "Nachreichung "+follow+" erased") {
		t.Fatalf("admin erase of the case: %v\n%s", err, out)
	}
}
