package wire

import (
	"io"
	"mime/multipart"
	"net/textproto"
)

// WriteRelatedPart writes one attachment part of a multipart/related body (RFC
// 2387) as the gateway reads them: its Content-ID (given without angle brackets,
// matching the package's Referenz="cid:..."), its type (application/octet-stream
// when empty), and its bytes copied from body unchanged (binary: the signed digest
// is over the bytes as sent). The portal client and the forwarding gateway write
// their parts with it.
func WriteRelatedPart(mw *multipart.Writer, contentID, mimeType string, body io.Reader) error {
	if mimeType == "" {
		mimeType = "application/octet-stream"
	}
	w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {mimeType}, "Content-Id": {"<" + contentID + ">"},
		"Content-Transfer-Encoding": {"binary"}})
	if err != nil {
		return err
	}
	_, err = io.Copy(w, body)
	return err
}
