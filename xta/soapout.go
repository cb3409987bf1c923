package xta

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// outMsg is one SOAP message to send: the envelope and, for MTOM, the XOP parts.
type outMsg struct {
	root     []byte
	xop      []*part
	action   string
	boundary string
	rootCID  string
}

func newOutMsg(root []byte, parts []*part, action string) *outMsg {
	o := &outMsg{root: root, action: action}
	for _, p := range parts {
		if p.cid != "" {
			o.xop = append(o.xop, p)
		}
	}
	if len(o.xop) > 0 {
		o.boundary = "MIMEBoundary_" + randHex(12)
		o.rootCID = "root." + randHex(6) + "@amtsbote"
	}
	return o
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func soapContentType(action string) string {
	if action == "" {
		return `application/soap+xml; charset=utf-8`
	}
	return mime.FormatMediaType("application/soap+xml", map[string]string{"charset": "utf-8", "action": action})
}

// contentType is the HTTP Content-Type of the message.
func (o *outMsg) contentType() string {
	if len(o.xop) == 0 {
		return soapContentType(o.action)
	}
	startInfo := "application/soap+xml"
	if o.action != "" {
		startInfo = mime.FormatMediaType("application/soap+xml", map[string]string{"action": o.action})
	}
	return mime.FormatMediaType("multipart/related", map[string]string{
		"type": "application/xop+xml", "start": "<" + o.rootCID + ">", "start-info": startInfo, "boundary": o.boundary,
	})
}

// writeTo writes the message body, streaming the XOP parts from their readers.
func (o *outMsg) writeTo(w io.Writer) error {
	if len(o.xop) == 0 {
		_, err := w.Write(o.root)
		return err
	}
	mw := multipart.NewWriter(w)
	if err := mw.SetBoundary(o.boundary); err != nil {
		return err
	}
	rootType := `application/xop+xml; charset=utf-8; type="application/soap+xml"`
	if o.action != "" {
		rootType = mime.FormatMediaType("application/xop+xml", map[string]string{"charset": "utf-8",
			"type": mime.FormatMediaType("application/soap+xml", map[string]string{"action": o.action})})
	}
	pw, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {rootType},
		"Content-Transfer-Encoding": {"8bit"},
		"Content-Id":                {"<" + o.rootCID + ">"},
	})
	if err != nil {
		return err
	}
	if _, err := pw.Write(o.root); err != nil {
		return err
	}
	for _, p := range o.xop {
		ct := p.contentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {ct},
			"Content-Transfer-Encoding": {"binary"},
			"Content-Id":                {"<" + p.cid + ">"},
		})
		if err != nil {
			return err
		}
		n, err := io.Copy(pw, p.rc)
		if err != nil {
			return err
		}
		if p.size > 0 && n != p.size {
			return fmt.Errorf("xta: part %s: %d bytes, announced %d", p.id, n, p.size)
		}
	}
	return mw.Close()
}

// envelopeOpen starts an envelope with the namespaces every message uses.
func (w *xw) envelopeOpen() {
	w.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	w.open("env:Envelope", "xmlns:env", NSSoap12, "xmlns:xta", NS, "xmlns:wsa", NSWSA)
}

// addressing is what an answer takes from the request's WS-Addressing headers.
type addressing struct {
	// used: the request carried WS-Addressing headers targeted at this node
	// (any of them: wsa:Action alone, wsa:To, …).
	used bool
	// messageID is the request's wsa:MessageID, "" when it had none.
	messageID string
}

// addressingOf reads h's WS-Addressing use.
func addressingOf(h *xHeader) addressing {
	if h == nil {
		return addressing{}
	}
	return addressing{used: h.Addressed, messageID: strings.TrimSpace(h.MessageID)}
}

// wsaHeaders writes the WS-Addressing headers of an answer to a request that used
// WS-Addressing, as WS-Addressing 1.0 (Core 3.4) has a reply's: its action, an id
// of its own, and the relation to the request's wsa:MessageID where it had one
// (there is no message to relate to otherwise). The destination is the anonymous
// address, whose wsa:To may be left out (SOAP Binding 3.5). Until 2026-12-07 only
// a request with a wsa:MessageID got any: one with wsa:Action alone (or with
// wsa:To) got an answer without WS-Addressing headers, which a stack that reads
// the answer's addressing properties refuses as lacking a required one.
func (w *xw) wsaHeaders(action string, a addressing) {
	if !a.used {
		return
	}
	w.leaf("wsa:Action", action)
	w.leaf("wsa:MessageID", "urn:uuid:"+uuidString())
	if a.messageID != "" {
		w.leaf("wsa:RelatesTo", a.messageID)
	}
}
