package federation

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/config"
)

// Metrics count what the tracker's questions to the peers came to, per peer: a
// peer that stops answering keeps its offices' decisions and replies from this
// state's portals, and only the log said so (alerts AmtsbotePeerUnanswered,
// AmtsbotePeerRepliesFailing). A nil *Metrics counts nothing.
type Metrics struct {
	questions *prometheus.CounterVec // peer, outcome: answered | failed
	replies   *prometheus.CounterVec // peer, outcome: stored | failed
	// limited: the receiving side's, a peer's status questions and signed
	// Aenderungsmeldungen answered 429 (Receiver.questionSlot); one metric for
	// the one slot they share.
	limited *prometheus.CounterVec // peer
}

// NewMetrics makes the tracker's counters, each configured peer's at zero (an
// alert compares a peer's failures with its answers, which must exist).
func NewMetrics(peers []config.Peer) *Metrics {
	m := &Metrics{
		questions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amtsbote_federation_questions_total",
			Help: "Status questions (Statusabfrage, up to 500 packages each) this gateway asked a peer gateway about the packages it forwarded there, by peer and outcome: answered (a signed answer it could read) or failed (unreachable, refused, an answer that does not verify)."},
			[]string{"peer", "outcome"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amtsbote_federation_replies_total",
			Help: "Replies of a peer's offices (Bescheid, Rückfrage) this gateway fetched for its portals, by peer and outcome: stored, or failed (unreachable, refused, bytes other than announced); a failed one is asked for again."},
			[]string{"peer", "outcome"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amtsbote_federation_questions_limited_total",
			Help: "Status questions and signed Aenderungsmeldungen of a peer gateway that this gateway answered 429 federation/too-many-questions, by peer: the peer had one of either in flight, and it did not end within 2 s (a peer sends one at a time per gateway; many at once are a broken peer)."},
			[]string{"peer"}),
	}
	for _, p := range peers {
		m.limited.WithLabelValues(p.ID)
		for _, o := range []string{"answered", "failed"} {
			m.questions.WithLabelValues(p.ID, o)
		}
		for _, o := range []string{"stored", "failed"} {
			m.replies.WithLabelValues(p.ID, o)
		}
	}
	return m
}

// Collectors are what the gateway registers.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.questions, m.replies, m.limited}
}

func (m *Metrics) questionLimited(peer string) {
	if m != nil {
		m.limited.WithLabelValues(peer).Inc()
	}
}

func (m *Metrics) asked(peer string, err error) {
	if m != nil {
		m.questions.WithLabelValues(peer, outcome(err, "answered")).Inc()
	}
}

func (m *Metrics) fetched(peer string, err error) {
	if m != nil {
		m.replies.WithLabelValues(peer, outcome(err, "stored")).Inc()
	}
}

func outcome(err error, ok string) string {
	if err != nil {
		return "failed"
	}
	return ok
}

// followedDesc: the packages the tracker asks a peer about, by kind.
var followedDesc = prometheus.NewDesc("amtsbote_federation_followed_packages",
	"Packages this gateway forwarded to a peer gateway (or, in a cluster, another gateway of it forwarded) that it asks that peer about, by peer and kind: open (the office has not decided) or decided (asked for the office's replies while the case's bytes are kept).",
	[]string{"peer", "kind"}, nil)

// trustedUntilDesc: per peer, when the last of its certificates trusted now
// ends (Trust.TrustedUntil).
var trustedUntilDesc = prometheus.NewDesc("amtsbote_federation_peer_trusted_until_timestamp_seconds",
	"When (Unix time) the last certificate of a peer gateway that the trust store trusts for the peer role now ends (peers[].certificate, or its leaf in peers/): after it nothing is sent to the peer and nothing of it taken, unless its successor is trusted by then. No series for a peer none of whose certificates is trusted now, or that is trusted through a CA only.",
	[]string{"peer"}, nil)

// Collector reports how many packages t follows per configured peer: what the
// portals wait for at the peers, and, in a cluster, whether each gateway follows
// what the others forwarded (docs/cluster.md); and until when each peer is
// trusted. The trust store's own series (amtsbote_trust_certificate_expiry_
// timestamp_seconds{role="peers"}) is the earliest end of any peer's
// certificate, a rotated one's too, and names no peer: with a peer's successor
// installed beside its old certificate, it still warned of the old one's end,
// and it never said which peer would be cut off when.
func (t *Tracker) Collector() prometheus.Collector { return followed{t} }

type followed struct{ t *Tracker }

func (f followed) Describe(ch chan<- *prometheus.Desc) {
	ch <- followedDesc
	ch <- trustedUntilDesc
}

func (f followed) Collect(ch chan<- prometheus.Metric) {
	open, decided := map[string]int{}, map[string]int{}
	f.t.mu.Lock()
	for _, p := range f.t.open {
		open[p]++
	}
	for _, e := range f.t.late {
		decided[e.peer]++
	}
	f.t.mu.Unlock()
	for _, p := range f.t.Peers {
		ch <- prometheus.MustNewConstMetric(followedDesc, prometheus.GaugeValue, float64(open[p.ID]), p.ID, "open")
		ch <- prometheus.MustNewConstMetric(followedDesc, prometheus.GaugeValue, float64(decided[p.ID]), p.ID, "decided")
		if f.t.Client == nil || f.t.Client.Trust == nil {
			continue
		}
		if until, ok := f.t.Client.Trust.TrustedUntil(p); ok {
			ch <- prometheus.MustNewConstMetric(trustedUntilDesc, prometheus.GaugeValue, float64(until.Unix()), p.ID)
		}
	}
}
