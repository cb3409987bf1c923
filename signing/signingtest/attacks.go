package signingtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // only to build a forged SHA-1 reference that must be refused
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/internal/c14n"
)

// Case is one hostile or broken document and the sentinel error Verify must
// return for it (checked with errors.Is).
type Case struct {
	Name string
	Doc  []byte
	Want error
}

// Attacks returns the attack corpus for unsigned (an Antragspaket or any root with
// an ID attribute and at least one child element holding text), built with the
// parties of pki. Every case must be rejected by a Verifier on pki.Store with the
// given error. Cases that need a "valid but wrongly shaped" signature are re-signed
// with a trusted key, so they test the shape checks, not just the digest.
func Attacks(tb testing.TB, pki *PKI, unsigned *etree.Element) []Case {
	tb.Helper()
	good, err := pki.Portal.Signer.Sign(unsigned)
	if err != nil {
		tb.Fatalf("signingtest: signing the base document: %v", err)
	}
	rootID := unsigned.SelectAttrValue("ID", "")
	signWith := func(p *Party) []byte {
		b, err := p.Signer.Sign(unsigned)
		if err != nil {
			tb.Fatalf("signingtest: signing with %s: %v", p.Name, err)
		}
		return b
	}
	// edit parses the good document, lets f change it and serializes it again
	// without re-signing.
	edit := func(f func(d *etree.Document, root, sig *etree.Element)) []byte {
		d := parse(tb, good)
		f(d, d.Root(), sigOf(d.Root()))
		return write(tb, d)
	}
	resignAs := func(p *Party, f func(d *etree.Document, root, sig *etree.Element)) []byte {
		return resign(tb, good, p, f, false)
	}
	resigned := func(f func(d *etree.Document, root, sig *etree.Element)) []byte { return resignAs(pki.Portal, f) }
	ref := func(sig *etree.Element) *etree.Element { return child(child(sig, "SignedInfo"), "Reference") }
	text := func(root *etree.Element) *etree.Element {
		el := firstText(root)
		if el == nil {
			tb.Fatalf("signingtest: the document needs a child element with text")
		}
		return el
	}
	replaceOnce := func(b []byte, old, new string) []byte {
		if !bytes.Contains(b, []byte(old)) {
			tb.Fatalf("signingtest: %q not found in signed document", old)
		}
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	}

	cases := []Case{
		{"tampered-text", edit(func(_ *etree.Document, root, _ *etree.Element) {
			el := text(root)
			el.SetText(el.Text() + "X")
		}), signing.ErrInvalidSignature},
		{"whitespace-injected-into-text", edit(func(_ *etree.Document, root, _ *etree.Element) {
			el := text(root)
			el.SetText(" " + el.Text())
		}), signing.ErrInvalidSignature},
		{"attribute-added-to-root", edit(func(_ *etree.Document, root, _ *etree.Element) {
			root.CreateAttr("Prioritaet", "hoch")
		}), signing.ErrInvalidSignature},
		{"element-removed", edit(func(_ *etree.Document, root, _ *etree.Element) {
			el := text(root)
			el.Parent().RemoveChild(el)
		}), signing.ErrInvalidSignature},
		{"element-added", edit(func(_ *etree.Document, root, sig *etree.Element) {
			root.InsertChildAt(sig.Index(), etree.NewElement("Zusatz"))
		}), signing.ErrInvalidSignature},
		{"root-default-namespace-changed", edit(func(_ *etree.Document, root, _ *etree.Element) {
			for i := range root.Attr {
				if root.Attr[i].Space == "" && root.Attr[i].Key == "xmlns" {
					root.Attr[i].Value += ":evil"
					return
				}
			}
			root.CreateAttr("xmlns", "urn:evil")
		}), signing.ErrInvalidSignature},
		{"signature-removed", edit(func(_ *etree.Document, root, sig *etree.Element) {
			root.RemoveChild(sig)
		}), signing.ErrNoSignature},
		{"signature-prefix-rebound", edit(func(_ *etree.Document, _, sig *etree.Element) {
			for i := range sig.Attr {
				if sig.Attr[i].Space == "xmlns" {
					sig.Attr[i].Value = "urn:not-xmldsig"
				}
			}
		}), signing.ErrNoSignature},
		{"signedinfo-prefix-rebound", edit(func(_ *etree.Document, _, sig *etree.Element) {
			child(sig, "SignedInfo").CreateAttr("xmlns:ds", "urn:not-xmldsig")
		}), signing.ErrInvalidSignature},
		{"inner-prefix-rebound", edit(func(_ *etree.Document, root, _ *etree.Element) {
			// Move a namespace binding to another URI on an inner element while keeping
			// every prefix and name the same.
			for _, el := range root.FindElements("//*") {
				for i := range el.Attr {
					if el.Attr[i].Space == "xmlns" && el != root && el.Tag != "Signature" {
						el.Attr[i].Value += ":evil"
						return
					}
				}
			}
			text(root).CreateAttr("xmlns", "urn:evil")
		}), signing.ErrInvalidSignature},
		{"signature-duplicated", edit(func(_ *etree.Document, root, sig *etree.Element) {
			root.AddChild(sig.Copy())
		}), signing.ErrInvalidSignature},
		{"signature-moved-into-child", edit(func(_ *etree.Document, root, sig *etree.Element) {
			root.RemoveChild(sig)
			root.ChildElements()[0].AddChild(sig)
		}), signing.ErrInvalidSignature},
		{"wrapped-in-new-root", edit(func(d *etree.Document, root, _ *etree.Element) {
			w := etree.NewElement("Antragspaket")
			w.CreateAttr("xmlns", root.SelectAttrValue("xmlns", ""))
			w.CreateAttr("ID", rootID+"-evil")
			d.SetRoot(w)
			w.AddChild(root)
		}), signing.ErrInvalidSignature},
		{"evil-root-original-inside-object", edit(func(d *etree.Document, root, sig *etree.Element) {
			evil := root.Copy()
			text(evil).SetText("gefaelscht")
			evil.RemoveChild(sigOf(evil))
			root.RemoveChild(sig)
			obj := sig.CreateElement("ds:Object")
			obj.AddChild(root)
			evil.AddChild(sig)
			d.SetRoot(evil)
		}), signing.ErrMalformed},
		{"evil-root-original-as-child", edit(func(d *etree.Document, root, sig *etree.Element) {
			evil := root.Copy()
			text(evil).SetText("gefaelscht")
			evil.RemoveChild(sigOf(evil))
			root.RemoveChild(sig)
			root.RemoveAttr("ID")
			root.CreateAttr("ID", rootID+"-orig")
			evil.AddChild(root)
			evil.AddChild(sig)
			d.SetRoot(evil)
		}), signing.ErrInvalidSignature},
		{"duplicate-id-on-descendant", edit(func(_ *etree.Document, root, _ *etree.Element) {
			text(root).CreateAttr("ID", rootID)
		}), signing.ErrMalformed},
		{"id-shadowed-by-Id-attribute", edit(func(_ *etree.Document, root, _ *etree.Element) {
			text(root).CreateAttr("Id", rootID)
		}), signing.ErrMalformed},
		{"duplicate-attribute", replaceOnce(good, ` ID="`+rootID+`"`, ` ID="`+rootID+`" ID="`+rootID+`"`), signing.ErrMalformed},
		{"second-root-element", append(bytes.Clone(good), []byte(`<Antragspaket ID="`+rootID+`x"/>`)...), signing.ErrMalformed},
		{"doctype-with-entity", replaceOnce(good, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE x [<!ENTITY e \"evil\">]>\n"), signing.ErrMalformed},
		{"processing-instruction", replaceOnce(good, "</Kopf>", "<?evil data?></Kopf>"), signing.ErrMalformed},
		{"non-utf8-encoding", replaceOnce(good, `encoding="UTF-8"`, `encoding="ISO-8859-1"`), signing.ErrMalformed},
		{"empty-document", nil, signing.ErrMalformed},
		{"not-xml", []byte("this is not xml <"), signing.ErrMalformed},
		{"depth-bomb", []byte(strings.Repeat("<a>", 10000) + strings.Repeat("</a>", 10000)), signing.ErrLimit},
		{"unbound-prefix-in-signed-content", edit(func(_ *etree.Document, root, sig *etree.Element) {
			root.InsertChildAt(sig.Index(), etree.NewElement("nope:Element"))
		}), signing.ErrMalformed},
		{"signature-value-truncated", edit(func(_ *etree.Document, _, sig *etree.Element) {
			sv := child(sig, "SignatureValue")
			raw, _ := base64.StdEncoding.DecodeString(sv.Text())
			sv.SetText(base64.StdEncoding.EncodeToString(raw[:len(raw)/2]))
		}), signing.ErrInvalidSignature},
		{"signature-value-garbage", edit(func(_ *etree.Document, _, sig *etree.Element) {
			child(sig, "SignatureValue").SetText("!!not base64!!")
		}), signing.ErrInvalidSignature},
		{"signature-value-bitflip", edit(func(_ *etree.Document, _, sig *etree.Element) {
			sv := child(sig, "SignatureValue")
			raw, _ := base64.StdEncoding.DecodeString(sv.Text())
			raw[len(raw)/2] ^= 1
			sv.SetText(base64.StdEncoding.EncodeToString(raw))
		}), signing.ErrInvalidSignature},
		{"digest-value-changed", edit(func(_ *etree.Document, _, sig *etree.Element) {
			sum := sha256.Sum256([]byte("other"))
			child(ref(sig), "DigestValue").SetText(base64.StdEncoding.EncodeToString(sum[:]))
		}), signing.ErrInvalidSignature},
		{"reference-to-child-element", resigned(func(_ *etree.Document, root, sig *etree.Element) {
			el := text(root)
			el.CreateAttr("ID", "kind")
			ref(sig).RemoveAttr("URI")
			ref(sig).CreateAttr("URI", "#kind")
		}), signing.ErrInvalidSignature},
		{"reference-external-uri", resigned(func(_ *etree.Document, _, sig *etree.Element) {
			ref(sig).RemoveAttr("URI")
			ref(sig).CreateAttr("URI", "https://evil.example/doc.xml")
		}), signing.ErrInvalidSignature},
		{"reference-without-uri", resigned(func(_ *etree.Document, _, sig *etree.Element) {
			ref(sig).RemoveAttr("URI")
		}), signing.ErrInvalidSignature},
		{"extra-reference", resigned(func(_ *etree.Document, root, sig *etree.Element) {
			el := text(root)
			el.CreateAttr("ID", "anlage")
			r2 := ref(sig).Copy()
			r2.RemoveAttr("URI")
			r2.CreateAttr("URI", "#anlage")
			child(sig, "SignedInfo").AddChild(r2)
		}), signing.ErrInvalidSignature},
		{"xpath-transform", resigned(func(_ *etree.Document, _, sig *etree.Element) {
			tr := child(ref(sig), "Transforms")
			x := tr.CreateElement("ds:Transform")
			x.CreateAttr("Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116")
			x.CreateElement("ds:XPath").SetText("not(ancestor-or-self::Anlagen)")
		}), signing.ErrInvalidSignature},
		{"enveloped-transform-missing", resigned(func(_ *etree.Document, _, sig *etree.Element) {
			ref(sig).RemoveChild(child(ref(sig), "Transforms"))
		}), signing.ErrInvalidSignature},
		{"exc-c14n-with-prefixlist", resigned(func(_ *etree.Document, _, sig *etree.Element) {
			for _, t := range child(ref(sig), "Transforms").ChildElements() {
				if t.SelectAttrValue("Algorithm", "") == c14n.AlgInclusive10 {
					t.RemoveAttr("Algorithm")
					t.CreateAttr("Algorithm", c14n.AlgExclusive10)
					in := t.CreateElement("ec:InclusiveNamespaces")
					in.CreateAttr("xmlns:ec", c14n.AlgExclusive10)
					in.CreateAttr("PrefixList", "xs xsi")
				}
			}
		}), signing.ErrInvalidSignature},
		{"c14n-with-comments", resigned(func(_ *etree.Document, _, sig *etree.Element) {
			cm := child(child(sig, "SignedInfo"), "CanonicalizationMethod")
			cm.RemoveAttr("Algorithm")
			cm.CreateAttr("Algorithm", c14n.AlgInclusive10+"#WithComments")
		}), signing.ErrInvalidSignature},
		{"sha1-digest", resigned(func(_ *etree.Document, _, sig *etree.Element) {
			dm := child(ref(sig), "DigestMethod")
			dm.RemoveAttr("Algorithm")
			dm.CreateAttr("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1")
		}), signing.ErrInvalidSignature},
		{"hmac-signature-method", resigned(func(_ *etree.Document, _, sig *etree.Element) {
			sm := child(child(sig, "SignedInfo"), "SignatureMethod")
			sm.RemoveAttr("Algorithm")
			sm.CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256")
		}), signing.ErrInvalidSignature},
		{"object-element-added", resigned(func(_ *etree.Document, _, sig *etree.Element) {
			sig.CreateElement("ds:Object").CreateElement("Antragspaket").CreateAttr("ID", "x")
		}), signing.ErrInvalidSignature},
		{"keyinfo-removed", edit(func(_ *etree.Document, _, sig *etree.Element) {
			sig.RemoveChild(child(sig, "KeyInfo"))
		}), signing.ErrUntrustedSigner},
		{"keyinfo-certificate-swapped", edit(func(_ *etree.Document, _, sig *etree.Element) {
			c := child(child(child(sig, "KeyInfo"), "X509Data"), "X509Certificate")
			c.SetText(base64.StdEncoding.EncodeToString(pki.OtherPortal.Cert.Raw))
		}), signing.ErrInvalidSignature},
		{"keyinfo-certificate-garbage", edit(func(_ *etree.Document, _, sig *etree.Element) {
			c := child(child(child(sig, "KeyInfo"), "X509Data"), "X509Certificate")
			c.SetText(base64.StdEncoding.EncodeToString([]byte("not a certificate")))
		}), signing.ErrUntrustedSigner},
		{"keyinfo-certificate-flood", edit(func(_ *etree.Document, _, sig *etree.Element) {
			xd := child(child(sig, "KeyInfo"), "X509Data")
			for i := 0; i < 20; i++ {
				xd.CreateElement("ds:X509Certificate").SetText(base64.StdEncoding.EncodeToString(pki.CA.Raw))
			}
		}), signing.ErrUntrustedSigner},
		{"ecdsa-der-signature-value", resign(tb, signWith(pki.PortalECDSA), pki.PortalECDSA, nil, true), signing.ErrInvalidSignature},
		{"signer-untrusted", signWith(pki.Untrusted), signing.ErrUntrustedSigner},
		{"signer-expired", signWith(pki.Expired), signing.ErrUntrustedSigner},
		{"signer-without-digitalSignature", signWith(pki.NoDigitalSignature), signing.ErrUntrustedSigner},
		{"signer-revoked", signWith(pki.Revoked), signing.ErrUntrustedSigner},
	}
	return cases
}

// Comment injection does not break the signature (C14N drops comments) but must
// not change what the caller reads: CommentInjected returns a signed document whose
// first text element has a comment spliced into its text, and the full text the
// verified root must show.
func CommentInjected(tb testing.TB, pki *PKI, unsigned *etree.Element) (doc []byte, path, wantText string) {
	tb.Helper()
	good, err := pki.Portal.Signer.Sign(unsigned)
	if err != nil {
		tb.Fatal(err)
	}
	d := parse(tb, good)
	el := firstText(d.Root())
	if el == nil || len(el.Text()) < 2 {
		tb.Fatalf("signingtest: the document needs a child element with text")
	}
	full := el.Text()
	el.SetText(full[:1])
	el.CreateComment("injected")
	el.CreateText(full[1:])
	return write(tb, d), el.GetPath(), full
}

func parse(tb testing.TB, b []byte) *etree.Document {
	tb.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(b); err != nil {
		tb.Fatalf("signingtest: parsing signed document: %v", err)
	}
	return d
}

func write(tb testing.TB, d *etree.Document) []byte {
	tb.Helper()
	b, err := d.WriteToBytes()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func child(el *etree.Element, tag string) *etree.Element {
	if el == nil {
		return etree.NewElement("missing-" + tag)
	}
	for _, c := range el.ChildElements() {
		if c.Tag == tag {
			return c
		}
	}
	return etree.NewElement("missing-" + tag)
}

func sigOf(root *etree.Element) *etree.Element {
	for _, c := range root.ChildElements() {
		if c.Tag == "Signature" {
			return c
		}
	}
	return nil
}

// firstText finds the first element (depth first, outside the signature) with
// non-whitespace text.
func firstText(el *etree.Element) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" {
			continue
		}
		if strings.TrimSpace(c.Text()) != "" && len(c.ChildElements()) == 0 {
			return c
		}
		if f := firstText(c); f != nil {
			return f
		}
	}
	return nil
}

func findByID(el *etree.Element, id string) *etree.Element {
	if el.SelectAttrValue("ID", "\x00") == id {
		return el
	}
	for _, c := range el.ChildElements() {
		if f := findByID(c, id); f != nil {
			return f
		}
	}
	return nil
}

// resign applies f to a parse of signed, recomputes every reference digest it can
// resolve and the signature value with p's key, and serializes the result. With
// der, an ECDSA signature value is written as ASN.1 DER instead of raw r||s.
func resign(tb testing.TB, signed []byte, p *Party, f func(d *etree.Document, root, sig *etree.Element), der bool) []byte {
	tb.Helper()
	d := parse(tb, signed)
	root := d.Root()
	sig := sigOf(root)
	if f != nil {
		f(d, root, sig)
	}
	si := child(sig, "SignedInfo")
	for _, r := range si.ChildElements() {
		if r.Tag != "Reference" {
			continue
		}
		uri := r.SelectAttrValue("URI", "\x00")
		var target *etree.Element
		switch {
		case uri == "":
			target = root
		case strings.HasPrefix(uri, "#"):
			target = findByID(root, uri[1:])
		}
		if target == nil {
			continue
		}
		var buf bytes.Buffer
		if err := c14n.Canonicalize(&buf, target, c14n.Inclusive10, sig); err != nil {
			tb.Fatalf("signingtest: resign: %v", err)
		}
		var sum []byte
		if strings.HasSuffix(child(r, "DigestMethod").SelectAttrValue("Algorithm", ""), "#sha1") {
			s := sha1.Sum(buf.Bytes()) //nolint:gosec
			sum = s[:]
		} else {
			s := sha256.Sum256(buf.Bytes())
			sum = s[:]
		}
		child(r, "DigestValue").SetText(base64.StdEncoding.EncodeToString(sum))
	}
	var buf bytes.Buffer
	if err := c14n.Canonicalize(&buf, si, c14n.Inclusive10, nil); err != nil {
		tb.Fatalf("signingtest: resign SignedInfo: %v", err)
	}
	h := sha256.Sum256(buf.Bytes())
	val, err := p.Key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	if pub, ok := p.Key.Public().(*ecdsa.PublicKey); ok && !der {
		val = toRaw(tb, val, (pub.Curve.Params().BitSize+7)/8)
	}
	child(sig, "SignatureValue").SetText(base64.StdEncoding.EncodeToString(val))
	return write(tb, d)
}

// Resign applies f to a parse of signed and signs the result again with p's key
// (recomputing the digests of references to "" or "#<ID>"). It lets tests build
// documents that carry a cryptographically valid but differently shaped signature.
func Resign(tb testing.TB, signed []byte, p *Party, f func(d *etree.Document, root, sig *etree.Element)) []byte {
	tb.Helper()
	return resign(tb, signed, p, f, false)
}
