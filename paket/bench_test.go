package paket

import (
	"bytes"
	"errors"
	"testing"
)

func benchInputs() map[string][]byte {
	one := ExampleWith(testLeika, testMsgID, testTime)
	one.Anlagen = []Anlage{NewAnlage("gross", "gross.bin", "application/octet-stream", bytes.Repeat([]byte{0x5a}, 20<<20))}
	return map[string][]byte{
		"10KB-120el":       Big(120, 1).Marshal(),
		"5000el-100att":    Big(5000, 100).Marshal(),
		"20MiB-attachment": one.Marshal(),
		"150000-wide-form": wideForm(150_000),
	}
}

func BenchmarkScan(b *testing.B) {
	for name, raw := range benchInputs() {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := Scan(raw, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScanStd is the encoding/xml oracle, for comparison.
func BenchmarkScanStd(b *testing.B) {
	for name, raw := range benchInputs() {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := scanStd(raw, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParse measures Parse alone on an already built tree (as after signature
// verification), attachment decoding and hashing included.
func BenchmarkParse(b *testing.B) {
	for name, raw := range benchInputs() {
		b.Run(name, func(b *testing.B) {
			doc, err := ReadTree(raw, Limits{})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				// Parse takes the tree (it moves the form out): each round gets a copy.
				if _, err := Parse(doc.Root().Copy(), Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadUnverified is the whole path Scan + tree + Parse.
func BenchmarkReadUnverified(b *testing.B) {
	for name, raw := range benchInputs() {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := ReadUnverified(raw, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestReadTree(t *testing.T) {
	raw := ExampleWith(testLeika, testMsgID, testTime).Marshal()
	p, err := ReadUnverified(raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Kopf.NachrichtID != testMsgID {
		t.Fatal(p.Kopf.NachrichtID)
	}
	for _, bad := range [][]byte{nil, []byte("<x"), []byte(`<!DOCTYPE x><x/>`)} {
		if _, err := ReadTree(bad, Limits{}); !errors.Is(err, ErrMalformed) {
			t.Errorf("ReadTree(%q) = %v", bad, err)
		}
	}
	if _, err := ReadTree(raw, Limits{MaxBytes: 10}); !errors.Is(err, ErrLimit) {
		t.Errorf("limit: %v", err)
	}
}
