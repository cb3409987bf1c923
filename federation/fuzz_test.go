package federation

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// FuzzParseWire: the three documents a peer sends are read only after their
// signature verified, but a trusted peer can still run a broken or hostile build.
// Whatever the verified root holds, ParseEnvelope, ParseQuery and ParseReport
// return a value or an error, never panic; and an envelope they accept builds
// again (Element) into a document that reads back the same, so what the receiver
// stores is what it would forward.
func FuzzParseWire(f *testing.F) {
	w := newWorld(f)
	env := w.envelope(f)
	envDoc, err := env.Sign(w.a.Signer)
	if err != nil {
		f.Fatal(err)
	}
	at := time.Now().UTC()
	q := &Query{From: w.a.Name, To: w.b.Name, At: at, Refs: []Ref{{"amt24", "m-1"}, {"amt24", "m-2"}}}
	qDoc, err := q.Sign(w.a.Signer)
	if err != nil {
		f.Fatal(err)
	}
	rp := &Report{From: w.b.Name, To: w.a.Name, At: at, Items: []Status{
		{Ref: Ref{"amt24", "m-1"}, State: "accepted", SubmissionID: "x", Receiver: "Stadt München", DeliveredAt: &at,
			Decision: &Decision{Outcome: "accepted", At: at, Actor: "office system", Reason: "ok"}},
		{Ref: Ref{"amt24", "m-2"}, State: StateUnknown},
	}}
	rpDoc, err := rp.Sign(w.b.Signer)
	if err != nil {
		f.Fatal(err)
	}
	for _, d := range []struct {
		doc   []byte
		trust *Trust
		from  string
	}{{envDoc, w.trustB, ""}, {qDoc, w.trustB, ""}, {rpDoc, w.trustA, w.b.Name}} {
		v, _, err := d.trust.Verify(d.doc, d.from)
		if err != nil {
			f.Fatal(err)
		}
		doc := etree.NewDocument()
		doc.SetRoot(v.Root.Copy())
		b, err := doc.WriteToBytes()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(b); err != nil || doc.Root() == nil {
			return
		}
		root := doc.Root()
		_, _ = ParseQuery(root)
		_, _ = ParseReport(root)
		e, err := ParseEnvelope(root)
		if err != nil {
			return
		}
		el, err := e.Element()
		if err != nil {
			t.Fatalf("an envelope ParseEnvelope accepted does not build again: %v", err)
		}
		again := etree.NewDocument()
		again.SetRoot(el)
		out, err := again.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		back := etree.NewDocument()
		if err := back.ReadFromBytes(out); err != nil {
			t.Fatalf("the rebuilt envelope is not XML: %v\n%s", err, out)
		}
		e2, err := ParseEnvelope(back.Root())
		if err != nil {
			t.Fatalf("the rebuilt envelope does not read back: %v\n%s", err, out)
		}
		if !sameEnvelope(e, e2) {
			t.Fatalf("read back differently:\n%+v\n%+v", e, e2)
		}
	})
}

func sameEnvelope(a, b *Envelope) bool {
	if !bytes.Equal(a.SenderCert.Raw, b.SenderCert.Raw) || !bytes.Equal(a.Package, b.Package) || !a.At.Equal(b.At) ||
		len(a.Chain) != len(b.Chain) {
		return false
	}
	for i := range a.Chain {
		if a.Chain[i].Gateway != b.Chain[i].Gateway || a.Chain[i].SubmissionID != b.Chain[i].SubmissionID || !a.Chain[i].At.Equal(b.Chain[i].At) {
			return false
		}
	}
	x, y := *a, *b
	x.SenderCert, y.SenderCert, x.Package, y.Package, x.Chain, y.Chain = nil, nil, nil, nil, nil, nil
	x.At, y.At = time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}
