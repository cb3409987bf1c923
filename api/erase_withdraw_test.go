package api_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/wire"
)

// The office of the erasure's withdrawal test: it takes its cases from a
// transfer folder.
const (
	transferOffice  = "sn-ordner-amt"
	transferService = "99123456789039"
)

// transferCase starts a gateway whose office takes its cases from a transfer
// folder (share) and submits one case that is handed over there.
func transferCase(t *testing.T) (f *replyFixture, share, id string) {
	t.Helper()
	share = filepath.Join(t.TempDir(), "share")
	if err := os.Mkdir(share, 0o750); err != nil {
		t.Fatal(err)
	}
	dirFile := filepath.Join(t.TempDir(), "ordner.yaml")
	if err := os.WriteFile(dirFile, []byte(`services:
  - {key: "`+transferService+`", name: "Ordnertest", quelle: "test"}
offices:
  - id: `+transferOffice+`
    name: "Amt mit Übergabeordner"
    kanaele: [{kind: transfer, level: 2}, {kind: mailbox, level: 1}]
responsibilities:
  - {leistung: "`+transferService+`", gebiet: "14", stelle: `+transferOffice+`}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startTakeoverGateway(t, func(c *config.Config) {
		c.Directory.Files = append(c.Directory.Files, dirFile)
		c.Offices[transferOffice] = config.OfficeClient{Channels: map[string]config.Channel{channel.Transfer: {Endpoint: share}}}
	})
	f = &replyFixture{takeoverGateway: g, pc: &portal.Client{BaseURL: g.g.URL(), Signer: g.pki.Portal.Signer, Token: portalToken}, t: t}
	id = submitHandedOver(t, g.g, f.pc, transferService)
	return f, share, id
}

// TestEraseOfAnUnmountedShareSaysTheGatewayAsksAgain: the office's share is
// not mounted when the case is erased. The answer says the case folder could
// not be withdrawn and that the gateway asks again (askedAgain), and the
// case's admin view owes the withdrawal (withdrawalsOwed); both are checked
// against the contract.
func TestEraseOfAnUnmountedShareSaysTheGatewayAsksAgain(t *testing.T) {
	f, share, id := transferCase(t)
	if err := os.Rename(share, share+"-unmounted"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(share, 0o750); err != nil { // the bare mount point
		t.Fatal(err)
	}
	a := f.call(http.MethodPost, wire.AdminSubmissionPath(id)+"/erase", adminToken, http.Header{"Content-Type": {"application/json"}},
		strings.NewReader(`{"operator": "m.meier"}`))
	if a.code != http.StatusOK {
		t.Fatalf("erase: %d %s", a.code, a.body)
	}
	var v struct {
		Withdrawals []struct {
			Outcome    string `json:"outcome"`
			Detail     string `json:"detail"`
			AskedAgain bool   `json:"askedAgain"`
		} `json:"withdrawals"`
	}
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Withdrawals) != 1 || v.Withdrawals[0].Outcome != "unreachable" || v.Withdrawals[0].Detail == "" || !v.Withdrawals[0].AskedAgain {
		t.Fatalf("erase with the share unmounted: %s, want unreachable, why, asked again", a.body)
	}
	show := f.call(http.MethodGet, wire.AdminSubmissionPath(id), adminToken, nil, nil)
	var sv struct {
		Submission struct {
			WithdrawalsOwed []string `json:"withdrawalsOwed"`
		} `json:"submission"`
	}
	if err := json.Unmarshal(show.body, &sv); show.code != http.StatusOK || err != nil ||
		len(sv.Submission.WithdrawalsOwed) != 1 || sv.Submission.WithdrawalsOwed[0] != channel.Transfer {
		t.Fatalf("admin view: %d %s (%v), want the withdrawal owed", show.code, show.body, err)
	}
}

// TestEraseAnswerSaysWhatBecameOfTheCaseFolder: the erasure of a case whose
// case folder waits in the office's transfer folder answers, beside the
// bytes, what it did to the folder (removed before the office took it), and a
// repeat says it was removed before; both answers are checked against the
// contract. The folder is gone from the share.
func TestEraseAnswerSaysWhatBecameOfTheCaseFolder(t *testing.T) {
	f, share, id := transferCase(t)
	folders := func() []string {
		ents, err := os.ReadDir(share)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") {
				out = append(out, e.Name())
			}
		}
		return out
	}
	before := folders()
	if len(before) != 1 {
		t.Fatalf("case folders in the share: %v, want one", before)
	}

	type withdrawal struct {
		Channel   string `json:"channel"`
		Outcome   string `json:"outcome"`
		Reference string `json:"reference"`
	}
	erase := func() (bool, []withdrawal) {
		t.Helper()
		a := f.call(http.MethodPost, wire.AdminSubmissionPath(id)+"/erase", adminToken, http.Header{"Content-Type": {"application/json"}},
			strings.NewReader(`{"operator": "m.meier", "note": "Löschantrag"}`))
		if a.code != http.StatusOK {
			t.Fatalf("erase: %d %s", a.code, a.body)
		}
		var v struct {
			AlreadyRemoved bool         `json:"alreadyRemoved"`
			Withdrawals    []withdrawal `json:"withdrawals"`
		}
		if err := json.Unmarshal(a.body, &v); err != nil {
			t.Fatal(err)
		}
		return v.AlreadyRemoved, v.Withdrawals
	}
	already, ws := erase()
	want := withdrawal{Channel: channel.Transfer, Outcome: "removed", Reference: before[0]}
	if already || len(ws) != 1 || ws[0] != want {
		t.Fatalf("erase: already %v, withdrawals %+v, want %+v", already, ws, want)
	}
	if got := folders(); len(got) != 0 {
		t.Errorf("case folders in the share after the erasure: %v", got)
	}
	already, ws = erase()
	if !already || len(ws) != 1 || ws[0].Outcome != "removedBefore" {
		t.Fatalf("erase again: already %v, withdrawals %+v, want removed before", already, ws)
	}
}
