package xta

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEarlyRefusalReachesCurlOverHTTP2: a caller whose certificate is not
// registered (an office that rotated before the operator pinned the new one) is
// refused before its body is read, with Connection: close so that net/http does
// not wait for the body. Over HTTP/2 that header made Go's server shut the whole
// connection down while the client still uploaded: curl (libnghttp2) got HTTP 400
// with no body instead of the PermissionDeniedException, and reported a broken
// transfer (an audit, 2026-12-05; Go's own client happened to cope). curl over
// both protocols, with a 5 MiB sendMessage.
func TestEarlyRefusalReachesCurlOverHTTP2(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is not installed (.ci/run installs it): this test needs an HTTP/2 stack other than Go's")
	}
	e := startEnv(t, nil)
	srv := httptest.NewUnstartedServer(e.xta)
	srv.EnableHTTP2 = true
	srv.TLS = e.pki.serverTLS()
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	c := e.pki.clients["stranger"]
	kder, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	certF, keyF, bodyF := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "body.xml")
	head := string(soapUIRequest(xtaA, "", `<ns:ContentContainer><ns:Message id="m">`))
	for f, b := range map[string][]byte{
		certF: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}),
		keyF:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		bodyF: []byte(head + strings.Repeat("QUFB", (5<<20)/4) + `</ns:Message></ns:ContentContainer></soap:Body></soap:Envelope>`),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, proto := range []string{"--http1.1", "--http2"} {
		out, err := exec.Command(curl, "-sS", "-k", proto, "--cert", certF, "--key", keyF,
			"-H", "Content-Type: "+actionCT(portSender, "sendMessage"), "--data-binary", "@"+bodyF,
			"-w", "\nHTTP %{http_version} %{http_code}", srv.URL+PathSender).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("PermissionDeniedException")) {
			t.Errorf("curl %s: the caller did not get the PermissionDeniedException (curl: %v):\n%.600s", proto, err, out)
		}
	}
}
