package outbound

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// writeCA writes srv's certificate (httptest's own CA stands in for a state's
// private CA) as a PEM file.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "state-ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestPrivateCAServer: a server whose certificate comes from a private CA failed
// every call as "unknown authority", logged by the callers at INFO among ordinary
// retries, and no setting named the CA. With the CA file the call goes through;
// without it the failure is a WARN that names the setting, once per endpoint.
func TestPrivateCAServer(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()

	var logs syncBuf
	plain, err := Load("", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: plain.Transport("webhook")}
	for range 3 {
		if _, err := hc.Get(srv.URL); err == nil || !IsVerifyError(err) {
			t.Fatalf("the system's roots alone: %v, want a certificate verification error", err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN msg=\"outbound TLS: the server's certificate does not verify\""); n != 1 {
		t.Fatalf("%d warnings for three failed calls to one endpoint within a minute, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), Setting) || !strings.Contains(logs.String(), strings.TrimPrefix(srv.URL, "https://")) {
		t.Fatalf("the warning names neither the setting nor the endpoint: %s", logs.String())
	}

	withCA, err := Load(writeCA(t, srv), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: withCA.Transport("webhook")}).Get(srv.URL)
	if err != nil {
		t.Fatalf("with the CA in the file: %v", err)
	}
	resp.Body.Close()
	// The system's roots stay: the file adds to them.
	want, err := x509.SystemCertPool()
	if err != nil {
		t.Fatal(err)
	}
	want.AddCert(srv.Certificate())
	if !withCA.Roots().Equal(want) {
		t.Fatal("the roots are not the system's plus the file's")
	}
}

// TestLoadRefusesWrongFiles: a CA file that is missing, empty of certificates or
// holds a key is refused when loaded (at start), not found out by every call.
func TestLoadRefusesWrongFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for name, file := range map[string]string{
		"missing": filepath.Join(dir, "none.pem"),
		"no PEM":  write("text.pem", "not a certificate\n"),
		"a key":   write("key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}))),
		"garbage": write("bad.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}))),
	} {
		if c, err := Load(file, nil); err == nil {
			t.Errorf("%s: loaded (%v), want an error", name, c.Roots())
		}
	}
	if c, err := Load("", nil); err != nil || c.Roots() != nil {
		t.Errorf("no file: %v %v, want the system's roots (nil pool)", c.Roots(), err)
	}
	var none *Config
	if none.Roots() != nil || none.Watch(http.DefaultTransport, "x") != http.DefaultTransport {
		t.Error("the nil *Config is not the system's roots without warnings")
	}
}
