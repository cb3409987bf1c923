package wire

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"testing"
)

// TestRelatedPartAsTheGatewayReadsIt: a part's Content-ID goes out in angle
// brackets (RFC 2387, RFC 2392), so the gateway finds the part a package names
// by Referenz="cid:<id>"; its bytes go out unchanged (the signed digest is over
// them) and an empty type is sent as application/octet-stream.
func TestRelatedPartAsTheGatewayReadsIt(t *testing.T) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	data := []byte("%PDF-1.7\r\n\x00\xff binary\n")
	if err := WriteRelatedPart(mw, "anlage-1@amtsbote.invalid", "", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := multipart.NewReader(&buf, mw.Boundary()).NextRawPart()
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Header.Get("Content-Id"); got != "<anlage-1@amtsbote.invalid>" {
		t.Errorf("Content-Id %q, want <anlage-1@amtsbote.invalid>", got)
	}
	if mt, _, err := mime.ParseMediaType(p.Header.Get("Content-Type")); err != nil || mt != "application/octet-stream" {
		t.Errorf("Content-Type %q (%v), want application/octet-stream", p.Header.Get("Content-Type"), err)
	}
	if got, err := io.ReadAll(p); err != nil || !bytes.Equal(got, data) {
		t.Errorf("bytes %q (%v), want %q unchanged", got, err, data)
	}
}
