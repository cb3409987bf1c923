package xta

import (
	"os/exec"
	"strings"
	"testing"
)

// TestValidatorRejects proves the schema check is not vacuous: a MessageMetaData
// without its required children and an exception with a bad element fail.
func TestValidatorRejects(t *testing.T) {
	v := newValidator(t)
	for name, doc := range map[string]string{
		"metadata": `<xta:MessageMetaData xmlns:xta="` + NS + `"><xta:XTAMessageID id="a">urn:x</xta:XTAMessageID></xta:MessageMetaData>`,
		"fault":    `<xta:PermissionDeniedException xmlns:xta="` + NS + `"><xta:Detail>x</xta:Detail></xta:PermissionDeniedException>`,
	} {
		v.add(name, []byte(doc))
		args := append([]string{"--noout", "--nonet", "--schema", v.schema}, v.files...)
		out, err := exec.Command("xmllint", args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "fails to validate") {
			t.Errorf("%s: xmllint accepted an invalid document: %s", name, out)
		}
		v.files, v.names = nil, nil
	}
	// And a minimal valid one passes.
	v.add("ok", []byte(`<xta:XTAMessageID xmlns:xta="`+NS+`" id="m">urn:de:xta:messageid:amtsbote:1</xta:XTAMessageID>`))
	v.run()
}
