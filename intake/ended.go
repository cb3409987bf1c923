package intake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"strings"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/store"
)

// acceptedBefore answers a portal's package whose signer the verifier refused
// now (signing.ErrUntrustedSigner) when these very bytes were accepted before,
// and the signature is good as of then: a retry whose 201 was lost around the
// end of the portal's certificate. A 403 there told the portal "refused" while
// the office processed the package, or had it send the application again under
// a new NachrichtID (a review, 2026-12-05). It returns the stored submission
// and the package verified at the time it was received — the trust store,
// revocation and the rest checked as of now, only the certificates' validity
// as of then (Verifier.At), as SubmitForwarded does for a hop — or nil when it
// is no such repeat: the caller's 403 stands.
//
// The Absender and NachrichtID are read from the unverified document, as a key
// to look the record up by and for nothing else: the proof is that the bytes
// are the stored package's (its SHA-256), which were verified at acceptance.
// An error is only the store's (ErrUnavailable): the portal retries.
func (p *Pipeline) acceptedBefore(raw, doc []byte) (*broker.Received, *signing.Verified, error) {
	sender, id := kopfKeys(doc)
	if sender == "" || id == "" {
		return nil, nil, nil
	}
	first, err := p.Broker.Lookup(sender, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(raw)
	if first.Submission.PackageSHA256 != hex.EncodeToString(sum[:]) {
		return nil, nil, nil
	}
	v, err := p.Verifier.At(first.Submission.ReceivedAt).Verify(doc, signing.RolePortal)
	if err != nil {
		return nil, nil, nil
	}
	p.log().Info("intake: a repeat of an accepted package whose signer is refused now (its certificate ended since) gets its first receipt",
		"submission", first.Submission.ID, "sender", sender, "message_id", id, "received", first.Submission.ReceivedAt)
	return first, v, nil
}

// kopfKeys reads the text of Absender and NachrichtID in the root's first child
// (Kopf) of doc, a document paket.ScanNormalized let through, without building
// a tree; "" where there is none. The reading stops at the end of that child.
func kopfKeys(doc []byte) (sender, id string) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	depth := 0
	var field *string
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			if err != io.EOF {
				return "", ""
			}
			return sender, id
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			field = nil
			if depth == 2 && t.Name.Local != "Kopf" {
				return "", ""
			}
			if depth == 3 {
				switch t.Name.Local {
				case "Absender":
					field = &sender
				case "NachrichtID":
					field = &id
				}
				text.Reset()
			}
		case xml.CharData:
			if field != nil {
				text.Write(t)
			}
		case xml.EndElement:
			if depth == 3 && field != nil {
				*field = strings.TrimSpace(text.String())
			}
			field = nil
			depth--
			if depth == 1 {
				return sender, id
			}
		}
	}
}
