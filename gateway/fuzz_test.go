package gateway

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"mime/multipart"
	"net/textproto"
	"slices"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
)

// The attachments FuzzMultipart's packages may name by reference, with the limits
// it runs under: D is over the per-attachment limit, B and E together over the
// package's.
const (
	fuzzAttachmentLimit = 64 << 10
	fuzzPackageLimit    = 48 << 10
)

var fuzzContent = func() map[string][]byte {
	r := rand.New(rand.NewChaCha8([32]byte{'f', 'u', 'z', 'z'}))
	gen := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	return map[string][]byte{"A": gen(1000), "B": gen(40 << 10), "C": gen(300), "D": gen(70 << 10), "E": gen(20 << 10)}
}()

func fuzzCID(name string) string { return name + "@fuzz.example" }

// fuzzRoots are the packages a case may send: which attachments each names by
// reference, and whether a gateway must refuse it whatever the parts are.
var fuzzRoots = []struct {
	names   []string
	refused bool // over a limit, or two Anlagen naming the same part
}{
	{nil, false}, {[]string{"A"}, false}, {[]string{"A", "B"}, false}, {[]string{"A", "B", "C"}, false},
	{[]string{"C", "B"}, false}, {[]string{"A", "D"}, true}, {[]string{"A", "A"}, true}, {[]string{"B", "E"}, true},
}

// fuzzCase is what one fuzz input decodes to: a multipart/related request and
// whether it is exactly right (the root first, every named part once with its exact
// bytes under its Content-ID, nothing else, not cut off).
type fuzzCase struct {
	root    int
	parts   []fuzzPart
	cutAt   uint16 // 0: the body whole
	epilog  []byte
	correct bool
}

type fuzzPart struct {
	name      string // whose bytes (or "" for bytes from the input)
	body      []byte
	cid, cte  string
	noCtype   bool
	exactBody bool // body is name's content, unchanged
}

// decodeFuzzCase reads spec as: a root byte (package, root placed second), then two
// bytes per part (what content and how it is changed, which Content-ID, which
// transfer encoding). raw feeds parts made of the input's bytes and the epilogue.
func decodeFuzzCase(spec, raw []byte, cut uint16) fuzzCase {
	c := fuzzCase{cutAt: cut}
	if len(spec) == 0 {
		spec = []byte{0}
	}
	c.root = int(spec[0]) % len(fuzzRoots)
	rootSecond := spec[0]&0x80 != 0
	names := []string{"A", "B", "C", "D"}
	for i := 1; i+1 < len(spec) && len(c.parts) < 8; i += 2 {
		b0, b1 := spec[i], spec[i+1]
		var p fuzzPart
		switch sel := b0 & 7; {
		case sel < 4:
			p.name = names[sel]
			p.body, p.exactBody = fuzzContent[p.name], true
		case sel == 4: // one byte of A changed
			p.name, p.body = "A", slices.Clone(fuzzContent["A"])
			p.body[int(b1)%len(p.body)] ^= 0x20
		case sel == 5: // B cut short
			p.name = "B"
			p.body = fuzzContent["B"][:len(fuzzContent["B"])-1-int(b1)%100]
		case sel == 6: // A with bytes after it
			p.name = "A"
			p.body = append(slices.Clone(fuzzContent["A"]), bytes.Repeat([]byte{b1}, int(b1)%5+1)...)
		default: // bytes of the input
			n := min(int(b1), len(raw))
			p.body, raw = raw[:n], raw[n:]
		}
		switch (b0 >> 3) & 3 {
		case 0:
			if p.name != "" {
				p.cid = "<" + fuzzCID(p.name) + ">"
			} else {
				p.cid = "<raw@fuzz.example>"
			}
		case 1:
			p.cid = fuzzCID(names[int(b1)%4]) // bare: no angle brackets, no Content-ID
		case 2:
			p.cid = "" // none
		case 3:
			p.cid = "<" + fuzzCID(names[int(b1)%4]) + ">" // maybe another part's
		}
		p.cte = []string{"", "binary", "base64", "quoted-printable"}[(b0>>5)&3]
		p.noCtype = b0&0x80 != 0
		c.parts = append(c.parts, p)
	}
	c.epilog = raw[:min(len(raw), 4096)]

	want := fuzzRoots[c.root].names
	c.correct = !fuzzRoots[c.root].refused && cut == 0 && (!rootSecond || len(c.parts) == 0) && len(c.parts) == len(want)
	seen := map[string]bool{}
	for _, p := range c.parts {
		ok := p.exactBody && p.cid == "<"+fuzzCID(p.name)+">" && (p.cte == "" || p.cte == "binary") &&
			slices.Contains(want, p.name) && !seen[p.name]
		seen[p.name] = true
		c.correct = c.correct && ok
	}
	if rootSecond && len(c.parts) > 0 {
		c.parts = slices.Insert(c.parts, 1, fuzzPart{name: "root"})
	} else {
		c.parts = slices.Insert(c.parts, 0, fuzzPart{name: "root"})
	}
	return c
}

// body builds the request: the root part signed now (a fresh message ID, so a case
// is never a repeat of an earlier one), then the parts as decoded.
func (c fuzzCase) body(t *testing.T, f *fixture) (ctype string, body []byte, rootXML []byte) {
	p := f.example()
	for i, n := range fuzzRoots[c.root].names {
		a, _ := refAnlage(n, fuzzContent[n])
		a.ID = fmt.Sprintf("%s%d", n, i)
		a.Referenz = "cid:" + fuzzCID(n)
		p.Anlagen = append(p.Anlagen, a)
	}
	rootXML, err := f.pki.Portal.Signer.Sign(p.Element())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, part := range c.parts {
		h := textproto.MIMEHeader{}
		if part.name == "root" {
			h.Set("Content-Type", "application/xml")
			h.Set("Content-Id", "<root@fuzz.example>")
			part.body = rootXML
		} else {
			if !part.noCtype {
				h.Set("Content-Type", "application/octet-stream")
			}
			if part.cid != "" {
				h.Set("Content-Id", part.cid)
			}
			if part.cte != "" {
				h.Set("Content-Transfer-Encoding", part.cte)
			}
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(part.body)
	}
	closing := buf.Len()
	_ = mw.Close()
	body = buf.Bytes()
	if c.cutAt != 0 {
		// Cut before the closing delimiter: some part (or the root) never ends.
		body = body[:int(c.cutAt)*closing/65536]
	} else {
		body = append(body, c.epilog...)
	}
	return `multipart/related; type="application/xml"; boundary=` + mw.Boundary(), body, rootXML
}

// FuzzMultipart: whatever framing a portal sends around a signed package — parts
// in any order, Content-IDs right, bare, missing, repeated or another part's, bytes
// changed, cut or extended, transfer encodings, parts over a limit, the body cut
// off, an epilogue — the gateway answers 201 exactly when the request is right,
// and otherwise a problem of a documented type, never a 5xx. A refused request
// leaves no blob it created and no temporary file; an accepted one has every named
// attachment stored under its digest.
func FuzzMultipart(f *testing.F) {
	fx := start(f, func(c *config.Config) {
		c.Limits.MaxBodyBytes = 200 << 10
		c.Limits.MaxReferencedAttachmentBytes = fuzzAttachmentLimit
		c.Limits.MaxReferencedPackageBytes = fuzzPackageLimit
	})
	f.Add([]byte{0}, []byte{}, uint16(0))
	f.Add([]byte{1, 0, 0}, []byte{}, uint16(0))                       // A: right
	f.Add([]byte{3, 0, 0, 1, 0, 2, 0}, []byte("epilogue"), uint16(0)) // A B C: right, with an epilogue
	f.Add([]byte{4, 1, 0, 2, 0}, []byte{}, uint16(0))                 // C B sent as B C: right (order is free)
	f.Add([]byte{2, 0, 0, 5, 3}, []byte{}, uint16(0))                 // B cut short
	f.Add([]byte{2, 0, 0, 1, 0, 1, 0}, []byte{}, uint16(0))           // B twice
	f.Add([]byte{1, 0x40, 0}, []byte{}, uint16(0))                    // base64
	f.Add([]byte{1, 0x18, 1}, []byte{}, uint16(0))                    // another part's Content-ID
	f.Add([]byte{1, 7, 10}, bytes.Repeat([]byte("x"), 10), uint16(0)) // bytes of the input
	f.Add([]byte{0x81, 0, 0}, []byte{}, uint16(0))                    // root second
	f.Add([]byte{5, 0, 0, 3, 0}, []byte{}, uint16(0))                 // D over the limit
	f.Add([]byte{2, 0, 0, 1, 0}, []byte{}, uint16(40000))             // cut off
	allowed := map[string]bool{}
	for _, t := range problem.Types() {
		allowed[t] = true
	}
	f.Fuzz(func(t *testing.T, spec, raw []byte, cut uint16) {
		c := decodeFuzzCase(spec, raw, cut)
		ctype, body, _ := c.body(t, fx)
		before, _ := blobState(t, fx)
		resp, b := post(t, fx.g.URL(), ctype, body)
		after, tmp := blobState(t, fx)
		if len(tmp) != 0 {
			t.Fatalf("temporary files left: %v", tmp)
		}
		if c.correct {
			if resp.StatusCode != 201 {
				t.Fatalf("a right request answered %d: %s", resp.StatusCode, b)
			}
			for _, n := range fuzzRoots[c.root].names {
				if !after[sha256hex(fuzzContent[n])] {
					t.Fatalf("accepted, but attachment %s is not in the blob store", n)
				}
			}
			return
		}
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("a wrong request (%+v) answered %d: %s", c, resp.StatusCode, b)
		}
		if p := problemOf(t, resp, b); !allowed[p.Type] || p.Detail == "" {
			t.Fatalf("problem %+v: undocumented type or no detail", p)
		}
		for d := range after {
			if !before[d] {
				t.Fatalf("a refused request (%d) left blob %s", resp.StatusCode, d)
			}
		}
	})
}
