package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
)

// TestPeerRepeatWithPartsReachesAPeerThatSendsFirst: a repeated forwarding with
// attachments (the same package by the same peer, multipart/related) is
// answered 200 once its envelope is checked, with its parts unread. The
// gateway closed the connection with them unread, the kernel reset it, and a
// peer that sends the whole request before it reads the answer saw
// "connection reset" instead of the 200 and retried. Now the rest is read
// and discarded up to the attachments' signed sizes plus framing, as the
// portal API does for a repeated upload. The attachment is larger than the
// loopback connection's buffers hold, so that an unread rest cannot hide in
// them.
func TestPeerRepeatWithPartsReachesAPeerThatSendsFirst(t *testing.T) {
	sn, by := newFedNode(t, "amtsbote-sn"), newFedNode(t, "amtsbote-by")
	fedTrust(t, sn, by)
	by.office("09", "09162", "muenchen-kvr", fedHook(t))
	by.peer(sn, "", time.Hour, "14")
	by.start(t) // sn does not run: it only signs

	pkiDir := filepath.Join(sn.dir, "pki")
	portalSigner, err := signing.LoadSigner(filepath.Join(pkiDir, "portal-amt24-key.pem"), filepath.Join(pkiDir, "portal-amt24.pem"))
	if err != nil {
		t.Fatal(err)
	}
	messageID := paket.NewMessageID()
	p := paket.ExampleWith(fedService, messageID, time.Now().UTC().Truncate(time.Second))
	p.Kopf.Ort = paket.Ort{ARS: fedMuenchenARS}
	a, part := refAnlage("scan", randomBytes(24<<20))
	p.Anlagen = append(p.Anlagen, a)
	pkg, err := portalSigner.Sign(p.Element())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := federation.SignerCertificate(pkg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	env := &federation.Envelope{ForwardingID: "d-" + messageID, From: sn.id, To: by.id, At: now, Sender: "amt24", MessageID: messageID,
		LeikaKey: fedService, ReceiptSHA256: strings.Repeat("0", 64), SenderCert: cert, Package: pkg,
		Chain: []federation.Hop{{Gateway: sn.id, SubmissionID: "s-" + messageID, At: now}}}
	doc, err := env.Sign(sn.gatewaySigner(t))
	if err != nil {
		t.Fatal(err)
	}
	ctype, body := mpBody(t, []mpPart{{ctype: federation.ContentType, body: doc}, part})

	resp, err := http.Post(by.url()+federation.PathForward, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the first forwarding: %d %.300s", resp.StatusCode, first)
	}

	conn, err := net.Dial("tcp", by.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A small send buffer: the gateway's receive buffer is all that could take
	// the rest of the body without the gateway reading it.
	_ = conn.(*net.TCPConn).SetWriteBuffer(64 << 10)
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", federation.PathForward, by.addr, ctype, len(body))
	resp, again, err := testenv.SendFirst(conn, head, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("a peer that sends its repeat (%d bytes) before it reads: %v", len(body), err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(again, first) {
		t.Fatalf("the repeat: %d, the first receipt again: %v: %.300s", resp.StatusCode, bytes.Equal(again, first), again)
	}
	// Declared: a peer that reads the answer while it sends knows it whole
	// before the connection closes.
	if resp.ContentLength != int64(len(again)) {
		t.Errorf("the receipt is %d bytes, declared %d (Transfer-Encoding %v)", len(again), resp.ContentLength, resp.TransferEncoding)
	}
}
