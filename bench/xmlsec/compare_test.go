//go:build xmlsec

package xmlsec

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

type fixture struct {
	doc  []byte
	ours *signing.Verifier
	c    *Verifier
}

func setup(tb testing.TB) *fixture {
	tb.Helper()
	pki := signingtest.NewPKI(tb)
	// The same ~10 KB, ~120 element package as signing's BenchmarkVerify10KB.
	doc, err := pki.Portal.Signer.Sign(signingtest.BenchDocument())
	if err != nil {
		tb.Fatal(err)
	}
	c, err := New(signing.CertPEM(pki.CA))
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{doc: doc, ours: signing.NewVerifier(pki.Store, signing.VerifyOptions{}), c: c}
}

func TestLibxmlsecAgrees(t *testing.T) {
	f := setup(t)
	if err := f.c.Verify(f.doc); err != nil {
		t.Fatalf("libxmlsec1: %v", err)
	}
	bad := bytes.Replace(f.doc, []byte("Wert 7:"), []byte("Wert 8:"), 1)
	if err := f.c.Verify(bad); err == nil {
		t.Fatal("libxmlsec1 accepted a tampered document")
	}
}

// TestCompare measures both verifiers on one core in the same run and prints
// the ratio (ours / libxmlsec1; below 1.5 is the goal).
func TestCompare(t *testing.T) {
	f := setup(t)
	elements := bytes.Count(f.doc, []byte("</"))
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	ours := testing.Benchmark(func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := f.ours.Verify(f.doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	lib := testing.Benchmark(func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := f.c.Verify(f.doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	o, l := float64(ours.NsPerOp()), float64(lib.NsPerOp())
	msg := fmt.Sprintf("document: %d bytes, %d elements\namtsbote verify:   %8.0f µs/op  %6.0f/s per core\nlibxmlsec1 verify: %8.0f µs/op  %6.0f/s per core\nratio amtsbote/libxmlsec1: %.2f",
		len(f.doc), elements, o/1e3, 1e9/o, l/1e3, 1e9/l, o/l)
	t.Log("\n" + msg)
	fmt.Println(msg)
}

func BenchmarkVerifyLibxmlsec1(b *testing.B) {
	f := setup(b)
	b.SetBytes(int64(len(f.doc)))
	for i := 0; i < b.N; i++ {
		if err := f.c.Verify(f.doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAmtsbote(b *testing.B) {
	f := setup(b)
	b.SetBytes(int64(len(f.doc)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := f.ours.Verify(f.doc); err != nil {
			b.Fatal(err)
		}
	}
}
