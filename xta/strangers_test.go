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

// TestRequestBytesAreBounded: a message is read whole and parsed, held several
// times over while it is decoded; an office's system sending big messages in
// parallel had no bound but the connections it opened. The bytes in memory at
// once are bounded now (two messages of the largest size, taken as they arrive):
// a request that finds no room within bodyWait gets a TechnicalProblemException
// (retry later) without being read, and one that came after the others ended is
// served.
func TestRequestBytesAreBounded(t *testing.T) {
	const limit = 256 << 10
	e := startEnv(t, func(o *Options) { o.MaxMessageBytes = limit })
	head := string(soapUIRequest(xtaA, "", `<ns:ContentContainer><ns:Message id="m">`))
	var pipes []*io.PipeWriter
	for range bodyMemory {
		pr, pw := io.Pipe()
		pipes = append(pipes, pw)
		req, err := http.NewRequest(http.MethodPost, e.base+PathSender, pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = limit
		req.Header.Set("Content-Type", actionCT(portSender, "sendMessage"))
		go func() {
			if res, err := e.client("office-a").Do(req); err == nil {
				res.Body.Close()
			}
		}()
		// All but the last byte: in memory, as much as a message may be.
		if _, err := pw.Write([]byte(head + strings.Repeat("Q", limit-1-len(head)))); err != nil {
			t.Fatal(err)
		}
	}
	busy := func() *soapResp {
		return post(t, e.client("office-a"), e.base+PathRecipient, actionCT(portRecipient, "getStatusList"),
			soapUIRequest(xtaA, "", `<ns:MessageSelector><ns:OtherCriteria/></ns:MessageSelector>`))
	}
	var r *soapResp
	for range 50 { // until the server has read what the two sent
		if r = busy(); r.status != http.StatusOK {
			break
		}
	}
	if code, exc := r.fault(); exc != string(TechnicalProblem) || code != "env:Receiver" || !strings.Contains(string(r.root), "retry later") {
		t.Fatalf("a request while two messages of the largest size are read: HTTP %d %s %s, want a TechnicalProblemException to retry\n%s", r.status, code, exc, r.root)
	}
	for _, pw := range pipes {
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}
	deadline := time.Now().Add(30 * time.Second)
	for busy().status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the budget did not come free after the two messages ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
