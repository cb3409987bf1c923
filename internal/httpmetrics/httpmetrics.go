// Package httpmetrics counts the gateway's HTTP requests by route and status for
// every face in one pair of series, amtsbote_http_requests_total and
// amtsbote_http_request_seconds: the REST API with the faces mounted into it, and
// the XTA face on its listener of its own, which had no metrics at all, so its 5xx
// never reached the AmtsboteServerErrors alert. A third,
// amtsbote_http_problems_total, counts the problem documents among the answers
// by their type: the status alone did not say why packages were refused.
// problem.Write notes the type on the writer Observe gave the handler (its
// NoteProblem method, found through the writers' Unwrap chain by
// httpunwrap.Find, as NoteFault finds it) by an interface of its own, so that api/problem, which the portal
// and office client libraries import, does not import this package and the
// Prometheus library with it.
package httpmetrics

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtsbote/amtsbote/internal/httpunwrap"
)

// The SOAP 1.2 fault codes a SOAP face notes (NoteFault) as the soap_fault label.
// The SOAP HTTP binding answers every fault but a Sender one with HTTP 500, also
// those the caller's request caused (MustUnderstand, VersionMismatch): the label
// lets the 5xx alert leave those out, while the status stays the one sent.
const (
	FaultSender          = "Sender"
	FaultReceiver        = "Receiver"
	FaultMustUnderstand  = "MustUnderstand"
	FaultVersionMismatch = "VersionMismatch"
)

// Metrics are the request counter and latency histogram; one for the gateway,
// shared by its faces.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	problems *prometheus.CounterVec
}

// New makes the series; register them with Collectors.
func New() *Metrics {
	return &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtsbote_http_requests_total",
			Help: "HTTP requests by route and status; soap_fault is the SOAP 1.2 fault code of an XTA fault (Sender, Receiver, MustUnderstand, VersionMismatch), empty for every other answer."},
			[]string{"route", "status", "soap_fault"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "amtsbote_http_request_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 10)}, []string{"route"}),
		// Bounded: some 40 route patterns (those of the router and its mounts,
		// "unmatched") times the 32 listed types and "other" (problem.Label);
		// a route answers a few types of its own, so in practice a hundred or
		// two. No series is made ahead: all of them would be some 1,300 series
		// of zeros, and the alert on a stream of refusals
		// (AmtsboteSubmissionsRefusedSignature, for 15 minutes) does not need
		// the first count, which a series that appears with it loses to rate().
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtsbote_http_problems_total",
			Help: "Problem documents (application/problem+json) answered, by route and problem type: the type URI without https://amtsbote.de/problems/ (untrusted-signer, federation/misdirected, …; docs/problems.md), other for a type the gateway does not list."},
			[]string{"route", "type"}),
	}
}

// Collectors are the series to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.latency, m.problems}
}

// Observe logs and counts each request next serves under route(r), asked once
// next has served it (a router knows the pattern only then). Paths and bodies can
// carry personal data, so the label and the log have the route, not the path.
func (m *Metrics) Observe(next http.Handler, route func(*http.Request) string, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		rt := route(r)
		if sw.status == 0 {
			sw.status = 200
		}
		d := time.Since(start)
		m.requests.WithLabelValues(rt, strconv.Itoa(sw.status), sw.fault).Inc()
		m.latency.WithLabelValues(rt).Observe(d.Seconds())
		if sw.problem != "" {
			m.problems.WithLabelValues(rt, sw.problem).Inc()
		}
		log.Debug("http", "method", r.Method, "route", rt, "status", sw.status, "ms", d.Milliseconds())
	})
}

// NoteFault records code (FaultSender, …) as the soap_fault label of the answer
// w writes, found through the writers' Unwrap chain; without an Observe around
// w it does nothing.
func NoteFault(w http.ResponseWriter, code string) {
	if sw, ok := httpunwrap.Find[*statusWriter](w); ok {
		sw.fault = code
	}
}

type statusWriter struct {
	http.ResponseWriter
	status  int
	fault   string
	problem string // the type of the problem document answered (NoteProblem)
}

// NoteProblem records typ, a problem type's short name (problem.Label, bounded
// as a label must be), as the type of the problem document about to be
// answered; problem.Write calls it before WriteHeader. Once a status is sent,
// the answer is what was sent then (a download cut off midway), not this
// document, and it is not counted as a problem.
func (w *statusWriter) NoteProblem(typ string) {
	if w.status == 0 {
		w.problem = typ
	}
}

func (w *statusWriter) WriteHeader(c int) {
	if w.status == 0 {
		w.status = c
	}
	w.ResponseWriter.WriteHeader(c)
}

// Unwrap lets http.ResponseController reach the connection (the upload deadlines of
// multipart intake, the paced downloads).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return w.ResponseWriter.Write(b)
}
