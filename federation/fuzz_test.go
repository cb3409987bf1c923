package federation

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/beevik/etree"
)

// FuzzParseWire: the documents a peer sends are read only after their
// signature verified, but a trusted peer can still run a broken or hostile build.
// Whatever the verified root holds, ParseEnvelope, ParseQuery, ParseReport and
// ParseReplyQuery return a value or an error, never panic; and an envelope they accept builds
// again (Element) into a document that reads back the same, so what the receiver
// stores is what it would forward.
func FuzzParseWire(f *testing.F) {
	w := newWorld(f)
	envDoc, qDoc, rpDoc := w.wireDocs(f)
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
		_, _ = ParseReplyQuery(root)
		_, _ = ParseChanges(root)
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

// FuzzReceiver: whatever reaches the peer endpoint — any path of it, any content
// type, any body, forwardings and status questions signed by an untrusted gateway
// or addressed to another one, and their mutations — is answered below 500 with a
// problem of a documented type. (A receiver without an intake pipeline: a document
// that got past trust and addressing would reach it and fail the test loudly.)
func FuzzReceiver(f *testing.F) {
	w := newWorld(f)
	h := &Receiver{Trust: w.trustB, Signer: w.b.Signer, MaxBytes: 256 << 10, Log: slog.New(slog.DiscardHandler)}
	untrusted := w.fromUntrusted(f)
	elsewhere := *w.envelope(f)
	elsewhere.To = "amtsbote-xx"
	for _, d := range []struct {
		e  Envelope
		by *signing.Signer
	}{{untrusted, w.pki.Untrusted.Signer}, {elsewhere, w.a.Signer}} {
		doc, err := d.e.Sign(d.by)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(0), ContentType, doc)
	}
	q := &Query{From: w.a.Name, To: "amtsbote-xx", At: time.Now(), Refs: []Ref{{"amt24", "m-1"}}}
	qDoc, err := q.Sign(w.a.Signer)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(1), ContentType, qDoc)
	f.Add(uint8(0), "multipart/related; boundary=x", []byte("--x\r\nContent-Type: application/xml\r\n\r\n<x/>\r\n--x--\r\n"))
	f.Add(uint8(2), "", []byte{})
	f.Add(uint8(3), "text/plain", []byte("x"))
	allowed := map[string]bool{}
	for _, t := range problem.Types() {
		allowed[t] = true
	}
	paths := []string{PathForward, PathStatus, PathNudge, PathSchema, PathPrefix + "/x"}
	f.Fuzz(func(t *testing.T, path uint8, ctype string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, paths[int(path)%len(paths)], bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s: %d %s", req.URL.Path, rec.Code, rec.Body.Bytes())
		}
		if rec.Code < 400 {
			if req.URL.Path != PathNudge {
				t.Fatalf("%s: %d without a trusted peer's document", req.URL.Path, rec.Code)
			}
			return
		}
		var p problem.Problem
		if rec.Header().Get("Content-Type") != problem.ContentType || json.Unmarshal(rec.Body.Bytes(), &p) != nil || !allowed[p.Type] {
			t.Fatalf("%s: %d %q %s: not a documented problem", req.URL.Path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes())
		}
	})
}
