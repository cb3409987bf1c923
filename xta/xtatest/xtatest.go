// Package xtatest checks XTA 2 Version 5 messages against the official schemas
// (../shared/specs/xta2-v5 next to the repository) with xmllint.
//
// Package xta's tests and the end-to-end tests on the built binary validate with
// this one check, so that what the one accepts the other cannot refuse, and a
// change to how SOAP messages are cut into schema documents is made once. A
// missing xmllint or missing schemas fail the test; they never skip it.
package xtatest

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/xta/xtaclient"
)

// NSWSA is the WS-Addressing 1.0 namespace: its header blocks and fault details
// are checked against the ws-addr.xsd of the schema bundle's external schemas.
const NSWSA = "http://www.w3.org/2005/08/addressing"

// SchemaFile writes a driver schema that includes the official message and
// exception schemas and imports WS-Addressing, and returns its path.
func SchemaFile(t testing.TB) string {
	t.Helper()
	d := filepath.Join(testenv.RepoRoot(t), "..", "shared", "specs", "xta2-v5", "xsd")
	if _, err := os.Stat(filepath.Join(d, "XTA-Webservice.xsd")); err != nil {
		t.Fatalf("the official XTA schemas are expected at %s: %v", d, err)
	}
	p := filepath.Join(t.TempDir(), "xta-all.xsd")
	s := `<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="` + xtaclient.NS + `" elementFormDefault="qualified">
  <xs:include schemaLocation="` + filepath.Join(d, "XTA-Webservice.xsd") + `"/>
  <xs:include schemaLocation="` + filepath.Join(d, "XTA-Webservice-Exceptions.xsd") + `"/>
  <xs:import namespace="` + NSWSA + `" schemaLocation="` + filepath.Join(d, "..", "externe_Schemata", "ws-addr.xsd") + `"/>
</xs:schema>
`
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Documents cuts an XTA SOAP message into the documents the schema can validate:
// every XTA element under Header and Body, and the exception inside a Fault's
// Detail, keyed by local name; WS-Addressing elements likewise, keyed "wsa:" and
// their local name. xop:Include is replaced by the base64 of the part
// it names (the XOP infoset), so MTOM messages validate like inline ones.
func Documents(t testing.TB, root []byte, parts map[string][]byte) map[string][]byte {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(root); err != nil {
		t.Fatalf("message is not XML: %v\n%s", err, root)
	}
	env := doc.Root()
	if env == nil || env.Tag != "Envelope" || env.NamespaceURI() != xtaclient.NSSoap12 {
		t.Fatalf("message is not a SOAP 1.2 envelope:\n%s", root)
	}
	out := map[string][]byte{}
	take := func(el *etree.Element) {
		key := el.Tag
		switch el.NamespaceURI() {
		case xtaclient.NS:
		case NSWSA:
			key = "wsa:" + el.Tag
		default:
			return
		}
		cp := el.Copy()
		// Declarations made on the envelope only are carried over.
		for _, a := range env.Attr {
			if a.Space == "xmlns" && cp.SelectAttr("xmlns:"+a.Key) == nil {
				cp.CreateAttr("xmlns:"+a.Key, a.Value)
			}
		}
		for _, inc := range cp.FindElements("//Include") {
			href := inc.SelectAttrValue("href", "")
			b, ok := parts[strings.TrimPrefix(href, "cid:")]
			if !ok {
				t.Fatalf("xop:Include %q names no part", href)
			}
			parent := inc.Parent()
			parent.RemoveChild(inc)
			parent.SetText(base64.StdEncoding.EncodeToString(b))
		}
		d := etree.NewDocument()
		d.SetRoot(cp)
		b, err := d.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		out[key] = b
	}
	for _, sec := range env.ChildElements() {
		for _, el := range sec.ChildElements() {
			if el.Tag == "Fault" {
				if det := el.SelectElement("Detail"); det != nil {
					for _, x := range det.ChildElements() {
						take(x)
					}
				}
				continue
			}
			take(el)
		}
	}
	return out
}

// Validator collects documents and validates them with one xmllint run (one run
// for hundreds of documents: starting xmllint and reading the schemas costs more
// than validating one).
type Validator struct {
	t      testing.TB
	dir    string
	schema string
	files  []string
	names  []string
}

// NewValidator needs xmllint and the official schemas; without either the test fails.
func NewValidator(t testing.TB) *Validator {
	t.Helper()
	testenv.Tool(t, "xmllint", "apt-get install -y libxml2-utils")
	return &Validator{t: t, dir: t.TempDir(), schema: SchemaFile(t)}
}

// Add queues one document under a name that xmllint's messages will show.
func (v *Validator) Add(name string, doc []byte) {
	p := filepath.Join(v.dir, fmt.Sprintf("%03d.xml", len(v.files)))
	if err := os.WriteFile(p, doc, 0o644); err != nil {
		v.t.Fatal(err)
	}
	v.files = append(v.files, p)
	v.names = append(v.names, name)
}

// AddMessage queues every document of a SOAP message (Documents), as name/tag.
func (v *Validator) AddMessage(name string, root []byte, parts map[string][]byte) {
	v.t.Helper()
	for tag, doc := range Documents(v.t, root, parts) {
		v.Add(name+"/"+tag, doc)
	}
}

// Check validates what was queued and empties the queue. The error names each
// failing document by the name it was added under.
func (v *Validator) Check() error {
	if len(v.files) == 0 {
		return fmt.Errorf("xtatest: nothing to validate")
	}
	// --huge: the base64 of a resolved xop:Include of a message of the
	// field's usual size is one text node above the parser's default bound.
	args := append([]string{"--huge", "--noout", "--nonet", "--schema", v.schema}, v.files...)
	out, err := exec.Command("xmllint", args...).CombinedOutput()
	files, names := v.files, v.names
	v.files, v.names = nil, nil
	if err != nil {
		msg := string(out)
		for i, f := range files {
			msg = strings.ReplaceAll(msg, f, names[i])
		}
		return fmt.Errorf("xmllint: %w\n%s", err, msg)
	}
	return nil
}

// Run is Check, failing the test on an error and logging the count otherwise.
func (v *Validator) Run() {
	v.t.Helper()
	n := len(v.files)
	if err := v.Check(); err != nil {
		v.t.Fatal(err)
	}
	v.t.Logf("xmllint: %d documents valid against the official XTA schemas", n)
}
