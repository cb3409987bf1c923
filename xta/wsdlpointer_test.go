package xta

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestGetOfAPortSaysWhereTheWSDLIs: a vendor points its tool (wsimport, CXF's
// wsdl2java, Visual Studio's service reference, SoapUI) or a browser at
// <endpoint>?wsdl. The gateway does not serve the WSDL (docs/xta.md, "The
// WSDL"); it answered such a GET with a SOAP fault (ParameterIsNotValidException,
// HTTP 400), which a tool reports as an unreadable WSDL and a browser shows as
// XML that names no WSDL. It answers now in plain text where the official WSDL
// is and which address each port has: 404 for ?wsdl (and other queries, ?xsd=,
// ?singleWsdl), 405 with Allow: POST for the port itself, 404 for a path that
// is no port. It asks no certificate: the text is the standard's, the ports'
// paths are public. A POST is served as before.
func TestGetOfAPortSaysWhereTheWSDLIs(t *testing.T) {
	e := startEnv(t, nil)
	for _, tc := range []struct {
		name, client, method, path string
		status                     int
	}{
		{"?wsdl of Recipient", "office-a", http.MethodGet, PathRecipient + "?wsdl", http.StatusNotFound},
		{"?WSDL of Sender, no certificate", "", http.MethodGet, PathSender + "?WSDL", http.StatusNotFound},
		{"?singleWsdl of TransportBase", "office-a", http.MethodGet, PathTransportBase + "?singleWsdl", http.StatusNotFound},
		{"?xsd= of Recipient", "office-a", http.MethodGet, PathRecipient + "?xsd=1", http.StatusNotFound},
		{"the port in a browser", "", http.MethodGet, PathRecipient, http.StatusMethodNotAllowed},
		{"HEAD of the port", "office-a", http.MethodHead, PathSender, http.StatusMethodNotAllowed},
		{"?wsdl of the service path", "office-a", http.MethodGet, "/services/XTACore?wsdl", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(tc.client) // "": no client certificate
			req, _ := http.NewRequest(tc.method, e.base+tc.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
				t.Fatalf("%s %s: HTTP %d %s, want %d text/plain\n%s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, body)
			}
			if tc.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow %q, want POST", resp.Header.Get("Allow"))
			}
			if tc.method == http.MethodHead {
				return
			}
			for _, want := range []string{"xta-core.wsdl", "urn:xoev-de:kosit:standard:xta2", "5.1.1", "REPLACE_WITH_ACTUAL_URL",
				PathRecipient, PathSender, PathTransportBase} {
				if !strings.Contains(string(body), want) {
					t.Errorf("the answer does not name %q:\n%s", want, body)
				}
			}
		})
	}
	// A SOAP request is served as before.
	r := post(t, e.client("office-a"), e.base+PathTransportBase, actionCT(portTransportBase, "checkAccountActive"), soapUIRequest(xtaA, "", ""))
	mustOK(t, "checkAccountActive", r)
}
