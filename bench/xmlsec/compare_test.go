//go:build xmlsec

package xmlsec

import (
	"bytes"
	"fmt"
	"runtime"
	"sort"
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
// the ratio (ours / libxmlsec1; below 1.5 is the goal). Both are warmed up, then
// measured in three alternating rounds; the median round counts, so a load spike
// from other processes on a shared machine does not decide the result.
func TestCompare(t *testing.T) {
	f := setup(t)
	elements := bytes.Count(f.doc, []byte("</"))
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	oursOnce := func() {
		if _, err := f.ours.Verify(f.doc); err != nil {
			t.Fatal(err)
		}
	}
	libOnce := func() {
		if err := f.c.Verify(f.doc); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 200; i++ {
		oursOnce()
		libOnce()
	}
	measure := func(fn func()) float64 {
		r := testing.Benchmark(func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				fn()
			}
		})
		return float64(r.NsPerOp())
	}
	var o, l []float64
	for round := 0; round < 3; round++ {
		o = append(o, measure(oursOnce))
		l = append(l, measure(libOnce))
	}
	sort.Float64s(o)
	sort.Float64s(l)
	om, lm := o[1], l[1]
	msg := fmt.Sprintf("document: %d bytes, %d elements (median of 3 rounds, one core)\namtsbote verify:   %8.0f µs/op  %6.0f/s per core  (rounds %.0f/%.0f/%.0f µs)\nlibxmlsec1 verify: %8.0f µs/op  %6.0f/s per core  (rounds %.0f/%.0f/%.0f µs)\nratio amtsbote/libxmlsec1: %.2f",
		len(f.doc), elements, om/1e3, 1e9/om, o[0]/1e3, o[1]/1e3, o[2]/1e3, lm/1e3, 1e9/lm, l[0]/1e3, l[1]/1e3, l[2]/1e3, om/lm)
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
