package portal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"

	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/wire"
)

// Part is an attachment sent by reference: a part of a multipart/related request
// whose Content-ID the package's Anlage names (Referenz="cid:"+ContentID), with its
// Groesse and SHA256 inside the signed element.
type Part struct {
	ContentID string // without angle brackets
	MimeType  string
	// Open yields the bytes; called once, while the request body is written, so a
	// file of any size is streamed, never read whole.
	Open func() (io.ReadCloser, error)
}

// StreamedAnlage describes content the caller streams: it reads open() once to its
// end to learn the size and SHA-256 (the first pass; the second is the upload), and
// returns the Anlage for the package and the Part for SubmitParts. Content-ID is
// "<id>@amtsbote.invalid" unless the Anlage's Referenz is set afterwards (then set
// Part.ContentID to match).
func StreamedAnlage(id, fileName, mimeType string, open func() (io.ReadCloser, error)) (paket.Anlage, Part, error) {
	rc, err := open()
	if err != nil {
		return paket.Anlage{}, Part{}, fmt.Errorf("portal: attachment %s: %w", id, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, rc)
	rc.Close()
	if err != nil {
		return paket.Anlage{}, Part{}, fmt.Errorf("portal: attachment %s: %w", id, err)
	}
	cid := id + "@amtsbote.invalid"
	a := paket.Anlage{ID: id, Dateiname: fileName, MimeType: mimeType, Groesse: n,
		SHA256: hex.EncodeToString(h.Sum(nil)), Referenz: "cid:" + cid}
	return a, Part{ContentID: cid, MimeType: mimeType, Open: open}, nil
}

// FileAnlage is StreamedAnlage for a file on disk (its base name is the Dateiname).
func FileAnlage(id, path, mimeType string) (paket.Anlage, Part, error) {
	return StreamedAnlage(id, filepath.Base(path), mimeType, func() (io.ReadCloser, error) { return os.Open(path) })
}

// SubmitParts signs p and posts it as multipart/related (RFC 2387): the signed
// package is the root (first) part, each Part follows with its Content-ID. The body
// is written while it is sent (chunked), so memory does not grow with the
// attachments. There is no overall client timeout unless c.HTTP sets one: an upload
// of gigabytes takes long, ctx ends it.
func (c *Client) SubmitParts(ctx context.Context, p *paket.Paket, parts []Part) (*Result, error) {
	raw, err := c.Sign(p)
	if err != nil {
		return nil, err
	}
	return c.SubmitRawParts(ctx, raw, parts)
}

// SubmitRawParts is SubmitParts for an already signed package.
func (c *Client) SubmitRawParts(ctx context.Context, raw []byte, parts []Part) (*Result, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() { pw.CloseWithError(writeParts(mw, raw, parts)) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+wire.SubmissionsPath, pr)
	if err != nil {
		pr.Close()
		return nil, err
	}
	req.Header.Set("Content-Type", `multipart/related; type="application/xml"; boundary=`+mw.Boundary())
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{}
	}
	resp, err := hc.Do(req)
	if err != nil {
		pr.Close()
		return nil, err
	}
	defer resp.Body.Close()
	// A refusal may come before the body is sent: stop writing it.
	pr.Close()
	body, err := httpbody.ReadAll(io.LimitReader(resp.Body, 16<<20), resp.ContentLength)
	if err != nil {
		return nil, err
	}
	return submitResult(resp, body), nil
}

func writeParts(mw *multipart.Writer, raw []byte, parts []Part) error {
	root, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/xml"}, "Content-Id": {"<antragspaket@amtsbote.invalid>"}})
	if err != nil {
		return err
	}
	if _, err := root.Write(raw); err != nil {
		return err
	}
	for _, p := range parts {
		rc, err := p.Open()
		if err != nil {
			return fmt.Errorf("portal: part %s: %w", p.ContentID, err)
		}
		err = wire.WriteRelatedPart(mw, p.ContentID, p.MimeType, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("portal: part %s: %w", p.ContentID, err)
		}
	}
	return mw.Close()
}
