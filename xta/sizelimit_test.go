package xta

import (
	"strconv"
	"strings"
	"testing"
)

// TestMessageLimitIsExact: MaxMessageBytes is what a request may send; one byte
// more is refused as too large (ParameterIsNotValidException naming the limit),
// not read and answered. The body reader the server wraps around the request
// allows one byte beyond the limit (so that the parser sees there is more):
// the parser's own count is what refuses that byte.
func TestMessageLimitIsExact(t *testing.T) {
	const limit = 64 << 10
	e := startEnv(t, func(o *Options) { o.MaxMessageBytes = limit })
	c := e.client("office-a")
	rec := e.base + PathRecipient
	statusCT := actionCT(portRecipient, "getStatusList")
	okBody := statusListBody(false, 1, zeroTime, zeroTime)
	sized := func(n int) []byte {
		bare := soapUIRequest(xtaA, "<!---->", okBody)
		req := soapUIRequest(xtaA, "<!--"+strings.Repeat("A", n-len(bare))+"-->", okBody)
		if len(req) != n {
			t.Fatalf("built a request of %d bytes, want %d", len(req), n)
		}
		return req
	}
	if r := post(t, c, rec, statusCT, sized(limit)); r.status != 200 {
		code, exc := r.fault()
		t.Fatalf("a request of exactly the limit: HTTP %d %s %s", r.status, code, exc)
	}
	r := post(t, c, rec, statusCT, sized(limit+1))
	code, exc := r.fault()
	if r.status != 400 || code != "env:Sender" || exc != "ParameterIsNotValidException" ||
		!strings.Contains(string(r.root), "exceeds the limit of "+strconv.Itoa(limit)+" bytes") {
		t.Fatalf("a request one byte over the limit: HTTP %d %s %s\n%.2000s", r.status, code, exc, r.root)
	}
}
