package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/wire"
)

// TestFederationPeerRenamedSaysItsPackages: the operator of sn gives the peer
// by a new id (peers are read at start) while a package forwarded to by
// waits there. The restarted sn says, once, that the package forwarded to
// amtsbote-by is followed by nobody, naming the peer and the count, not the
// package (federation.TestPackagesOfAPeerNoLongerConfiguredAreSaid).
func TestFederationPeerRenamedSaysItsPackages(t *testing.T) {
	sn, by := newFedGW(t, "amtsbote-sn"), newFedGW(t, "amtsbote-by")
	trustEachOther(t, sn, by)
	sn.write(t, "peers:\n"+peerEntry("09", "Bayern", by), "", fedPeer{by, `["09"]`})
	// by's office has no endpoint that answers: the package waits there.
	by.write(t, byOverlay+"peers:\n"+peerEntry("14", "Sachsen", sn), officeYAML("muenchen-kvr", officeToken, "http://127.0.0.1:9/none"), fedPeer{sn, `["14"]`})
	by.start(t)
	sn.start(t)
	amt24 := portalClient(t, sn.data, sn.url)
	res, _ := submitAt(t, amt24, maengelKey, muenchenARS)
	if res.Status != 201 {
		t.Fatalf("submit: %d %+v", res.Status, res.Problem)
	}
	waitState(t, amt24, res.SubmissionID, wire.StateForwarded, 30*time.Second, sn.p, by.p)
	if err := sn.p.terminate(t, 30*time.Second); err != nil {
		t.Fatalf("sn stopped with %v", err)
	}
	cfgFile := filepath.Join(sn.dir, "amtsbote.yaml")
	cfg, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.Replace(string(cfg), "{id: amtsbote-by,", "{id: amtsbote-by-neu,", 1)
	if renamed == string(cfg) {
		t.Fatal("the peer's entry was not found in sn's configuration")
	}
	if err := os.WriteFile(cfgFile, []byte(renamed), 0o600); err != nil {
		t.Fatal(err)
	}
	sn.start(t)
	re := regexp.MustCompile(`packages forwarded to a peer gateway that is no longer configured are followed by nobody.* peer=amtsbote-by open=1 decided=0`)
	if !waitStderr(sn.p, re, 10*time.Second) {
		t.Fatalf("sn's start does not say the package forwarded to amtsbote-by:\n%s", sn.p.stderr.String())
	}
	for _, l := range strings.Split(sn.p.stderr.String(), "\n") {
		if re.MatchString(l) && strings.Contains(l, res.SubmissionID) {
			t.Errorf("the line names the package: %s", l)
		}
	}
}

// waitStderr waits up to timeout for a line of p's log (standard error) that re
// matches.
func waitStderr(p *proc, re *regexp.Regexp, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if re.MatchString(p.stderr.String()) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
