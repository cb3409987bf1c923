package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// TestEraseOfAForwardedCaseNamesThePeer: a case forwarded to the gateway of
// another state is erased here only — the peer has the package and its own
// record, and its operator erases it there. The erasure's answer (checked
// against the contract by this package's TestMain) names that gateway and the
// case's id there, for the request to its operator; it named neither, and the
// operator had to look both up in the case's record.
func TestEraseOfAForwardedCaseNamesThePeer(t *testing.T) {
	sn, _ := snAndBy(t)
	id := sn.submit(t, fedMuenchenARS)
	s := sn.waitState(t, id, submission.StateDelivered)
	if s.Forward == nil || s.Forward.PeerSubmissionID == "" {
		t.Fatalf("the case was not forwarded: %+v", s.Forward)
	}
	dc, err := LoadDevCredentials(sn.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, sn.url()+wire.AdminSubmissionPath(id)+"/erase",
		strings.NewReader(`{"operator": "m.meier", "note": "Löschantrag"}`))
	req.Header.Set("Authorization", "Bearer "+dc.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		ForwardedTo *struct{ Gateway, SubmissionID string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("erase: %d %v", resp.StatusCode, err)
	}
	if f := v.ForwardedTo; f == nil || f.Gateway != s.Forward.Peer || f.SubmissionID != s.Forward.PeerSubmissionID {
		t.Fatalf("forwardedTo %+v, want gateway %s and its submission %s", f, s.Forward.Peer, s.Forward.PeerSubmissionID)
	}
}
