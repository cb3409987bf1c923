package xta

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/xta/xtatest"
)

// stalledBody is a request body that sends its first bytes and then nothing more
// for a while: a client that keeps a big message coming.
type stalledBody struct {
	first io.Reader
	stop  <-chan time.Time
}

func (b *stalledBody) Read(p []byte) (int, error) {
	if n, err := b.first.Read(p); err != io.EOF {
		return n, err
	}
	<-b.stop
	return 0, io.ErrUnexpectedEOF
}

// TestStrangerIsRefusedBeforeTheBody: a caller whose TLS certificate belongs to no
// account (none at all, or one of the trusted CA that no office registered) is
// refused from the handshake alone. Before, the service read the whole body first
// — up to MaxMessageBytes (64 MiB), held in memory and parsed — and only then
// looked at the certificate: anyone who could open a TLS connection made the
// gateway hold 64 MiB per connection, as many connections as they liked.
func TestStrangerIsRefusedBeforeTheBody(t *testing.T) {
	v := xtatest.NewValidator(t)
	e := startEnv(t, nil)
	for _, client := range []string{"", "stranger"} {
		t.Run("client "+client, func(t *testing.T) {
			head := string(soapUIRequest(xtaA, "", `<ns:ContentContainer><ns:Message id="m">`))
			body := &stalledBody{first: io.MultiReader(strings.NewReader(head), strings.NewReader(strings.Repeat("QUFB", 16<<10))), stop: time.After(8 * time.Second)}
			req, err := http.NewRequest(http.MethodPost, e.base+PathSender, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", actionCT(portSender, "sendMessage"))
			c := e.client(client)
			c.Timeout = 5 * time.Second
			r := do(t, c, req)
			code, exc := r.fault()
			if r.status != http.StatusBadRequest || code != "env:Sender" || exc != string(PermissionDenied) {
				t.Fatalf("HTTP %d %s %s, want 400 env:Sender PermissionDeniedException\n%s", r.status, code, exc, r.root)
			}
			v.AddMessage("stranger "+client, r.root, r.parts)
		})
	}
}
