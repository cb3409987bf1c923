package outbound

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSawLeavesOtherErrorsToTheCaller: only a certificate that does not verify
// is this package's to warn about; a refused connection, a timeout or a reset is
// an ordinary failed attempt the caller logs and retries. Warned about here, every
// unreachable office would raise a WARN naming tls.outbound_ca_file, a false lead.
func TestSawLeavesOtherErrorsToTheCaller(t *testing.T) {
	var logs syncBuf
	c, err := Load("", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, err := range []error{refused, errors.New("EOF"), os.ErrDeadlineExceeded} {
		c.Saw("webhook", "fv.example:443", err)
	}
	if out := logs.String(); out != "" {
		t.Fatalf("warned about errors that are no certificate failure:\n%s", out)
	}
}

// TestLoadNamesTheWrongBlock: a CA file holding a key (a common mix-up of the
// files of a certificate) is refused with the block's type named, so the
// operator sees which file was meant, not a parse error of "certificate 1".
func TestLoadNamesTheWrongBlock(t *testing.T) {
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, []byte("-----BEGIN PRIVATE KEY-----\nAQID\n-----END PRIVATE KEY-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(f, nil)
	if err == nil || !strings.Contains(err.Error(), "PRIVATE KEY block") {
		t.Fatalf("Load of a key file: %v, want an error naming the PRIVATE KEY block", err)
	}
}
