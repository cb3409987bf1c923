package paket

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// scanStd is the first Scan, built on encoding/xml. It stays as a test oracle: the
// differential fuzz test checks that Scan refuses nothing it accepts (except by the
// stricter rules listed in stricterReasons) and accepts nothing it refuses.
func scanStd(raw []byte, lim Limits) error {
	lim = lim.effective()
	if over(int64(len(raw)), lim.MaxBytes) {
		return limitErr("MaxBytes", lim.MaxBytes, int64(len(raw)))
	}
	// XML allows a UTF-8 byte order mark; encoding/xml would report it as text.
	d := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(raw, stdBOM)))
	d.Strict = true
	// A nil CharsetReader makes the decoder refuse every declared encoding but UTF-8,
	// so Scan and the tree builder (which ignores the declaration) read the same text.
	d.CharsetReader = nil

	var (
		stack       []xml.Name // open elements
		elements    int
		attributes  int
		attachments int
		b64         int64 // non-space base64 characters in the current Inhalt
		inInhalt    bool
		rootDone    bool
		first       = true
	)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		isFirst := first
		first = false
		switch t := tok.(type) {
		case xml.StartElement:
			if rootDone {
				return fmt.Errorf("%w: more than one root element", ErrMalformed)
			}
			elements++
			if over(elements, lim.MaxElements) {
				return limitErr("MaxElements", lim.MaxElements, elements)
			}
			depth := len(stack) + 1
			if over(depth, lim.MaxDepth) {
				return limitErr("MaxDepth", lim.MaxDepth, depth)
			}
			if over(len(t.Attr), lim.MaxAttributes) {
				return limitErr("MaxAttributes", lim.MaxAttributes, len(t.Attr))
			}
			attributes += len(t.Attr)
			if max := attrsTotal(lim); over(attributes, max) {
				return limitErr("MaxAttributesTotal", max, attributes)
			}
			if stdDupAttr(t.Attr) {
				return fmt.Errorf("%w: duplicate attribute", ErrMalformed)
			}
			switch {
			case depth == 1:
				if t.Name.Space != Namespace || t.Name.Local != elRoot {
					return fmt.Errorf("%w: root element is not {%s}%s", ErrMalformed, Namespace, elRoot)
				}
			case depth == 3 && stdIsName(t.Name, elAnlage) && stdIsName(stack[1], elAnlagen):
				attachments++
				if over(attachments, lim.MaxAttachments) {
					return limitErr("MaxAttachments", lim.MaxAttachments, attachments)
				}
			case depth == 4 && stdIsName(t.Name, elInhalt) && stdIsName(stack[2], elAnlage) && stdIsName(stack[1], elAnlagen):
				inInhalt, b64 = true, 0
			default:
				// Anything nested in Inhalt makes Parse refuse it; for the size estimate
				// only Inhalt's own text counts.
				inInhalt = false
			}
			stack = append(stack, t.Name)
		case xml.EndElement:
			// The decoder has already checked that it matches the open element.
			stack = stack[:len(stack)-1]
			inInhalt = false
			if len(stack) == 0 {
				rootDone = true
			}
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.Trim(t, " \t\r\n")) != 0 {
					return fmt.Errorf("%w: text outside the root element", ErrMalformed)
				}
				continue
			}
			if inInhalt {
				b64 += int64(len(t)) - int64(stdCountSpace(t))
				if est := b64 / 4 * 3; overEstimate(est, lim.MaxAttachmentBytes) {
					return limitErr("MaxAttachmentBytes", lim.MaxAttachmentBytes, est)
				}
			}
		case xml.ProcInst:
			if t.Target != "xml" || !isFirst {
				return fmt.Errorf("%w: processing instructions are not allowed", ErrMalformed)
			}
		case xml.Directive:
			return fmt.Errorf("%w: DOCTYPE and other declarations are not allowed", ErrMalformed)
		case xml.Comment:
		}
	}
	if !rootDone {
		return fmt.Errorf("%w: no complete root element", ErrMalformed)
	}
	return nil
}

var stdBOM = []byte("\xef\xbb\xbf")

func stdIsName(n xml.Name, local string) bool { return n.Local == local && n.Space == Namespace }

// dupAttr reports a repeated attribute name (after namespace translation), which XML
// forbids and encoding/xml does not check.
func stdDupAttr(as []xml.Attr) bool {
	for i := 1; i < len(as); i++ {
		for j := 0; j < i; j++ {
			if as[i].Name == as[j].Name {
				return true
			}
		}
	}
	return false
}

func stdCountSpace(b []byte) int {
	n := 0
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			n++
		}
	}
	return n
}
