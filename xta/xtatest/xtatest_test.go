package xtatest

import (
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/xta/xtaclient"
)

// TestValidatorRejects proves the schema check is not vacuous: a MessageMetaData
// without its required children and an exception with a bad element fail, each
// on its own, and a minimal valid document passes.
func TestValidatorRejects(t *testing.T) {
	v := NewValidator(t)
	for name, doc := range map[string]string{
		"metadata": `<xta:MessageMetaData xmlns:xta="` + xtaclient.NS + `"><xta:XTAMessageID id="a">urn:x</xta:XTAMessageID></xta:MessageMetaData>`,
		"fault":    `<xta:PermissionDeniedException xmlns:xta="` + xtaclient.NS + `"><xta:Detail>x</xta:Detail></xta:PermissionDeniedException>`,
		"wsa":      `<wsa:ProblemAction xmlns:wsa="` + NSWSA + `"><wsa:SoapAction>urn:a</wsa:SoapAction><wsa:Action>urn:b</wsa:Action></wsa:ProblemAction>`,
	} {
		v.Add(name, []byte(doc))
		err := v.Check()
		if err == nil || !strings.Contains(err.Error(), "fails to validate") || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: xmllint accepted an invalid document, or the error does not name it: %v", name, err)
		}
	}
	v.Add("ok", []byte(`<xta:XTAMessageID xmlns:xta="`+xtaclient.NS+`" id="m">urn:de:xta:messageid:amtsbote:1</xta:XTAMessageID>`))
	v.Add("ok-wsa", []byte(`<wsa:ProblemAction xmlns:wsa="`+NSWSA+`"><wsa:Action>urn:b</wsa:Action><wsa:SoapAction>urn:a</wsa:SoapAction></wsa:ProblemAction>`))
	v.Run()
}

// TestDocumentsResolvesXOP: an MTOM message's xop:Include becomes the base64 of
// its part, a Fault's exception is taken from its Detail, a WS-Addressing header
// is taken, and another non-XTA header element is left out.
func TestDocumentsResolvesXOP(t *testing.T) {
	env := `<soap:Envelope xmlns:soap="` + xtaclient.NSSoap12 + `" xmlns:xta="` + xtaclient.NS + `" xmlns:xop="http://www.w3.org/2004/08/xop/include">
<soap:Header><other xmlns="urn:x"/><wsa:Action xmlns:wsa="` + NSWSA + `">urn:a</wsa:Action></soap:Header>
<soap:Body><xta:GenericContentContainer><xta:ContentContainer><xta:Message contentType="text/plain" id="m"><xop:Include href="cid:p1"/></xta:Message></xta:ContentContainer></xta:GenericContentContainer>
<soap:Fault><soap:Detail><xta:PermissionDeniedException><xta:ErrorCode/></xta:PermissionDeniedException></soap:Detail></soap:Fault></soap:Body></soap:Envelope>`
	docs := Documents(t, []byte(env), map[string][]byte{"p1": []byte("AB")})
	if len(docs) != 3 || docs["wsa:Action"] == nil {
		t.Fatalf("documents %v, want wsa:Action, GenericContentContainer and PermissionDeniedException", keys(docs))
	}
	if c := string(docs["GenericContentContainer"]); !strings.Contains(c, ">QUI=<") || strings.Contains(c, "Include") {
		t.Errorf("xop:Include not resolved to the part's base64:\n%s", c)
	}
	if _, ok := docs["PermissionDeniedException"]; !ok {
		t.Errorf("the Fault's exception is missing: %v", keys(docs))
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestValidatorTakesLargeContent: a message of the field's usual size (some
// tens of MB) is one text node of base64 once its xop:Include is resolved;
// xmllint refused any text node above 10 MB ("huge text node") unless told
// otherwise, so a test could not check a large getMessage answer.
func TestValidatorTakesLargeContent(t *testing.T) {
	v := NewValidator(t)
	env := `<soap:Envelope xmlns:soap="` + xtaclient.NSSoap12 + `" xmlns:xta="` + xtaclient.NS + `" xmlns:xop="http://www.w3.org/2004/08/xop/include">
<soap:Body><xta:ContentContainer><xta:Message contentType="application/pdf" filename="scan.pdf" id="m"><xop:Include href="cid:p1"/></xta:Message></xta:ContentContainer></soap:Body></soap:Envelope>`
	v.AddMessage("a message of 12 MB", []byte(env), map[string][]byte{"p1": make([]byte, 12<<20)})
	v.Run()
}
