package peer

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/paket"
)

// TestConfirmedOnlyForTheMessageAsked: a peer's report that also lists another
// message of the same portal as delivered (a peer answering more than it was
// asked) confirms nothing of this delivery: the Zustellbestaetigung would name
// an office that never got this package.
func TestConfirmedOnlyForTheMessageAsked(t *testing.T) {
	a, s := hopSetup(t, nil)
	// The stub peer, except that its status report lies once lying is set.
	var lying atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != federation.PathStatus || !lying.Load() {
			s.serve(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		q := s.query(w, body)
		if q == nil {
			return
		}
		at := time.Now().UTC()
		rp := &federation.Report{From: stubPeer, To: q.From, At: at}
		for _, ref := range q.Refs {
			rp.Items = append(rp.Items, federation.Status{Ref: ref, State: "queued"},
				federation.Status{Ref: federation.Ref{Sender: ref.Sender, MessageID: "other-" + ref.MessageID},
					State: "delivered", Receiver: "Stub office", DeliveredAt: &at})
		}
		doc, err := rp.Sign(s.signer)
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	d := adaptertest.NewDelivery(s.Target())
	d.Target.Endpoint = srv.URL
	if _, err := a.Deliver(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("Confirmed before anything was delivered: %v %v", ok, err)
	}
	lying.Store(true)
	if c, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("Confirmed by another message's state: %+v %v %v", c, ok, err)
	}
}

// TestOnlyThePackagesOwnAnlagenAreParts: the parts sent after the envelope
// are the Anlagen of the package itself (Antragspaket/Anlagen/Anlage in the
// package's namespace). An element "Anlagen" of another namespace directly
// under the root, with an Anlage that has a Referenz, is none.
func TestOnlyThePackagesOwnAnlagenAreParts(t *testing.T) {
	pkg := []byte(`<Antragspaket xmlns="` + paket.Namespace + `">` +
		`<x:Anlagen xmlns:x="urn:example:portal-extension"><Anlage ID="a1" Referenz="cid:a1@portal"/></x:Anlagen>` +
		`</Antragspaket>`)
	atts := []adapters.Attachment{{ID: "other", Open: adaptertest.Opener([]byte("x"))}}
	parts, err := referencedParts(pkg, atts)
	if err != nil || len(parts) != 0 {
		t.Fatalf("referencedParts: %v %v, want none", parts, err)
	}
}
