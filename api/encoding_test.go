package api_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/wire"
)

// TestCompressedIntakeIsUnsupportedMedia: the gateway does not decode a content
// coding (the signature and digests are over the bytes as signed). A portal whose
// HTTP stack gzips its request bodies got 400 malformed-request, "no root
// element", for a package that was fine: it looked for a fault in its XML. It is
// 415 unsupported-media now, with Accept-Encoding: identity (RFC 9110 15.5.16),
// and nothing is stored.
func TestCompressedIntakeIsUnsupportedMedia(t *testing.T) {
	ex := startPortal(t)
	raw := signedExample(t, ex.client, ex.leika)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	for _, ct := range []string{"application/xml", `multipart/related; type="application/xml"; boundary=b`} {
		req, _ := http.NewRequest(http.MethodPost, ex.g.URL()+wire.SubmissionsPath, bytes.NewReader(gz.Bytes()))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Content-Encoding", "gzip")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 415 || !bytes.Contains(body, []byte(problem.TypeUnsupportedMedia)) || res.Header.Get("Accept-Encoding") != "identity" {
			t.Errorf("%s, gzip: %d Accept-Encoding %q %s", ct, res.StatusCode, res.Header.Get("Accept-Encoding"), body)
		}
	}
	// identity is no coding at all, nor is an empty header; a coding after
	// identity is one.
	for ce, want := range map[string]int{"identity": 201, "": 201, "identity, gzip": 415} {
		req, _ := http.NewRequest(http.MethodPost, ex.g.URL()+wire.SubmissionsPath, bytes.NewReader(signedExample(t, ex.client, ex.leika)))
		req.Header.Set("Content-Type", "application/xml")
		req.Header["Content-Encoding"] = []string{ce}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("Content-Encoding %q: %d, want %d", ce, res.StatusCode, want)
		}
	}
}
