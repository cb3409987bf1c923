package xta

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// manyAttributes is a start tag's attributes, n of them.
func manyAttributes(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ` a%x=""`, i)
	}
	return b.String()
}

// TestMarkupIsBounded: a message of many tiny elements or attributes is refused
// before it is decoded. encoding/xml builds a value for every child of the Body
// and every attribute of a header block: a 64 MiB request of "<a/>" held 1.4 GiB
// and took 37 s of CPU to parse, one of attributes 1.3 GiB — a few such requests
// from an office's system (or, through the push adapter, an office's answer) and
// the gateway ran out of memory.
func TestMarkupIsBounded(t *testing.T) {
	for _, tc := range []struct{ name, header, body string }{
		{"elements", "", strings.Repeat("<a/>", 1<<20)},
		{"attributes", `<h` + manyAttributes(200_000) + `/>`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := []byte(`<env:Envelope xmlns:env="` + NSSoap12 + `"><env:Header>` + tc.header + `</env:Header><env:Body>` + tc.body + `</env:Body></env:Envelope>`)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := parseMessage("application/soap+xml", bytes.NewReader(msg), 64<<20)
			runtime.ReadMemStats(&after)
			if f := asFault(err); err == nil || f.Exception != ParameterIsNotValid {
				t.Errorf("a message of %d bytes of %s: %v, want ParameterIsNotValid", len(msg), tc.name, err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*uint64(len(msg)) {
				t.Errorf("parsing %d bytes allocated %d MiB", len(msg), alloc>>20)
			}
		})
	}

	// Through the service: the limit's fault, and a message at the limit still served.
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	r := post(t, e.client("office-a"), e.base+PathSender, actionCT(portSender, "createMessageID"),
		soapUIRequest(xtaA, `<x:h xmlns:x="urn:x">`+strings.Repeat("<x:a/>", maxElements)+`</x:h>`, ""))
	if code, exc := r.fault(); r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(ParameterIsNotValid) {
		t.Errorf("too many elements: HTTP %d %s %s, want 400 env:Sender ParameterIsNotValidException\n%.2000s", r.status, code, exc, r.root)
	}
	v.AddMessage("too many elements", r.root, r.parts)
	ids := strings.Repeat(`<ns:XTAMessageID>urn:de:xta:messageid:amtsbote:01a24465-546b-7381-aa58-b2b6fcdd191e</ns:XTAMessageID>`, maxStatusList)
	r = post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "getStatusList"),
		soapUIRequest(xtaA, "", `<ns:MessageSelector><ns:XTAMessageIDs>`+ids+`</ns:XTAMessageIDs></ns:MessageSelector>`))
	mustOK(t, "getStatusList of 1000 ids", r)
	v.AddMessage("getStatusList of 1000 ids", r.root, r.parts)
	v.Run()
}
