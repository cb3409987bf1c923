package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAdminEraseSaysWhatBecameOfTheCaseFolder: `amtsbote admin erase` prints
// what the erasure did to the case folder in the office's transfer folder, and
// exits 1 when it could not be withdrawn (the office's share did not answer):
// the bytes are gone from the gateway, but a copy may still wait in the share
// until the gateway's asking again reaches it, so a script must not take the
// erasure for done.
func TestAdminEraseSaysWhatBecameOfTheCaseFolder(t *testing.T) {
	answers := map[string]string{
		"removed": `{"id": "removed", "state": "handed_over", "bytesRemovedAt": "2026-12-07T10:00:00Z", "alreadyRemoved": false, "blobsDeleted": 2, "blobsLeft": 0,
			"withdrawals": [{"channel": "transfer", "outcome": "removed", "reference": "20261207-removed"}]}`,
		"taken": `{"id": "taken", "state": "delivered", "bytesRemovedAt": "2026-12-07T10:00:00Z", "alreadyRemoved": false, "blobsDeleted": 2, "blobsLeft": 0,
			"withdrawals": [{"channel": "transfer", "outcome": "taken", "reference": "20261207-taken"}]}`,
		"hung": `{"id": "hung", "state": "handed_over", "bytesRemovedAt": "2026-12-07T10:00:00Z", "alreadyRemoved": true, "blobsDeleted": 0, "blobsLeft": 0,
			"withdrawals": [{"channel": "transfer", "outcome": "unreachable", "detail": "the channel did not answer the withdrawal in time", "askedAgain": true}]}`,
		"unconfigured": `{"id": "unconfigured", "state": "delivered", "bytesRemovedAt": "2026-12-07T10:00:00Z", "alreadyRemoved": false, "blobsDeleted": 1, "blobsLeft": 0,
			"withdrawals": [{"channel": "transfer", "outcome": "unreachable", "detail": "broker: the channel is no longer configured for the office"}]}`,
		"forwarded": `{"id": "forwarded", "state": "delivered", "bytesRemovedAt": "2026-12-07T10:00:00Z", "alreadyRemoved": false, "blobsDeleted": 1, "blobsLeft": 0,
			"forwardedTo": {"gateway": "amtsbote-by", "submissionId": "01a2-by"}}`,
	}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/admin/submissions/"), "/erase")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answers[id]))
	}))
	defer gw.Close()
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "token")
	erase := func(id string) (int, string, string) {
		var out, errb bytes.Buffer
		rc := runAdmin(context.Background(), []string{"-url", gw.URL, "-data", t.TempDir(), "erase", "-operator", "Frau Weber", id}, &out, &errb)
		return rc, out.String(), errb.String()
	}
	if rc, out, errs := erase("removed"); rc != 0 || !strings.Contains(out, "case folder 20261207-removed removed from channel transfer before the office took it") {
		t.Errorf("removed: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := erase("taken"); rc != 0 || !strings.Contains(out, "the office had taken case folder 20261207-taken") {
		t.Errorf("taken: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := erase("hung"); rc != 1 || !strings.Contains(out, "NOT withdrawn: the channel did not answer") ||
		!strings.Contains(out, "the gateway asks the share again until it answers") || !strings.Contains(errs, "the same erase again asks at once") {
		t.Errorf("unreachable: rc %d\n%s%s", rc, out, errs)
	}
	// A channel no longer configured: the gateway cannot ask again, and the
	// line must not promise it.
	if rc, out, errs := erase("unconfigured"); rc != 1 || !strings.Contains(out, "the office's IT has to take it out of the share") ||
		strings.Contains(out, "asks the share again") {
		t.Errorf("unconfigured: rc %d\n%s%s", rc, out, errs)
	}
	// A case forwarded to another state's gateway is erased here only: the
	// line names that gateway and the case's id there.
	if rc, out, errs := erase("forwarded"); rc != 0 ||
		!strings.Contains(out, "forwarded was forwarded to gateway amtsbote-by: this erasure does not reach it there; ask that gateway's operator to erase its submission 01a2-by") {
		t.Errorf("forwarded: rc %d\n%s%s", rc, out, errs)
	}
}

// TestAdminShowSaysAWithdrawalIsOwed: `amtsbote admin show` of a case whose
// copy in an office's share the gateway still has to withdraw says so in its
// table, not only with -json: the erasure is not complete until then.
func TestAdminShowSaysAWithdrawalIsOwed(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		owed := ""
		if strings.HasSuffix(r.URL.Path, "/owes") {
			owed = `, "withdrawalsOwed": ["transfer"]`
		}
		_, _ = w.Write([]byte(`{"submission": {"id": "x", "state": "handed_over", "officeId": "o", "targets": [{"channel": "transfer"}], "receivedAt": "2026-12-07T10:00:00Z"` + owed + `}, "events": []}`))
	}))
	defer gw.Close()
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "token")
	show := func(id string) string {
		var out, errb bytes.Buffer
		if rc := runAdmin(context.Background(), []string{"-url", gw.URL, "-data", t.TempDir(), "show", id}, &out, &errb); rc != 0 {
			t.Fatalf("show %s: rc %d\n%s%s", id, rc, out.String(), errb.String())
		}
		return out.String()
	}
	if out := show("owes"); !strings.Contains(out, "withdrawal owed") || !strings.Contains(out, "channel transfer: a copy may still wait for the office") {
		t.Errorf("show of a case owing a withdrawal:\n%s", out)
	}
	if out := show("settled"); strings.Contains(out, "withdrawal owed") {
		t.Errorf("show of a case owing none:\n%s", out)
	}
}
