package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/api/contracttest"
	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/paket"
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
	rootXML = mustSign(t, f, p)
	parts := make([]mpPart, 0, len(c.parts))
	for _, part := range c.parts {
		if part.name == "root" {
			parts = append(parts, mpPart{ctype: "application/xml", cid: "<root@fuzz.example>", body: rootXML})
			continue
		}
		mp := mpPart{ctype: "application/octet-stream", cid: part.cid, cte: part.cte, body: part.body}
		if part.noCtype {
			mp.ctype = ""
		}
		parts = append(parts, mp)
	}
	ctype, body = mpBody(t, parts)
	if c.cutAt != 0 {
		// Cut before the closing delimiter: some part (or the root) never ends.
		closing := bytes.LastIndex(body, []byte("\r\n--"))
		body = body[:int(c.cutAt)*closing/65536]
	} else {
		body = append(body, c.epilog...)
	}
	return ctype, body, rootXML
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

// fuzzRoutes are the API's operations as FuzzAPIContract calls them: {id} and
// {a} are filled from the input (or with a real submission and attachment).
var fuzzRoutes = []struct{ method, path string }{
	{"GET", "/v1/submissions/{id}"},
	{"GET", "/v1/submissions/{id}/receipts/{a}"},
	{"GET", "/v1/submissions/{id}/replies/{a}"},
	{"GET", "/v1/office/submissions"},
	{"GET", "/v1/office/submissions/{id}"},
	{"GET", "/v1/office/submissions/{id}/package"},
	{"GET", "/v1/office/submissions/{id}/attachments/{a}"},
	{"POST", "/v1/office/submissions/{id}/accept"},
	{"POST", "/v1/office/submissions/{id}/reject"},
	{"GET", "/v1/office/submissions/{id}/receipts/{a}"},
	{"GET", "/v1/admin/submissions"},
	{"GET", "/v1/admin/submissions/{id}"},
	{"POST", "/v1/admin/submissions/{id}/redeliver"},
	{"GET", "/v1/admin/dead-letters"},
	{"POST", "/v1/admin/dead-letters/replay"},
	{"GET", "/v1/admin/endpoints"},
	{"POST", "/v1/admin/endpoints/{id}/{a}/enable"},
	{"POST", "/v1/submissions"},
	{"GET", "/v1/admin/offices"}, // after the others: the corpus names routes by index
	{"POST", "/v1/office/submissions/{id}/replies"},
	{"GET", "/v1/office/submissions/{id}/replies/{a}"},
	// The directory's operations (a portal's place and service pickers), in the
	// contract since 2026-12-07: odd queries and ids must not reach an answer it
	// does not declare either.
	{"GET", "/v1/places"},
	{"GET", "/v1/services"},
	{"GET", "/v1/services/{a}"},
	{"GET", "/v1/offices/{a}"},
	{"GET", "/v1/resolve"},
}

// FuzzAPIContract: any operation of the API, with any path values, query, body,
// token and Range header, is answered below 500; an error is a problem of a
// documented type; and whatever the answer, api/openapi.yaml declares its status
// and its body matches the schema, so odd input cannot reach an answer the
// published contract does not know.
func FuzzAPIContract(f *testing.F) {
	fx := start(f)
	router := contractRouter(f)
	res, err := fx.portal.SubmitRaw(context.Background(), mustSign(f, fx, fx.example()))
	if err != nil || res.Status != 201 {
		f.Fatalf("setup submission: %v %+v", err, res)
	}
	realID, realAID := res.SubmissionID, fx.example().Anlagen[0].ID
	tokens := []string{"", portalToken, officeToken, otherToken, adminToken, "garbage"}
	f.Add(uint8(0), "", "", "", []byte{}, uint8(1), "")
	f.Add(uint8(1), "", "eingang", "", []byte{}, uint8(1), "")
	f.Add(uint8(3), "", "", "limit=10&cursor=x", []byte{}, uint8(2), "")
	f.Add(uint8(3), "", "", "since=2026-13-01&state=%ff", []byte{}, uint8(2), "")
	f.Add(uint8(6), "", "", "", []byte{}, uint8(2), "bytes=0-9")
	f.Add(uint8(6), "", "", "", []byte{}, uint8(2), "bytes=9-0,5-")
	f.Add(uint8(7), "", "", "", []byte(`{}`), uint8(2), "")
	f.Add(uint8(8), "", "", "", []byte(`{"reason":"x"}`), uint8(3), "")
	f.Add(uint8(10), "", "", "state=accepted&limit=-1", []byte{}, uint8(4), "")
	f.Add(uint8(13), "", "", "from=2026-01-01T00:00:00Z&to=x", []byte{}, uint8(4), "")
	f.Add(uint8(14), "", "", "", []byte(`{"ids":["a"],"from":"x"}`), uint8(4), "")
	f.Add(uint8(16), "leipzig-ordnungsamt", "webhook", "", []byte{}, uint8(4), "")
	f.Add(uint8(17), "", "", "", []byte("<x/>"), uint8(0), "")
	f.Add(uint8(19), "", "", "kind=Bescheid", []byte("Bescheid"), uint8(2), "")
	f.Add(uint8(19), "", "", "kind=%07", []byte{}, uint8(1), "")
	f.Add(uint8(20), "", "r-1", "", []byte{}, uint8(2), "")
	f.Add(uint8(21), "", "", "q=01877%20Bischofswerda&limit=3", []byte{}, uint8(0), "")
	f.Add(uint8(21), "", "", "q=&limit=501", []byte{}, uint8(0), "")
	f.Add(uint8(22), "", "", "q=perso&q=x", []byte{}, uint8(0), "")
	f.Add(uint8(23), "", "99999999999999", "", []byte{}, uint8(0), "")
	f.Add(uint8(23), "", "9905", "", []byte{}, uint8(0), "")
	f.Add(uint8(24), "", "dresden-allgemeine-verwaltung", "", []byte{}, uint8(0), "")
	f.Add(uint8(25), "", "", "service=Sterbeurkunde&place=Frankfurt", []byte{}, uint8(0), "")
	f.Add(uint8(25), "", "", "leikaKey=99050012104000&place=Landkreis%20Bautzen", []byte{}, uint8(0), "")
	allowed := map[string]bool{}
	for _, t := range problem.Types() {
		allowed[t] = true
	}
	f.Fuzz(func(t *testing.T, route uint8, id, a, query string, body []byte, tok uint8, rng string) {
		op := fuzzRoutes[int(route)%len(fuzzRoutes)]
		if id == "" {
			id = realID
		}
		if a == "" {
			a = realAID
		}
		path := strings.NewReplacer("{id}", url.PathEscape(id), "{a}", url.PathEscape(a)).Replace(op.path)
		req, err := http.NewRequest(op.method, fx.g.URL()+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		if strings.IndexFunc(query, func(r rune) bool { return r <= 0x20 || r > 0x7e || r == '#' }) >= 0 {
			return // not a request target a client can send (net/http's own 400 answers it)
		}
		req.URL.RawQuery = query
		if op.method == "POST" {
			req.Header.Set("Content-Type", []string{"application/json", "application/xml", "text/plain"}[int(tok)%3])
		}
		if tk := tokens[int(tok)%len(tokens)]; tk != "" {
			req.Header.Set("Authorization", "Bearer "+tk)
		}
		if rng != "" {
			if strings.IndexFunc(rng, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
				return // not a header value a client can send
			}
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s?%s: %d %s", op.method, path, query, resp.StatusCode, b)
		}
		if resp.StatusCode >= 400 {
			if p := problemOf(t, resp, b); !allowed[p.Type] {
				t.Fatalf("%s %s: undocumented problem type %q", op.method, path, p.Type)
			}
		}
		if _, _, err := router.FindRoute(req); err != nil {
			return // a path the contract does not have (an id with a slash, say): the problem above is the check
		}
		if err := contracttest.Load(t).Check(req, resp.StatusCode, resp.Header, b); err != nil {
			t.Fatalf("%s %s?%s (token %d): the answer breaks the contract: %v\n%s", op.method, path, query, tok, err, b)
		}
	})
}

func mustSign(t testing.TB, f *fixture, p *paket.Paket) []byte {
	t.Helper()
	b, err := f.portal.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
