package gateway

import (
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/config"
)

// TestPartShorterThanItsSignedGroesse: Groesse is signed as much as SHA256 is. A
// part whose bytes are exactly what the signed digest names, but shorter than
// the signed Groesse, is refused as attachment-digest and leaves no blob — the
// record would otherwise state a size its bytes do not have (docs/problems.md,
// attachment-digest: "its length differs from the signed Groesse").
func TestPartShorterThanItsSignedGroesse(t *testing.T) {
	f := start(t, func(c *config.Config) { c.Limits.MaxBodyBytes = 200 << 10 })
	content := randomBytes(4 << 10)
	a, part := refAnlage("kurz", content)
	a.Groesse++ // the digest stays the one of content
	p := f.example()
	p.Anlagen = append(p.Anlagen, a)
	root, err := f.pki.Portal.Signer.Sign(p.Element())
	if err != nil {
		t.Fatal(err)
	}
	ctype, body := mpBody(t, []mpPart{{ctype: "application/xml", cid: "<root@portal.example>", body: root}, part})
	resp, b := post(t, f.g.URL(), ctype, body)
	if resp.StatusCode != 422 {
		t.Fatalf("status %d, want 422: %s", resp.StatusCode, b)
	}
	if pr := problemOf(t, resp, b); pr.Type != problem.TypeAttachmentDigest {
		t.Fatalf("problem %+v, want %s", pr, problem.TypeAttachmentDigest)
	}
	if digests, tmp := blobState(t, f); len(digests) != 0 || len(tmp) != 0 {
		t.Fatalf("a refused request left blobs %v and temporary files %v", digests, tmp)
	}
}
