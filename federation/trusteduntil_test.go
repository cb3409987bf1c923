package federation

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

// TestPeerTrustedUntilFollowsItsSuccessor: the trust store's expiry series
// (role peers) is the earliest end of any peer certificate it holds and names
// no peer: with a peer's renewed certificate beside its old one it still warned
// of the old one's end, and the operator could not tell which peer would be
// cut off when. amtsbote_federation_peer_trusted_until_timestamp_seconds{peer}
// is when the last certificate of that peer trusted now ends: the old one's
// end alone, the successor's once it is installed, nothing for a peer none of
// whose certificates is trusted.
func TestPeerTrustedUntilFollowsItsSuccessor(t *testing.T) {
	now := time.Now()
	_, old := signingtest.SelfSigned(t, "amtsbote-by", now.Add(-300*24*time.Hour), now.Add(10*24*time.Hour))
	_, next := signingtest.SelfSigned(t, "amtsbote-by", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	store := signing.NewTrustStore()
	if err := store.Add(signing.RolePeer, old); err != nil {
		t.Fatal(err)
	}
	peers := []config.Peer{{ID: "amtsbote-by", Lands: []string{"09"}, BaseURL: "http://by.invalid"},
		{ID: "amtsbote-nw", Lands: []string{"05"}, BaseURL: "http://nw.invalid"}}
	tr, err := NewTrust(TrustOptions{Self: "amtsbote-sn", Store: store, Peers: peers})
	if err != nil {
		t.Fatal(err)
	}
	tk := &Tracker{Peers: peers, Client: &Client{Trust: tr}}
	until := func() map[string]int64 {
		t.Helper()
		reg := prometheus.NewRegistry()
		reg.MustRegister(tk.Collector())
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, mf := range mfs {
			if mf.GetName() != "amtsbote_federation_peer_trusted_until_timestamp_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				out[label(m, "peer")] = int64(m.GetGauge().GetValue())
			}
		}
		return out
	}
	if got := until(); len(got) != 1 || got["amtsbote-by"] != old.NotAfter.Unix() {
		t.Errorf("with the old certificate only: %v, want amtsbote-by at its end %d (and no series for amtsbote-nw)", got, old.NotAfter.Unix())
	}
	if err := store.Add(signing.RolePeer, next); err != nil {
		t.Fatal(err)
	}
	if got := until(); got["amtsbote-by"] != next.NotAfter.Unix() {
		t.Errorf("with the successor beside it: %v, want its end %d", got, next.NotAfter.Unix())
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
