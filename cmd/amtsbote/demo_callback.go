package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/config"
)

// demoPortalCallback is Amt24's callback endpoint in the demo: it checks both
// signature sets of the gateway's new-events callbacks and says which submissions
// have news, as a portal would before it reads their status.
type demoPortalCallback struct {
	srv    *http.Server
	url    string
	secret string
	news   chan []string // the ids of each verified callback
}

func startDemoPortalCallback(out *printer) (*demoPortalCallback, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &demoPortalCallback{url: "http://" + ln.Addr().String() + "/amt24/callback", secret: webhook.NewSecret(), news: make(chan []string, 64)}
	d.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			err = webhook.Verify(r.Header, raw, d.secret, time.Now(), 0)
		}
		var b struct {
			SubmissionIDs []string `json:"submissionIds"`
		}
		if err == nil {
			err = json.Unmarshal(raw, &b)
		}
		if err != nil {
			out.say("Amt24", "callback refused: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		out.say("Amt24", "callback (FIT-Connect new-events, signatures valid): news for %s", strings.Join(b.SubmissionIDs, ", "))
		select {
		case d.news <- b.SubmissionIDs:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = d.srv.Serve(ln) }()
	return d, nil
}

// portal is Amt24's client configuration with this callback endpoint.
func (d *demoPortalCallback) portal() config.PortalClient {
	return config.PortalClient{Token: demoToken(), Callback: &config.PortalCallback{Endpoint: d.url, Secret: d.secret}}
}

// demoToken is a bearer token for one demo run (128 random bits, hex).
func demoToken() string {
	var tok [16]byte
	_, _ = rand.Read(tok[:]) // crypto/rand does not fail (Go 1.24)
	return hex.EncodeToString(tok[:])
}

func (d *demoPortalCallback) close() { _ = d.srv.Close() }

// await waits up to within for a callback naming id that arrives from now on: the
// one that carries the last events, after which the portal reads the status.
func (d *demoPortalCallback) await(id string, within time.Duration) bool {
	t := time.NewTimer(within)
	defer t.Stop()
	for {
		select {
		case ids := <-d.news:
			if slices.Contains(ids, id) {
				return true
			}
		case <-t.C:
			return false
		}
	}
}
