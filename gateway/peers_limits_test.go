package gateway

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/signing"
)

// TestPeerEndpointBoundsBodiesInMemory: the federation endpoint read bodies of up to
// 2 × max_body_bytes + 1 MiB whole before any signature check, as many at once as
// anyone sent (an audit took a gateway from 288 MB to 5.7 GB with 24 parallel junk
// posts). Now a body is limited to what the envelope of a package of the largest
// size needs, and the bodies in memory at once to two of those: a request that
// finds no room is answered 503 with Retry-After, never read.
func TestPeerEndpointBoundsBodiesInMemory(t *testing.T) {
	sn, by, limit := bodyLimitedPeers(t, nil)

	// A package of the largest size still fits its envelope.
	msg := paket.NewMessageID()
	pkg := packageOfSize(t, sn, msg, limitTestMaxBody)
	if code, body := sn.forwardRaw(t, by, msg, pkg); code != http.StatusCreated {
		t.Fatalf("a forwarded package of %d bytes (the limit): %d %.300s", len(pkg), code, body)
	}

	// One byte more than that envelope needs is refused before it is read.
	if code, p := postJunk(t, by.url()+federation.PathForward, limit+1); code != http.StatusRequestEntityTooLarge || p.Type != problem.TypeTooLarge {
		t.Errorf("a body of %d bytes (limit %d): %d %s", limit+1, limit, code, p.Type)
	}

	// Two uploads of the largest envelope that have sent all but their last byte
	// (the gateway asked for their bodies: 100 Continue) and stall: every other
	// request waits for room, and is answered 503 with Retry-After instead of being
	// read. (Uploads that only declared it hold no more than they sent.)
	// They come from other hosts than sn, whose address has proven itself a
	// peer's (TestPeerForwardingPassesJunkHoldingTheBodyBudget).
	var stalled []net.Conn
	for _, from := range []string{"127.0.0.2", "127.0.0.3"} {
		stalled = append(stalled, stallUploadFrom(t, from, by.addr, federation.PathForward, limit))
	}
	var code int
	var p problem.Problem
	var retry string
	for range 200 { // until the gateway has read what they sent
		if code, p, retry = postJunkFrom(t, "127.0.0.4", by.url()+federation.PathForward, 1000); code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || p.Type != problem.TypeUnavailable || retry == "" {
		t.Errorf("with two largest envelopes in memory: %d %s, Retry-After %q; want 503 %s with Retry-After", code, p.Type, retry, problem.TypeUnavailable)
	}
	for _, c := range stalled {
		c.Close()
	}
	// Their room is given back when they end.
	if code, p := postJunk(t, by.url()+federation.PathForward, 1000); code == http.StatusServiceUnavailable {
		t.Errorf("after the stalled uploads ended: %d %s", code, p.Detail)
	}

	// A status question has a limit of its own, far below an envelope's.
	sn.peer(by, "", time.Hour, "09")
	sn.start(t)
	if code, p := postJunk(t, sn.url()+federation.PathStatus, federation.MaxQueryBytes+1); code != http.StatusRequestEntityTooLarge || p.Type != problem.TypeTooLarge {
		t.Errorf("a status question of %d bytes: %d %s", federation.MaxQueryBytes+1, code, p.Type)
	}
}

// TestPeerForwardingPassesJunkHoldingTheBodyBudget: anyone may post to the
// federation endpoint, and a body is held before its signature can be
// checked. Junk of two largest envelopes, sent fast and stalled short of its
// end, held the whole body budget for http.read_timeout, and a trusted peer's
// forwarding of the largest package was answered 503 all that time (and again
// for as long as the junk came). Now the addresses a trusted peer's signed
// documents came from read their bodies within memory the others cannot
// fill: junk from other hosts still gets 503, the peer's package gets in.
func TestPeerForwardingPassesJunkHoldingTheBodyBudget(t *testing.T) {
	sn, by, limit := bodyLimitedPeers(t, nil)

	// sn has forwarded to by before (from 127.0.0.1).
	msg := paket.NewMessageID()
	if code, body := sn.forwardRaw(t, by, msg, packageOfSize(t, sn, msg, 20<<10)); code != http.StatusCreated {
		t.Fatalf("an ordinary forwarding: %d %.300s", code, body)
	}

	// Two other hosts hold the budget with junk, as in
	// TestPeerEndpointBoundsBodiesInMemory: a third gets 503.
	for _, from := range []string{"127.0.0.2", "127.0.0.3"} {
		stallUploadFrom(t, from, by.addr, federation.PathForward, limit)
	}
	var code int
	var p problem.Problem
	for range 200 { // until the gateway has read what they sent
		if code, p, _ = postJunkFrom(t, "127.0.0.4", by.url()+federation.PathForward, 1000); code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable {
		t.Fatalf("junk from a third host while two hold the budget: %d %s; want 503", code, p.Type)
	}

	// The peer's package of the largest size gets in meanwhile.
	msg = paket.NewMessageID()
	pkg := packageOfSize(t, sn, msg, limitTestMaxBody)
	if code, body := sn.forwardRaw(t, by, msg, pkg); code != http.StatusCreated {
		t.Fatalf("the peer's forwarding of %d bytes while junk holds the budget: %d %.300s", len(pkg), code, body)
	}
}

// TestNamedPeerAddressPassesJunkFromTheStart: the memory kept for peers goes to
// addresses a trusted peer's document came from, which a gateway knows only
// once one got through: after a restart during the junk, never. An address the
// operator names in peers[].addresses is the peer's from the start.
func TestNamedPeerAddressPassesJunkFromTheStart(t *testing.T) {
	sn, by, limit := bodyLimitedPeers(t, func(by *fedNode) {
		by.cfg.Peers[0].Addresses = []string{"127.0.0.1"} // sn sends from there
	})

	for _, from := range []string{"127.0.0.2", "127.0.0.3"} {
		stallUploadFrom(t, from, by.addr, federation.PathForward, limit)
	}
	var code int
	for range 200 { // until the gateway has read what they sent
		if code, _, _ = postJunkFrom(t, "127.0.0.4", by.url()+federation.PathForward, 1000); code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable {
		t.Fatalf("junk from a third host while two hold the budget: %d; want 503", code)
	}
	msg := paket.NewMessageID()
	pkg := packageOfSize(t, sn, msg, limitTestMaxBody)
	if code, body := sn.forwardRaw(t, by, msg, pkg); code != http.StatusCreated {
		t.Fatalf("the peer's first forwarding, from its named address, while junk holds the budget: %d %.300s", code, body)
	}
}

// packageOfSize is a package of n's portal of exactly size bytes (or up to 3 less:
// base64 grows in steps of 4), made so by an inline attachment.
func packageOfSize(t *testing.T, n *fedNode, messageID string, size int) []byte {
	t.Helper()
	signer, err := signing.LoadSigner(n.dir+"/pki/portal-amt24-key.pem", n.dir+"/pki/portal-amt24.pem")
	if err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 0, size)
	build := func(l int) []byte {
		for len(content) < l {
			b := make([]byte, l-len(content))
			_, _ = rand.Read(b)
			content = append(content, b...)
		}
		p := paket.ExampleWith(fedService, messageID, time.Now().UTC().Truncate(time.Second))
		p.Kopf.Ort = paket.Ort{ARS: fedMuenchenARS}
		p.Anlagen = append(p.Anlagen, paket.NewAnlage("gross", "gross.bin", "application/octet-stream", content[:l]))
		raw, err := signer.Sign(p.Element())
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	l := 0
	for range 20 {
		raw := build(l)
		switch d := size - len(raw); {
		case d >= 0 && d < 4:
			return raw
		case d > 0:
			l += max(d*3/4, 1)
		default:
			l -= max(-d*3/4, 1)
		}
	}
	t.Fatalf("no package of %d bytes", size)
	return nil
}

func postJunk(t *testing.T, url string, n int64) (int, problem.Problem) {
	t.Helper()
	code, p, _ := postJunkFull(t, url, n)
	return code, p
}

// postJunkFull posts n bytes that are no envelope, with their length declared.
func postJunkFull(t *testing.T, url string, n int64) (int, problem.Problem, string) {
	t.Helper()
	return postJunkFrom(t, "", url, n)
}

// postJunkFrom is postJunkFull from the local address from ("": any).
func postJunkFrom(t *testing.T, from, url string, n int64) (int, problem.Problem, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, io.LimitReader(junk{}, n))
	req.ContentLength = n
	req.Header.Set("Content-Type", federation.ContentType)
	c := &http.Client{Transport: &http.Transport{DialContext: dialerFrom(from).DialContext, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p problem.Problem
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &p)
	return resp.StatusCode, p, resp.Header.Get("Retry-After")
}

// dialerFrom dials from the local address from ("": any).
func dialerFrom(from string) *net.Dialer {
	d := &net.Dialer{}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return d
}

type junk struct{}

func (junk) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = 'x'
	}
	return len(b), nil
}

// stallUploadFrom starts a POST of n declared bytes from the local address from
// (a loopback address other than 127.0.0.1 stands for another host; "": any)
// that asks first (Expect: 100-continue), so the gateway's 100 Continue says its
// handler reads the body; then it sends a little and stalls.
func stallUploadFrom(t *testing.T, from, addr, path string, n int64) net.Conn {
	t.Helper()
	c, err := dialerFrom(from).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", path, addr, n)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("a stalled upload: %q %v, want 100 Continue", line, err)
	}
	// All but the last byte: a body holds of the budget what has arrived
	// (httpbody.FirstBytes), so a stall must have sent its bytes to hold them.
	_, _ = io.Copy(c, bytes.NewReader(bytes.Repeat([]byte("x"), int(n-1))))
	return c
}

// limitTestMaxBody is the largest package the body-limit tests' peer takes.
const limitTestMaxBody = 256 << 10

// bodyLimitedPeers starts Saxony's node and Bavaria's peer, whose largest
// package is limitTestMaxBody (configured further by setup, if given, before it
// starts); limit is that package's envelope, the peer's body limit.
func bodyLimitedPeers(t *testing.T, setup func(by *fedNode)) (sn, by *fedNode, limit int64) {
	t.Helper()
	sn = newFedNode(t, "amtsbote-sn")
	by = newMunichPeer(t, sn)
	by.cfg.Limits.MaxBodyBytes = limitTestMaxBody
	if setup != nil {
		setup(by)
	}
	by.start(t)
	return sn, by, federation.EnvelopeBytes(limitTestMaxBody)
}
