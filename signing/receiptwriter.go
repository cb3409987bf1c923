package signing

import (
	"bytes"
	"crypto"
	"encoding/base64"

	"github.com/amtsbote/amtsbote/signing/internal/c14n"
)

// A receipt is written, not built and canonicalized.
//
// The gateway signs two receipts per package. Built as an etree element and
// signed like any document (signOwned), each took the element's construction, the
// Signature's, and three canonicalizations (the element for its digest, SignedInfo
// for the signature, the whole for the output): about as much CPU again as the
// ECDSA signature itself (docs/performance.md, "Receipts written directly"). A
// receipt's shape is fixed — one namespace, two attributes, text-only children in
// a fixed order — so its canonical forms can be written straight away, escaped by
// the canonicalizer's own functions. TestReceiptWriterMatchesCanonicalization and
// FuzzReceiptWriter hold the two paths byte for byte equal; signOwned stays the
// path for every other document and the tests' oracle.
//
// The three forms, as inclusive C14N 1.0 renders them:
//
//   - the receipt without its signature, hashed for the Reference:
//     <Kind xmlns="urn:amtsbote:quittung:1" ID="Q…" Version="1"><EinreichungID>…</…>…</Kind>
//   - SignedInfo as the apex of a document subset, which renders every namespace
//     in scope on it, the default one first: <ds:SignedInfo xmlns="urn:…"
//     xmlns:ds="…">, signed;
//   - the signed document, where SignedInfo inherits both from its ancestors.
func (s *Signer) writeReceipt(r Receipt, sign func([]byte) ([]byte, error)) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	id := receiptID(&r)
	buf := getBuf()
	defer putBuf(buf)

	// The unsigned receipt is the signed one up to its end tag, before which the
	// Signature goes: written once, hashed, and copied into the output.
	writeReceiptStart(buf, &r, id)
	r.eachField(func(name, v string) { writeTextElement(buf, name, v) })
	body := buf.Len()
	writeEnd(buf, string(r.Kind))
	digest := crypto.SHA256.New()
	digest.Write(buf.Bytes())
	digestB64 := base64.StdEncoding.EncodeToString(digest.Sum(nil))

	// The output is sized for the body, SignedInfo (about as long again as the
	// markup around it), the value and the certificates.
	out := bytes.NewBuffer(make([]byte, 0, 2*buf.Len()+s.certLen+1024))
	out.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
	out.Write(buf.Bytes()[:body])

	buf.Reset()
	s.writeSignedInfo(buf, true, id, digestB64)
	value, err := sign(buf.Bytes())
	if err != nil {
		return nil, err
	}

	out.WriteString(`<ds:Signature xmlns:ds="`)
	c14n.EscapeAttr(out, NamespaceDSig)
	out.WriteString(`">`)
	s.writeSignedInfo(out, false, id, digestB64)
	writeTextElement(out, "ds:SignatureValue", base64.StdEncoding.EncodeToString(value))
	out.WriteString("<ds:KeyInfo><ds:X509Data>")
	for _, c := range s.certB64 {
		writeTextElement(out, "ds:X509Certificate", c)
	}
	out.WriteString("</ds:X509Data></ds:KeyInfo></ds:Signature>")
	writeEnd(out, string(r.Kind))
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// writeReceiptStart writes the receipt's start tag: the namespace declaration
// first, then the attributes by name (ID before Version).
func writeReceiptStart(b *bytes.Buffer, r *Receipt, id string) {
	b.WriteByte('<')
	b.WriteString(string(r.Kind))
	b.WriteString(` xmlns="`)
	c14n.EscapeAttr(b, NamespaceReceipt)
	b.WriteString(`" ` + idAttributeName + `="`)
	c14n.EscapeAttr(b, id)
	b.WriteString(`" Version="1">`)
}

// writeSignedInfo writes SignedInfo; apex: as the apex of its own canonical form,
// with the namespaces in scope declared on it.
func (s *Signer) writeSignedInfo(b *bytes.Buffer, apex bool, id, digestB64 string) {
	b.WriteString("<ds:SignedInfo")
	if apex {
		b.WriteString(` xmlns="`)
		c14n.EscapeAttr(b, NamespaceReceipt)
		b.WriteString(`" xmlns:ds="`)
		c14n.EscapeAttr(b, NamespaceDSig)
		b.WriteString(`"`)
	}
	b.WriteByte('>')
	writeAlgorithm(b, "ds:CanonicalizationMethod", c14n.AlgInclusive10)
	writeAlgorithm(b, "ds:SignatureMethod", s.alg)
	b.WriteString(`<ds:Reference URI="`)
	c14n.EscapeAttr(b, "#"+id)
	b.WriteString(`"><ds:Transforms>`)
	writeAlgorithm(b, "ds:Transform", AlgEnveloped)
	writeAlgorithm(b, "ds:Transform", c14n.AlgInclusive10)
	b.WriteString("</ds:Transforms>")
	writeAlgorithm(b, "ds:DigestMethod", AlgSHA256)
	writeTextElement(b, "ds:DigestValue", digestB64)
	b.WriteString("</ds:Reference></ds:SignedInfo>")
}

// writeAlgorithm writes an empty element with an Algorithm attribute, canonical:
// a start and an end tag.
func writeAlgorithm(b *bytes.Buffer, name, alg string) {
	b.WriteByte('<')
	b.WriteString(name)
	b.WriteString(` Algorithm="`)
	c14n.EscapeAttr(b, alg)
	b.WriteString(`"></`)
	b.WriteString(name)
	b.WriteByte('>')
}

func writeTextElement(b *bytes.Buffer, name, text string) {
	b.WriteByte('<')
	b.WriteString(name)
	b.WriteByte('>')
	c14n.EscapeText(b, text)
	writeEnd(b, name)
}

func writeEnd(b *bytes.Buffer, name string) {
	b.WriteString("</")
	b.WriteString(name)
	b.WriteByte('>')
}
