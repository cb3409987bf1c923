package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeysInitReceiptKey: `keys init` makes an ECDSA receipt key by default and
// RSA-3072 with -receipt-key rsa, never replaces an existing key, and says so with
// a non-zero exit when asked for another type than the one on disk.
func TestKeysInitReceiptKey(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		rc := runKeys(context.Background(), args, &out, &errb)
		return rc, out.String(), errb.String()
	}
	ecDir, rsaDir := t.TempDir(), t.TempDir()

	if rc, out, errs := run("init", "-data", ecDir); rc != 0 || !strings.Contains(out, "(created)") || !strings.Contains(out, "ECDSA P-256") {
		t.Fatalf("default: rc %d\n%s%s", rc, out, errs)
	}
	if rc, out, errs := run("init", "-data", rsaDir, "-receipt-key", "rsa"); rc != 0 || !strings.Contains(out, "RSA-3072") {
		t.Fatalf("-receipt-key rsa: rc %d\n%s%s", rc, out, errs)
	}
	keyFile := filepath.Join(ecDir, "pki", "gateway-key.pem")
	before, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	// Idempotent without the flag and with the matching type.
	for _, args := range [][]string{{"init", "-data", ecDir}, {"init", "-data", ecDir, "-receipt-key", "ecdsa"}} {
		if rc, out, errs := run(args...); rc != 0 || !strings.Contains(out, "(existing)") {
			t.Fatalf("%v: rc %d\n%s%s", args, rc, out, errs)
		}
	}
	if rc, _, errs := run("init", "-data", ecDir, "-receipt-key", "rsa"); rc != 1 || !strings.Contains(errs, "kept as it is") {
		t.Fatalf("rsa over an existing ECDSA key: rc %d, %s", rc, errs)
	}
	after, err := os.ReadFile(keyFile)
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("the existing key changed (%v)", err)
	}
	if rc, _, errs := run("init", "-data", t.TempDir(), "-receipt-key", "dsa"); rc != 2 || !strings.Contains(errs, "dsa") {
		t.Fatalf("unknown type: rc %d, %s", rc, errs)
	}
}
