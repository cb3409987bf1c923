package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/internal/testenv"
)

// These tests let third-party code judge our headers: the Standard Webhooks reference
// library (npm standardwebhooks) and Node's own crypto for FIT-Connect's MAC. They
// fail, never skip, when node or the npm module is missing: CI must install them
// (tools/node: npm ci).

func nodeBinary(t *testing.T) string {
	t.Helper()
	return testenv.Tool(t, "node", "install Node.js 20+ and run npm ci in tools/node")
}

// captured sends a real delivery through the adapter to a loopback office and
// returns the request exactly as the office received it.
func captured(t *testing.T, targetSecret string) capturedRequest {
	t.Helper()
	o := newOfficeWithSecret(t, adaptertest.ModeAccept, targetSecret)
	a := newAdapter(t, Options{})
	if _, err := a.Deliver(t.Context(), adaptertest.NewDelivery(o.Target())); err != nil {
		t.Fatal(err)
	}
	reqs := o.requests()
	if len(reqs) != 1 {
		t.Fatalf("office saw %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

// runNode runs a tools/node script on the request; it returns stdout and whether the
// script accepted (exit 0). Exit codes other than 0 and 1 fail the test.
func runNode(t *testing.T, script, secret string, r capturedRequest) (string, bool) {
	t.Helper()
	node := nodeBinary(t)
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	hdr := map[string]string{}
	for k := range r.header {
		hdr[strings.ToLower(k)] = r.header.Get(k)
	}
	hj, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"secret": []byte(secret), "headers.json": hj, "body": r.body}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(node, filepath.Join("tools", "node", script),
		"--secret-file", filepath.Join(dir, "secret"),
		"--headers-file", filepath.Join(dir, "headers.json"),
		"--body-file", filepath.Join(dir, "body"))
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), true
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return stdout.String(), false
	default:
		t.Fatalf("node %s: %v\nstdout: %s\nstderr: %s", script, err, stdout.String(), stderr.String())
		return "", false
	}
}

func TestInteropStandardWebhooksLibraryVerifiesOurRequest(t *testing.T) {
	secret := NewSecret()
	r := captured(t, secret)
	out, ok := runNode(t, "standardwebhooks-verify.js", secret, r)
	if !ok {
		t.Fatalf("the standardwebhooks reference library rejected our request: %s", out)
	}
	if !strings.Contains(out, "webhook-id="+r.header.Get(HeaderWebhookID)) || !strings.Contains(out, TypeNewSubmissions) {
		t.Errorf("unexpected verifier output: %s", out)
	}

	// The verifier must also be able to say no, or the pass above means nothing.
	tampered := capturedRequest{header: r.header, body: bytes.Replace(r.body, []byte(`"attempt":1`), []byte(`"attempt":2`), 1)}
	if bytes.Equal(tampered.body, r.body) {
		t.Fatal("tampering did not change the body")
	}
	if out, ok := runNode(t, "standardwebhooks-verify.js", secret, tampered); ok {
		t.Errorf("the reference library accepted a tampered body: %s", out)
	}
	if out, ok := runNode(t, "standardwebhooks-verify.js", NewSecret(), r); ok {
		t.Errorf("the reference library accepted the wrong secret: %s", out)
	}
}

func TestInteropStandardWebhooksRotation(t *testing.T) {
	oldS, newS := NewSecret(), NewSecret()
	r := captured(t, newS+" "+oldS)
	for name, s := range map[string]string{"old": oldS, "new": newS} {
		if out, ok := runNode(t, "standardwebhooks-verify.js", s, r); !ok {
			t.Errorf("receiver with the %s secret rejected a request signed during rotation: %s", name, out)
		}
	}
	// FIT-Connect's single MAC is keyed with the old secret, which a FIT-Connect
	// receiver holds until the gateway drops it: adding the new one breaks nobody.
	if out, ok := runNode(t, "standardwebhooks-fitconnect.js", oldS, r); !ok {
		t.Errorf("a FIT-Connect check with the old secret rejected a request signed during rotation: %s", out)
	}
}

func TestInteropFITConnectMACMatchesNodeCrypto(t *testing.T) {
	secret := NewSecret()
	r := captured(t, secret)
	out, ok := runNode(t, "standardwebhooks-fitconnect.js", secret, r)
	if got, want := strings.TrimSpace(out), r.header.Get(HeaderCallbackAuth); got != want || !ok {
		t.Fatalf("node computed callback-authentication %q (match=%v), we sent %q", got, ok, want)
	}
	tampered := capturedRequest{header: r.header, body: append(bytes.Clone(r.body), ' ')}
	if _, ok := runNode(t, "standardwebhooks-fitconnect.js", secret, tampered); ok {
		t.Error("node's check accepted a tampered body")
	}
}
