// Package api is the gateway's HTTP interface (chi): package intake for portals, the
// status API, the pull API for offices, the directory endpoints (directory.go),
// admin operations, health and metrics. The JSON shapes, paths and headers are
// package wire's; views.go maps the storage model onto them. Every error is
// application/problem+json with a stable type URI (api/problem), mapped by the one
// error table ProblemFor; bad input never yields a 5xx.
package api

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/internal/httpmetrics"
	"github.com/amtsbote/amtsbote/internal/keylock"
	"github.com/amtsbote/amtsbote/internal/repeatlimit"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// Options wires the server to the rest of the gateway.
type Options struct {
	Pipeline *intake.Pipeline
	Broker   *broker.Broker
	// Desk is the office side every office-facing face reads and decides through.
	Desk         broker.OfficeDesk
	Directory    *routing.Store
	Clients      *Clients
	MaxBodyBytes int64
	// BodyBudget bounds the bytes of packages held in memory at once, from reading
	// a body to the end of its intake (nil: no bound; the gateway sets
	// limits.body_memory).
	BodyBudget *httpbody.Budget
	Logger     *slog.Logger
	Registry   *prometheus.Registry // metrics are served from here
	// HTTPMetrics count the requests (amtsbote_http_requests_total and
	// _request_seconds), shared with the gateway's other listeners (the XTA
	// face), whose owner registers them; nil: New makes its own, in Registry.
	HTTPMetrics *httpmetrics.Metrics
	// Reload re-reads the directory files and the trust store on every gateway
	// it reaches (admin endpoint; in a cluster, every gateway) and returns each
	// one's result; its error means it could not ask them. Without it there is
	// no reload endpoint.
	Reload func(context.Context) ([]NodeReload, error)
	// Ready reports whether the gateway can take packages (an error: not at all, e.g.
	// draining) and what is degraded.
	Ready func() (Readiness, error)
	// StoreDown, if set, says why the store is known to be out of reach now (nil:
	// it answers). The portal, office and admin routes then answer 503 at once
	// instead of waiting out the store's timeout (storeGate).
	StoreDown func() error
	// Schemas are served under /v1/schemas/{name}.
	Schemas map[string][]byte
	// Mounts are the other faces of the gateway (the web mailbox, the XTA service,
	// the peer endpoint), by path prefix without a trailing slash ("/postfach"). They
	// get the same recovery, metrics and header limits; the handler sees the full path.
	Mounts map[string]http.Handler
	// MaxHeaderBytes bounds the request line plus headers (default MaxHeaderBytes);
	// a larger request is answered 431 with a problem document. The http.Server's own
	// limit must be higher (ServerMaxHeaderBytes), or net/http answers first, in plain text.
	MaxHeaderBytes int
	// MaxUploadBytes bounds a whole multipart/related request: the root part
	// (MaxBodyBytes) plus every attachment part (their declared sizes, at most
	// paket.Limits.MaxReferencedTotal) plus framing. Default MaxBodyBytes + 4 GiB +
	// 1 MiB.
	MaxUploadBytes int64
	// UploadWindow and UploadMinRate are the progress rule of multipart uploads,
	// which may take far longer than the server's ReadTimeout: each window a request
	// must deliver UploadWindow×UploadMinRate bytes or its connection is closed.
	// Defaults 60 s and 16 KiB/s (128 kbit/s, a slow mobile link).
	UploadWindow  time.Duration
	UploadMinRate int64
	// WriteTimeout is the server's write timeout, set again for the response of an
	// upload that outlived it (default 60 s).
	WriteTimeout time.Duration
	// Backup writes a consistent copy of the store to w as a tar stream while the
	// gateway runs (store.DB.Backup), served at GET /v1/admin/backup; nil when the
	// store has none here (cluster mode: JetStream's own backups).
	Backup func(ctx context.Context, w io.Writer) error
}

// MaxHeaderBytes is the default bound of request line plus headers.
const MaxHeaderBytes = 64 << 10

// ServerMaxHeaderBytes is what the http.Server in front of the handler should allow,
// so that requests between MaxHeaderBytes and this reach the handler and get a
// problem document. Beyond it net/http answers 431 itself.
const ServerMaxHeaderBytes = 1 << 20

// Server is the HTTP handler.
type Server struct {
	opt Options
	log *slog.Logger
	mux chi.Router
	reg *prometheus.Registry

	metrics *httpmetrics.Metrics

	// busyLog, unavailableLog, certLog: the log line of a 503 comes once a minute
	// (per kind: busy, the store, the gateway certificate), not once per request:
	// an overloaded gateway refuses hundreds a second, and the line then drowned
	// everything else (docs/operations.md "Overload").
	busyLog, unavailableLog, certLog repeatlimit.Limit

	// refused counts bearer tokens sent but not taken, by the kind of client the
	// route is for; refusedLog says so in the log once a minute. A token guessed
	// at (nothing limits the attempts: a token's length is its only defence) was
	// visible only in the access log at DEBUG (an audit, 2026-12-06).
	refused    *prometheus.CounterVec
	refusedLog repeatlimit.Limit
	refusedN   atomic.Int64 // refusals since the last log line

	backingUp atomic.Bool // one backup at a time

	// replyKeys serialises, per case and Idempotency-Key, a reply's look for
	// its key and its store (officeReply says why).
	replyKeys keylock.Locks
	// lastBackup and lastBackupBytes: when the last whole backup was sent, and its
	// size, so that a missing nightly backup can be alerted on.
	lastBackup, lastBackupBytes prometheus.Gauge
}

// New builds the handler.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 32 << 20
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = MaxHeaderBytes
	}
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = o.MaxBodyBytes + 4<<30 + 1<<20
	}
	if o.UploadWindow <= 0 {
		o.UploadWindow = DefaultTransferWindow
	}
	if o.UploadMinRate <= 0 {
		o.UploadMinRate = DefaultTransferMinRate
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Desk == nil && o.Broker != nil {
		o.Desk = o.Broker
	}
	s := &Server{opt: o, log: o.Logger, reg: o.Registry,
		busyLog: repeatlimit.Limit{Every: time.Minute}, unavailableLog: repeatlimit.Limit{Every: time.Minute},
		certLog: repeatlimit.Limit{Every: time.Minute}, refusedLog: repeatlimit.Limit{Every: time.Minute}}
	s.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "amtsbote_auth_refused_total",
		Help: "Requests whose bearer token is no client's token here, by the kind of client the route is for (portal, office, admin); a missing token is not counted."},
		[]string{"client"})
	for _, c := range []string{clientPortal, clientOffice, clientAdmin} {
		s.refused.WithLabelValues(c) // every series from the start: rate() sees the first refusal
	}
	s.metrics = o.HTTPMetrics
	s.lastBackup = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "amtsbote_backup_last_success_timestamp_seconds", Help: "When the last whole online backup was sent (Unix time; 0: none since start)."})
	s.lastBackupBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "amtsbote_backup_last_bytes", Help: "The size of the last whole online backup."})
	if s.reg != nil {
		if s.metrics == nil {
			s.metrics = httpmetrics.New()
			s.reg.MustRegister(s.metrics.Collectors()...)
		}
		s.reg.MustRegister(s.refused)
		if o.Backup != nil {
			s.reg.MustRegister(s.lastBackup, s.lastBackupBytes)
		}
	}
	r := chi.NewRouter()
	// observe outside recoverer: a panic's 500 is counted (amtsbote_http_requests_total,
	// AmtsboteServerErrors); inside, the panic skipped the counting.
	r.Use(s.observe, s.recoverer, securityHeaders, s.limitHeaders, readableQuery, s.headAsGet)
	r.NotFound(notFound)
	r.MethodNotAllowed(s.methodNotAllowed)

	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	r.Get("/readyz", s.ready)
	if s.reg != nil {
		r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	}
	r.Get("/v1/schemas/{name}", s.schema)
	r.Get("/v1/openapi.yaml", serveOpenAPI)

	r.With(s.storeGate).Post("/v1/submissions", s.submit)
	r.Get("/v1/submissions/{id}", s.portalOnly(s.gated(portalIDs(s.status))))
	r.Get("/v1/submissions/{id}/receipts/{kind}", s.portalOnly(s.gated(portalIDs(s.portalReceipt))))
	r.Get("/v1/submissions/{id}/replies/{rid}", s.portalOnly(s.gated(portalIDs(s.portalReply))))

	r.Route("/v1/office", func(r chi.Router) {
		r.Use(s.officeAuth, s.storeGate)
		r.Get("/submissions", s.officeList)
		// A group's middleware runs once the route matched (its parameters
		// are known), after the office's authentication.
		r.Group(func(r chi.Router) {
			r.Use(pathIDs)
			r.Get("/submissions/{id}", s.officeGet)
			r.Get("/submissions/{id}/package", s.officePackage)
			r.Get("/submissions/{id}/attachments/{aid}", s.officeAttachment)
			r.Post("/submissions/{id}/accept", s.officeDecide(broker.OutcomeAccepted))
			r.Post("/submissions/{id}/reject", s.officeDecide(broker.OutcomeRejected))
			r.Get("/submissions/{id}/receipts/{kind}", s.officeReceipt)
			r.Post("/submissions/{id}/replies", s.officeReply)
			r.Get("/submissions/{id}/replies/{rid}", s.officeReplyBytes)
		})
	})
	r.Route("/v1/admin", func(r chi.Router) {
		r.Use(s.adminAuth, s.storeGate)
		if o.Reload != nil {
			// Only a server that can reload has the endpoint (the gateway always
			// can); it answered 409 "no directory files configured" otherwise,
			// which no gateway ever sent.
			r.Post("/directory/reload", s.adminReload)
		}
		r.Group(func(r chi.Router) {
			r.Use(pathIDs)
			r.Post("/submissions/{id}/redeliver", s.adminRedeliver)
			r.Post("/submissions/{id}/erase", s.adminErase)
			r.Get("/submissions/{id}", s.adminGet)
		})
		r.Get("/submissions", s.adminList)
		r.Get("/dead-letters", s.adminDeadLetters)
		r.Post("/dead-letters/replay", s.adminReplay)
		r.Get(strings.TrimPrefix(wire.AdminMessagesPath, "/v1/admin"), s.adminMessage)
		r.Get("/offices", s.adminOffices)
		r.Get("/undecided", s.adminUndecided)
		r.Get("/endpoints", s.adminEndpoints)
		r.Post("/endpoints/{office}/{channel}/enable", s.adminEnableEndpoint)
		r.Get(strings.TrimPrefix(backupPath, "/v1/admin"), s.adminBackup)
	})
	for prefix, h := range o.Mounts {
		r.Mount(prefix, h)
	}
	if o.Directory != nil {
		mountDirectory(r, o.Directory, s)
	}
	s.mux = r
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// --- middleware ---

// storeGate answers 503 at once while the store is known to be out of reach (a
// cluster without quorum, Options.StoreDown). A request let through would hold
// its verification slot and its body budget for the store's whole timeout (30 s
// in cluster mode) and fail all the same.
func (s *Server) storeGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.storeIsDown(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// storeIsDown answers 503 and reports true while the store is known to be out
// of reach; storeGate and gated share it.
func (s *Server) storeIsDown(w http.ResponseWriter, r *http.Request) bool {
	if s.opt.StoreDown == nil {
		return false
	}
	if err := s.opt.StoreDown(); err != nil {
		WriteStoreDown(w, r, err)
		return true
	}
	return false
}

// WriteStoreDown answers a request that came while the store is known to be
// down (why): 503 unavailable with Retry-After. The federation's receiver
// answers with it too.
func WriteStoreDown(w http.ResponseWriter, r *http.Request, why error) {
	w.Header().Set("Retry-After", RetryAfterSeconds)
	problem.Write(w, r, problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable,
		"the gateway's store does not answer now ("+why.Error()+"); nothing was done; retry later"))
}

// gated is storeGate for a portal handler.
func (s *Server) gated(h func(w http.ResponseWriter, r *http.Request, portal string)) func(w http.ResponseWriter, r *http.Request, portal string) {
	return func(w http.ResponseWriter, r *http.Request, portal string) {
		if !s.storeIsDown(w, r) {
			h(w, r, portal)
		}
	}
}

// recoverer turns a panic (a bug) into a 500 problem instead of a dropped connection;
// the package was not accepted unless Accept had returned, so nothing is lost.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// The route's pattern, as observe logs it: the path names the case.
				s.log.Error("panic in handler", "route", routePattern(r), "panic", fmt.Sprint(v))
				problem.Write(w, r, problem.New(500, problem.TypeInternal, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// observe logs and counts requests by route pattern; paths and bodies can carry
// personal data, so the log has the pattern, not the path.
func (s *Server) observe(next http.Handler) http.Handler {
	if s.metrics == nil { // no Registry: nothing to count in
		s.metrics = httpmetrics.New()
	}
	return s.metrics.Observe(next, routePattern, s.log)
}

// routePattern is the pattern of the route that served r ("unmatched" if none).
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		return rc.RoutePattern()
	}
	return "unmatched"
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// requestHeaderBytes is the size of the request line and headers as sent (CRLFs
// included), up to the accuracy a parsed request allows.
func requestHeaderBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	if r.Host != "" && r.Header.Get("Host") == "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}

// limitHeaders answers a request whose line and headers exceed MaxHeaderBytes with a
// 431 problem. The limit is enforced here and not by net/http so the client gets the
// same problem+json as for every other refusal.
func (s *Server) limitHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := requestHeaderBytes(r); n > s.opt.MaxHeaderBytes {
			w.Header().Set("Connection", "close")
			problem.Write(w, r, problem.New(http.StatusRequestHeaderFieldsTooLarge, problem.TypeHeadersTooLarge,
				fmt.Sprintf("request line and headers of %d bytes exceed the limit of %d", n, s.opt.MaxHeaderBytes)).With("max", s.opt.MaxHeaderBytes))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readableQuery answers 400 malformed-request when the query string of a REST
// path cannot be parsed. url.Values drops what it cannot read ("state=held;x",
// "office=%zz"), so a filter that should have narrowed a listing vanished and the
// client got a 200 with more than it asked for (every office's dead letters, every
// state). The other faces mounted beside the API (web mailbox, federation) answer
// in their own formats and read their queries themselves.
func readableQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" && restPath(r.URL.Path) {
			if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
				problem.Write(w, r, problem.New(http.StatusBadRequest, problem.TypeMalformed,
					"the query string cannot be read: "+err.Error()))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// restPath: the API's own paths (the faces in Options.Mounts are not under /v1/).
func restPath(p string) bool {
	return strings.HasPrefix(p, "/v1/") || p == "/healthz" || p == "/readyz" || p == "/metrics"
}

// headAsGet answers HEAD where GET is served (RFC 9110 §9.3.2: the status and
// header fields of a GET, no content; net/http drops what the handler writes,
// http.ServeContent does not even read it). Uptime monitors check /healthz with
// HEAD, and download tools ask a file's size and Accept-Ranges first; both got 405.
// The handlers see r.Method HEAD: the office's package is not counted as fetched
// by it (officePackage). Not the backup, which would be made in full to be thrown
// away (and count as the last backup): HEAD there stays 405.
func (s *Server) headAsGet(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			if rctx := chi.RouteContext(r.Context()); rctx != nil && s.headServed(cmp.Or(r.URL.RawPath, r.URL.Path)) {
				rctx.RouteMethod = http.MethodGet
			}
		}
		next.ServeHTTP(w, r)
	})
}

// headServed reports whether HEAD is answered at path: where GET is, but the backup.
func (s *Server) headServed(path string) bool {
	return path != backupPath && s.mux.Match(chi.NewRouteContext(), http.MethodGet, path)
}

// backupPath streams a whole online backup (adminBackup).
const backupPath = "/v1/admin/backup"

// notFound answers a path the API does not have.
// pathIDs answers 404 not-found, saying what an id looks like, when the
// route's submission id ({id}) or reply id ({rid}) cannot be one the gateway
// gave: every such id is a UUID (broker.newID). Such a path names no resource,
// as an unknown id and a receipt kind outside the list do, so the status and
// type are theirs (docs/problems.md, "404 for an id of another shape"); the
// detail tells an integrator who sent a garbled id (cut, two glued together,
// another system's) that it is no id, where "no such resource" sent them to
// look for a case that never was. It comes after the client's authentication,
// before any store read.
func pathIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if badPathID(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// portalIDs is pathIDs for a portal's handler (inside portalOnly, which
// authenticates).
func portalIDs(h func(w http.ResponseWriter, r *http.Request, portal string)) func(w http.ResponseWriter, r *http.Request, portal string) {
	return func(w http.ResponseWriter, r *http.Request, portal string) {
		if !badPathID(w, r) {
			h(w, r, portal)
		}
	}
}

// badPathID answers pathIDs' 404 and reports true when r's {id} or {rid}
// cannot be an id of the gateway.
func badPathID(w http.ResponseWriter, r *http.Request) bool {
	for _, p := range []struct{ name, what string }{{"id", "submission"}, {"rid", "reply"}} {
		v := chi.URLParam(r, p.name)
		if v == "" || isGatewayID(v) {
			continue
		}
		// The id itself is not repeated: it may be 60 KB of the client's
		// choosing, and the problem's instance names the path.
		problem.Write(w, r, problem.New(http.StatusNotFound, problem.TypeNotFound,
			"no such resource: the path's "+p.what+" id is not one the gateway gives (a UUID of 36 characters, such as 0190f1c2-7d1e-7cc3-9c52-3a7c1f0e5b21: the Location of the intake's answer, the listings' id)"))
		return true
	}
	return false
}

// isGatewayID reports whether v is a UUID in its canonical text form, the form
// of every id the gateway gives (uuid.Parse also takes braces, a urn: prefix
// and 32 digits without hyphens, which no id here has).
func isGatewayID(v string) bool {
	if len(v) != 36 {
		return false
	}
	_, err := uuid.Parse(v)
	return err == nil
}

func notFound(w http.ResponseWriter, r *http.Request) {
	problem.Write(w, r, problem.New(http.StatusNotFound, problem.TypeNotFound, "no such endpoint"))
}

// probeMethods are the methods a 405's Allow header is computed from.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// methodNotAllowed answers a known path with a method it does not serve: 405 with
// the methods it does serve in Allow (RFC 9110 §15.5.6).
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	// chi routes on the escaped path when it differs (an id with %2F in it); the
	// probe must see the path the router saw, or Allow comes out empty.
	path := cmp.Or(r.URL.RawPath, r.URL.Path)
	var allowed []string
	for _, m := range probeMethods {
		if s.mux.Match(chi.NewRouteContext(), m, path) || m == http.MethodHead && s.headServed(path) {
			allowed = append(allowed, m)
		}
	}
	// chi sends a method it does not know (FOO, PROPFIND) here for any path; where
	// no method is served the path does not exist, and that is a 404, not a 405
	// with an empty Allow.
	if len(allowed) == 0 {
		notFound(w, r)
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, problem.TypeMethodNotAllowed,
		r.Method+" is not allowed here; allowed: "+strings.Join(allowed, ", ")))
}

func (s *Server) portalOnly(h func(w http.ResponseWriter, r *http.Request, portal string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.opt.Clients.Portal(r)
		if !ok {
			s.unauthenticated(w, r, clientPortal)
			return
		}
		h(w, r, id)
	}
}

type ctxKey int

const officeKey ctxKey = 1

func (s *Server) officeAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.opt.Clients.Office(r)
		if !ok {
			s.unauthenticated(w, r, clientOffice)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), officeKey, id)))
	})
}

// The kinds of client a route takes the bearer token of (the label client of
// amtsbote_auth_refused_total).
const (
	clientPortal = "portal"
	clientOffice = "office"
	clientAdmin  = "admin"
)

// unauthenticated answers 401 for a route that takes the bearer token of a
// client of kind client. A request with a token that is not one says so (RFC
// 6750, error="invalid_token"): "a token is required" sent a client with a
// mistyped or rotated token looking for a missing header. Which client a token
// belongs to, if any, is not revealed. A token sent and refused is counted and,
// once a minute, logged with the route's pattern and the peer's address (never
// the token): that is what someone guessing tokens looks like.
func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request, client string) {
	realm, whose := "amtsbote", "a portal's"
	switch client {
	case clientOffice:
		whose = "an office's"
	case clientAdmin:
		realm, whose = "amtsbote-admin", "the admin"
	}
	if _, sent := bearer(r); sent {
		s.refused.WithLabelValues(client).Inc()
		n := s.refusedN.Add(1)
		if s.refusedLog.Allow(time.Now()) {
			s.refusedN.Add(-n)
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				host = r.RemoteAddr
			}
			s.log.Warn("bearer token refused (at most one such line a minute; amtsbote_auth_refused_total counts them all)",
				"client", client, "route", routePattern(r), "remote", host, "refused_since_last_line", n)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token"`)
		problem.Write(w, r, problem.New(401, problem.TypeUnauthenticated, "the bearer token is not "+whose+" token here"))
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
	problem.Write(w, r, problem.New(401, problem.TypeUnauthenticated, "a bearer token is required: "+whose+" token"))
}

func officeOf(r *http.Request) string { v, _ := r.Context().Value(officeKey).(string); return v }

func (s *Server) adminAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.opt.Clients.Admin(r) {
			s.unauthenticated(w, r, clientAdmin)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// --- handlers ---

// Readiness is what /readyz reports. A gateway that is Degraded still takes packages
// (they are durable in its store) but something behind it is down — e.g. the
// message bus, so deliveries wait; it stays in a load balancer's rotation.
type Readiness struct {
	Degraded []string // what is wrong, for operators
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	var rd Readiness
	if s.opt.Ready != nil {
		var err error
		if rd, err = s.opt.Ready(); err != nil {
			w.Header().Set("Retry-After", RetryAfterSeconds) // as every unavailable answer (docs/problems.md)
			problem.Write(w, r, problem.New(503, problem.TypeUnavailable, err.Error()))
			return
		}
	}
	if len(rd.Degraded) > 0 {
		writeJSON(w, 200, map[string]any{"status": "degraded", "degraded": rd.Degraded})
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}

func (s *Server) schema(w http.ResponseWriter, r *http.Request) {
	b, ok := s.opt.Schemas[chi.URLParam(r, "name")]
	if !ok {
		problem.Write(w, r, problem.New(404, problem.TypeNotFound, "no such schema"))
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write(b)
}

// AcceptsXML reports whether ct names an XML media type (application/xml,
// text/xml, or a +xml type): the check for the signed root of a request.
func AcceptsXML(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/xml" || mt == "text/xml" || strings.HasSuffix(mt, "+xml")
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	// The signature and the digests are over the bytes as signed, and the gateway
	// decodes no content coding: a gzipped body was parsed as it came and refused
	// as malformed XML, which sent the portal looking for a fault in its package.
	if contentCoded(r.Header) {
		w.Header().Set("Accept-Encoding", "identity")
		s.refuseUnread(w, r, problem.New(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia,
			"send the package without a Content-Encoding: the gateway checks the bytes as they were signed"))
		return
	}
	if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "multipart/related" {
		s.submitMultipart(w, r, params)
		return
	}
	if !AcceptsXML(r.Header.Get("Content-Type")) {
		s.refuseUnread(w, r, problem.New(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia,
			"send the signed Antragspaket as application/xml, or as the root part of multipart/related"))
		return
	}
	if declaredTooLarge(w, r, s.opt.MaxBodyBytes) {
		return
	}
	body, lease, ok := s.readBody(w, r, s.opt.MaxBodyBytes)
	if !ok {
		return
	}
	defer lease.Release() // held to the end of the intake, as the body is
	a, err := s.opt.Pipeline.Submit(r.Context(), body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeIntake(w, a)
}

// refuseUnread answers a plain upload refused before its body was read — a
// content coding, a content type that is no XML, no room in limits.body_memory
// — with why (a problem, or an error for fail), and then reads and discards the
// rest of the body: at most MaxBodyBytes (what the request may send at all),
// within one UploadWindow, holding none of it. Answered with the body unread,
// the connection was closed under a portal whose HTTP stack sends the whole
// request before it reads the answer, which saw "connection reset" instead of
// the problem (httpbody.Drain says why); the multipart uploads, the XTA face
// and the Portalverbund face drain the same way.
func (s *Server) refuseUnread(w http.ResponseWriter, r *http.Request, why error) {
	httpbody.Refusing(w, r)
	var p *problem.Problem
	if errors.As(why, &p) {
		problem.Write(w, r, p)
	} else {
		s.fail(w, r, why)
	}
	httpbody.Drain(w, r, r.Body, s.opt.MaxBodyBytes, time.Now().Add(s.opt.UploadWindow))
}

// contentCoded reports whether h names a content coding other than identity (an
// empty Content-Encoding, which some clients send, names none).
func contentCoded(h http.Header) bool {
	for _, v := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return true
			}
		}
	}
	return false
}

// writeIntake answers an accepted package: 201 with the signed receipt, or 200 for
// a repeat of a message accepted before.
func writeIntake(w http.ResponseWriter, a *broker.Received) {
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	// Declared, not chunked: net/http declares only bodies under 2 KB by itself,
	// and a client that knows the length reads the receipt into one buffer.
	w.Header().Set("Content-Length", strconv.Itoa(len(a.Receipt)))
	w.Header().Set("Location", wire.SubmissionPath(a.Submission.ID))
	w.Header().Set(wire.HeaderSubmissionID, a.Submission.ID)
	status := http.StatusCreated
	if !a.Created {
		status = http.StatusOK
		w.Header().Set(wire.HeaderDuplicate, "true")
	}
	w.WriteHeader(status)
	_, _ = w.Write(a.Receipt)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, portal string) {
	sub, evs, err := s.opt.Broker.PortalStatus(portal, chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, statusView(sub, evs))
}

func receiptKind(k string) (string, bool) {
	switch strings.ToLower(k) {
	case wire.ReceiptEingang, "eingangsbestaetigung":
		return broker.ReceiptIntake, true
	case wire.ReceiptZustellung, "zustellbestaetigung":
		return broker.ReceiptDelivery, true
	case wire.ReceiptPeer, "peereingangsbestaetigung":
		return broker.ReceiptPeerIntake, true
	}
	return "", false
}

func (s *Server) writeReceipt(w http.ResponseWriter, r *http.Request, read func(kind string) ([]byte, error)) {
	kind, ok := receiptKind(chi.URLParam(r, "kind"))
	if !ok {
		problem.Write(w, r, problem.New(404, problem.TypeNotFound, "receipt kinds are eingang, zustellung and peer"))
		return
	}
	b, err := read(kind)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	_, _ = w.Write(b)
}

func (s *Server) portalReceipt(w http.ResponseWriter, r *http.Request, portal string) {
	id := chi.URLParam(r, "id")
	s.writeReceipt(w, r, func(kind string) ([]byte, error) { return s.opt.Broker.PortalReceipt(portal, id, kind) })
}

// singleValued answers 422 invalid-field and reports false when one of names is
// given more than once in the query: each is read as one value, and the second
// was dropped without a word (state=held&state=queued listed only the held ones).
func singleValued(w http.ResponseWriter, r *http.Request, names ...string) bool {
	if p := repeatedParam(r, names...); p != nil {
		problem.Write(w, r, p)
		return false
	}
	return true
}

// repeatedParam is singleValued's refusal, or nil: for a handler that answers
// it in its own way (before a body it has not read, refuseUnread).
func repeatedParam(r *http.Request, names ...string) *problem.Problem {
	q := r.URL.Query()
	for _, n := range names {
		if len(q[n]) > 1 {
			return problem.New(422, problem.TypeInvalidField, n+" is given more than once; it takes one value").With("field", n)
		}
	}
	return nil
}

// queryLimit reads the page size of a listing: def when absent, 1..max, else it
// answers 422 (field limit) and reports false.
func queryLimit(w http.ResponseWriter, r *http.Request, def, max int) (int, bool) {
	l := r.URL.Query().Get("limit")
	if l == "" {
		return def, true
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > max {
		problem.Write(w, r, problem.New(422, problem.TypeInvalidField, fmt.Sprintf("limit must be 1..%d", max)).With("field", "limit"))
		return 0, false
	}
	return n, true
}

func (s *Server) officeList(w http.ResponseWriter, r *http.Request) {
	if !singleValued(w, r, "limit", "after", "offset", "awaiting", "caseId") {
		return
	}
	limit, ok := queryLimit(w, r, 100, 500)
	if !ok {
		return
	}
	// FIT-Connect's clients page by offset; this list pages by the next link. An
	// offset was ignored, so such a client read the first page forever.
	if o := r.URL.Query().Get("offset"); o != "" && o != "0" {
		problem.Write(w, r, problem.New(422, problem.TypeInvalidField, "this list pages by its next link (after=<last id>), not by offset; follow \"next\"").With("field", "offset"))
		return
	}
	// state: a Fachverfahren that pulls asks for what still waits for it
	// (state=queued,retrying,handed_over,held) instead of paging through every
	// case it ever had.
	// Repeated (state=queued&state=held, how OpenAPI clients send an array) counts
	// as comma-separated: only the first value was read, and the others' cases were
	// left out of a 200.
	raw := strings.Join(r.URL.Query()["state"], ",")
	states, ok := parseStates(raw)
	if !ok {
		problem.Write(w, r, problem.New(422, problem.TypeInvalidField, "state must be a comma-separated list of states ("+stateNames()+")").With("field", "state"))
		return
	}
	// caseId: the Nachreichungen to one case, from the gateway's index by
	// case — a system that shows a case with what came in for it later.
	q := broker.ListQuery{After: r.URL.Query().Get("after"), Limit: limit, States: states, Case: r.URL.Query().Get("caseId")}
	rawVia, ok := awaitingQuery(w, r, raw, &q)
	if !ok {
		return
	}
	page, err := s.opt.Desk.List(r.Context(), officeOf(r), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := wire.OfficeList{Submissions: make([]wire.OfficeSubmission, 0, len(page.Items))}
	for _, sub := range page.Items {
		resp.Submissions = append(resp.Submissions, officeView(sub, nil))
	}
	resp.Count = len(resp.Submissions)
	if page.Next != "" {
		// Every filter goes on (with awaiting, states are none: awaitingQuery).
		resp.Next = wire.OfficeListQuery{After: page.Next, Limit: limit, States: raw,
			AwaitingDecision: q.AwaitingDecision, DeliveredVia: rawVia, Case: q.Case}.Path()
	}
	writeJSON(w, 200, resp)
}

// awaitingQuery reads the office list's awaiting=decision and deliveredVia into
// q, and returns deliveredVia as given (for the next link). awaiting=decision
// lists the office's cases that await its decision, from the store's undecided
// index: what a system run as several instances sweeps for, which state=delivered
// answered only by reading every case the office ever had (docs/pull.md,
// "Running several instances"). It is no state filter: a delivered case of XTA,
// a transfer folder or a peer gateway, an erased or a processed one awaits
// nothing, so state does not combine with it — state=delivered with it would
// read as "and the other delivered ones", state=accepted as nothing at all —
// and is refused (422 invalid-field, field state) rather than half-honoured.
// deliveredVia narrows the list to the channels the office took the cases by
// (api, webhook: its system; mailbox: a clerk), and means nothing without it
// (field deliveredVia). On a refusal it has answered and reports false.
func awaitingQuery(w http.ResponseWriter, r *http.Request, states string, q *broker.ListQuery) (string, bool) {
	query := r.URL.Query()
	rawVia := strings.Join(query["deliveredVia"], ",")
	if _, asked := query["awaiting"]; !asked {
		if rawVia != "" {
			problem.Write(w, r, problem.New(422, problem.TypeInvalidField, "deliveredVia narrows awaiting=decision and is given only with it").With("field", "deliveredVia"))
			return "", false
		}
		return "", true
	}
	if query.Get("awaiting") != wire.AwaitingDecision {
		problem.Write(w, r, problem.New(422, problem.TypeInvalidField, "awaiting takes one value: decision").With("field", "awaiting"))
		return "", false
	}
	if states != "" {
		problem.Write(w, r, problem.New(422, problem.TypeInvalidField, "awaiting=decision lists the delivered cases that await the office's decision; state does not combine with it").With("field", "state"))
		return "", false
	}
	q.AwaitingDecision = true
	if rawVia == "" {
		return "", true
	}
	for _, f := range strings.Split(rawVia, ",") {
		ch := strings.TrimSpace(f)
		if !channel.Decides(ch) {
			problem.Write(w, r, problem.New(422, problem.TypeInvalidField, "deliveredVia must be a comma-separated list of the channels through which an office decides (api, webhook, mailbox)").With("field", "deliveredVia"))
			return "", false
		}
		q.DeliveredVia = append(q.DeliveredVia, ch)
	}
	return rawVia, true
}

// parseStates reads a comma-separated list of states; "" is no filter.
func parseStates(raw string) ([]submission.State, bool) {
	if raw == "" {
		return nil, true
	}
	var out []submission.State
	for _, f := range strings.Split(raw, ",") {
		st := submission.State(strings.TrimSpace(f))
		if !slices.Contains(submission.States(), st) {
			return nil, false
		}
		out = append(out, st)
	}
	return out, true
}

func stateNames() string {
	names := make([]string, 0, len(submission.States()))
	for _, st := range submission.States() {
		names = append(names, string(st))
	}
	return strings.Join(names, ", ")
}

func (s *Server) officeSub(w http.ResponseWriter, r *http.Request) (*submission.Submission, bool) {
	sub, err := s.opt.Desk.Get(r.Context(), officeOf(r), chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return sub, true
}

func (s *Server) officeGet(w http.ResponseWriter, r *http.Request) {
	sub, evs, err := s.opt.Desk.GetWithEvents(r.Context(), officeOf(r), chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, officeView(sub, evs))
}

// pullPickup is how a fetch through the pull API is recorded.
func pullPickup(office string) broker.Pickup {
	return broker.Pickup{Channel: channel.API, Receiver: "office " + office + " (pull API)", Admit: pullAdmit}
}

// pullAdmit is the pull API's broker.Admit: a case a clerk took over in the
// web mailbox is not the office system's any more (submission.PickupAllowed),
// so its package, its attachments and its decision are refused (409
// taken-over), on the record the desk reads for the action and before anything
// is opened. The office's system may have listed the case a moment before the
// takeover (it came back up and found it waiting); before, it was handed the
// package and its decision counted, and the clerk and the system processed one
// application twice. The desk refuses such a pickup itself as well, on the
// record it commits to (a takeover between this read and the commit).
func pullAdmit(s *submission.Submission) error { return s.PickupAllowed(channel.API) }

func (s *Server) officePackage(w http.ResponseWriter, r *http.Request) {
	office := officeOf(r)
	if r.Method == http.MethodHead {
		// The size and digest, without counting as the office's fetch: a tool that
		// looks before it downloads has not picked the package up.
		sub, ok := s.officeSub(w, r)
		if !ok {
			return
		}
		// What the GET would answer: taken over, or the bytes gone.
		err := pullAdmit(sub)
		if err == nil {
			err = broker.PackageGone(sub)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		packageHeaders(w, sub)
		return
	}
	sub, rc, err := s.opt.Desk.OpenPackage(r.Context(), office, chi.URLParam(r, "id"), pullPickup(office))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	packageHeaders(w, sub)
	// A package of max_body_bytes over a slow link outlasts the server's fixed
	// write deadline, and a cut one has no Range to resume: under the progress
	// rule, as an attachment and an XTA message are (it was cut after write_timeout).
	_, _ = io.Copy(Paced(w, s.transfer()), rc)
}

// packageHeaders are the header fields of an office's package download.
func packageHeaders(w http.ResponseWriter, sub *submission.Submission) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.FormatInt(sub.PackageSize, 10))
	if raw, err := hex.DecodeString(sub.PackageSHA256); err == nil {
		// RFC 9530: structured-field byte sequence, base64 between colons.
		w.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(raw)+":")
	}
}

func (s *Server) officeAttachment(w http.ResponseWriter, r *http.Request) {
	meta, rc, err := s.opt.Desk.OpenAttachment(r.Context(), officeOf(r), chi.URLParam(r, "id"), chi.URLParam(r, "aid"), pullAdmit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	ct := meta.MimeType
	if _, _, err := mime.ParseMediaType(ct); err != nil || ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set(wire.HeaderContentDisposition, attachmentNamed(meta.FileName))
	serveBlob(w, r, rc, meta.Size, meta.SHA256, s.transfer())
}

func (s *Server) officeDecide(outcome string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sub, ok := s.officeSub(w, r)
		if !ok {
			return
		}
		var body wire.DecisionRequest
		if !s.readJSON(w, r, 64<<10, &body, true, false, `{"reason": "..."}`) {
			return
		}
		body.Reason = strings.TrimSpace(body.Reason)
		if outcome == broker.OutcomeRejected && body.Reason == "" {
			problem.Write(w, r, problem.New(422, problem.TypeInvalidField, "a rejection needs a reason").With("field", "reason"))
			return
		}
		// Characters, as the contract's maxLength and the mailbox count them: a
		// reason in German is longer in bytes than in characters.
		if utf8.RuneCountInString(body.Reason) > wire.MaxReasonLength {
			problem.Write(w, r, problem.New(422, problem.TypeInvalidField, fmt.Sprintf("reason is longer than %d characters", wire.MaxReasonLength)).With("field", "reason"))
			return
		}
		updated, err := s.opt.Desk.Decide(r.Context(), sub.OfficeID, sub.ID, broker.Decision{
			Outcome: outcome, Reason: body.Reason, Actor: "office " + sub.OfficeID + " (pull API)", Channel: channel.API,
			Admit: pullAdmit})
		if errors.Is(err, submission.ErrDecided) {
			// A contradicting outcome: name the decision that stands, as below.
			// Only for that refusal: a case erased, taken over by a clerk or
			// forwarded to a peer is refused whatever it holds (a forwarded
			// case the peer decided alike was answered 200 as the system's own
			// repeat when every conflict was looked up).
			if now, gerr := s.opt.Desk.Get(r.Context(), sub.OfficeID, sub.ID); gerr == nil && now.Decision != nil {
				updated, err = now, nil
			}
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if d := updated.Decision; d != nil && (d.Outcome != outcome || d.Reason != body.Reason) {
			// The desk keeps the first decision and takes the same outcome again
			// as a repeat, whatever its reason. Two instances of one office
			// system accepting at once with their own file numbers were both
			// answered 200, and one believed its number had reached the portal.
			// Only the same outcome with the same reason (trimmed, as stored) is
			// a repeat; anything else was not recorded.
			problem.Write(w, r, problem.New(http.StatusConflict, problem.TypeConflict, decidedBefore(d)))
			return
		}
		evs, err := s.opt.Desk.Events(r.Context(), sub.OfficeID, sub.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, 200, officeView(updated, evs))
	}
}

// decidedBefore is the detail of a 409 for a decision that was not recorded
// because d stands: its outcome, reason (clipped), actor and time. The whole
// reason is in GET /v1/office/submissions/{id}.
func decidedBefore(d *submission.Decision) string {
	reason := "without a reason"
	if d.Reason != "" {
		r := []rune(d.Reason)
		if len(r) > 200 {
			r = append(r[:200], '…')
		}
		reason = fmt.Sprintf("with the reason %q", string(r))
	}
	return fmt.Sprintf("the submission was %s before, %s, by %s at %s; a decision is final and this one was not recorded",
		d.Outcome, reason, d.Actor, d.At.UTC().Format(time.RFC3339))
}

func (s *Server) officeReceipt(w http.ResponseWriter, r *http.Request) {
	office, id := officeOf(r), chi.URLParam(r, "id")
	s.writeReceipt(w, r, func(kind string) ([]byte, error) { return s.opt.Desk.Receipt(r.Context(), office, id, kind) })
}

// NodeReload is one gateway's part of a reload (POST /v1/admin/directory/reload).
type NodeReload struct {
	// Node is the gateway's node id (data_dir/node-id), Address where it
	// listens (host name and port).
	Node    string `json:"node"`
	Address string `json:"address,omitempty"`
	// Status is ReloadDone, ReloadFailed (Error says why, File and Line where,
	// for a directory file) or ReloadNoAnswer.
	Status string          `json:"status"`
	Error  string          `json:"error,omitempty"`
	File   string          `json:"file,omitempty"`
	Line   int             `json:"line,omitempty"`
	Counts *routing.Counts `json:"counts,omitempty"` // the directory in use after the reload
}

// The states of a NodeReload.
const (
	ReloadDone     = "reloaded"
	ReloadFailed   = "failed"    // the gateway keeps its previous directory and trust store
	ReloadNoAnswer = "no answer" // a gateway of the cluster did not answer in time
)

// ReloadResult is the NodeReload of a gateway whose reload returned err, with
// the counts of dir, the directory it serves after it.
func ReloadResult(node, address string, err error, dir *routing.Directory) NodeReload {
	r := NodeReload{Node: node, Address: address, Status: ReloadDone}
	if err != nil {
		r.Status, r.Error = ReloadFailed, err.Error()
		var de *routing.DataError
		if errors.As(err, &de) {
			r.File, r.Line = de.File, de.Line
		}
		return r
	}
	counts := dir.Counts()
	r.Counts = &counts
	return r
}

// adminReload reloads every gateway the reload reaches (Options.Reload: in a
// cluster all of them) and answers 200 only when each reloaded: the others
// would otherwise keep refusing what these accept.
func (s *Server) adminReload(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.opt.Reload(r.Context())
	if err != nil {
		w.Header().Set("Retry-After", RetryAfterSeconds)
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable,
			"the reload could not be sent to the gateways ("+err.Error()+"); nothing was done; retry later"))
		return
	}
	var failed, silent []NodeReload
	for _, n := range nodes {
		switch n.Status {
		case ReloadFailed:
			failed = append(failed, n)
		case ReloadNoAnswer:
			silent = append(silent, n)
		}
	}
	switch {
	case len(failed) > 0:
		// The directory and the trust store are put in force together or not at
		// all (gateway.Reload): where it failed, neither changed.
		f := failed[0]
		detail := "not reloaded, the previous version stays in use: " + f.Error
		if len(nodes) > 1 {
			detail = fmt.Sprintf("not reloaded on %d of %d gateways, which keep their previous version (gateway %s: %s)", len(failed), len(nodes), f.Node, f.Error)
		}
		p := problem.New(422, problem.TypeInvalidField, detail).With("nodes", nodes)
		if f.File != "" {
			p.With("file", f.File).With("line", f.Line)
		}
		problem.Write(w, r, p)
	case len(silent) > 0:
		names := make([]string, len(silent))
		for i, n := range silent {
			names[i] = n.Node + " (" + n.Address + ")"
		}
		problem.Write(w, r, problem.New(http.StatusGatewayTimeout, problem.TypeReloadIncomplete,
			fmt.Sprintf("%d of %d gateways did not answer and may keep their previous version: %s; find out why and reload again",
				len(silent), len(nodes), strings.Join(names, ", "))).With("nodes", nodes))
	default:
		writeJSON(w, 200, map[string]any{"status": ReloadDone, "counts": s.opt.Directory.Current().Counts(), "nodes": nodes})
	}
}

func (s *Server) adminRedeliver(w http.ResponseWriter, r *http.Request) {
	sub, err := s.opt.Broker.Redeliver(chi.URLParam(r, "id"), "operator (admin API)")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, map[string]any{"id": sub.ID, "state": sub.State})
}

// EraseRequest is the optional body of POST /v1/admin/submissions/{id}/erase.
type EraseRequest struct {
	// Operator names the person who erases (the admin token is shared by the
	// operators, so the event log could not name them otherwise).
	Operator string `json:"operator"`
	// Note says why, e.g. the file number of the erasure request; operators only.
	Note string `json:"note"`
}

// Limits of EraseRequest's fields, in characters.
const (
	maxOperatorLength = 100
	maxEraseNote      = 500
)

// adminErase removes one submission's package, attachment and reply bytes on
// request before its retention ends (broker.Erase); the record, event log and
// receipts stay.
func (s *Server) adminErase(w http.ResponseWriter, r *http.Request) {
	var body EraseRequest
	if !s.readJSON(w, r, 16<<10, &body, true, true, `{"operator": "...", "note": "..."}`) {
		return
	}
	body.Operator, body.Note = strings.TrimSpace(body.Operator), strings.TrimSpace(body.Note)
	for _, f := range []struct {
		name, v string
		max     int
	}{{"operator", body.Operator, maxOperatorLength}, {"note", body.Note, maxEraseNote}} {
		if utf8.RuneCountInString(f.v) > f.max || strings.ContainsFunc(f.v, unicode.IsControl) {
			problem.Write(w, r, problem.New(422, problem.TypeInvalidField,
				fmt.Sprintf("%s: at most %d characters, no control characters", f.name, f.max)).With("field", f.name))
			return
		}
	}
	actor := "operator (admin API)"
	if body.Operator != "" {
		actor = body.Operator + " (admin API)"
	}
	res, fus, err := s.opt.Broker.EraseCase(r.Context(), chi.URLParam(r, "id"), actor, body.Note)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := erasedView(res)
	if len(fus) > 0 {
		// The case's Nachreichungen, each erased or why not (a problem as
		// its own erasure would have answered it).
		list := make([]map[string]any, 0, len(fus))
		for _, fu := range fus {
			if fu.Err != nil {
				p := ProblemFor(fu.Err)
				list = append(list, map[string]any{"id": fu.ID, "problem": map[string]any{"type": p.Type, "status": p.Status, "detail": p.Detail}})
				continue
			}
			list = append(list, erasedView(fu.EraseResult))
		}
		out["followUps"] = list
	}
	writeJSON(w, 200, out)
}

// erasedView is what an erasure did to one case, as the admin API answers it.
func erasedView(res broker.EraseResult) map[string]any {
	sub := res.Submission
	out := map[string]any{"id": sub.ID, "state": sub.State, "bytesRemovedAt": sub.BytesRemovedAt,
		"alreadyRemoved": res.Already, "blobsDeleted": res.BlobsDeleted, "blobsLeft": res.BlobsLeft}
	if len(res.Withdrawals) > 0 {
		// The copies outside the gateway (a case folder in the office's
		// transfer folder): the operator must know whether the erasure
		// reached them; one that did not the gateway asks again itself.
		ws := make([]map[string]any, 0, len(res.Withdrawals))
		for _, w := range res.Withdrawals {
			m := map[string]any{"channel": w.Channel, "outcome": w.Outcome}
			if w.Reference != "" {
				m["reference"] = w.Reference
			}
			if w.Leftovers {
				m["leftoversRemoved"] = true
			}
			if w.Err != nil {
				m["detail"] = w.Reason()
			}
			if w.AskedAgain() {
				m["askedAgain"] = true
			}
			ws = append(ws, m)
		}
		out["withdrawals"] = ws
	}
	if f := sub.Forward; f != nil {
		// The peer gateway of another state has the package and its own copy
		// of the case: this erasure does not reach it, and the operator who
		// must ask that gateway's operator needs its name and the id there.
		fw := map[string]any{"gateway": f.Peer, "submissionId": f.PeerSubmissionID}
		if f.ReceiverGateway != "" && f.ReceiverGateway != f.Peer {
			fw["receiverGateway"] = f.ReceiverGateway
		}
		out["forwardedTo"] = fw
	}
	return out
}

// portalReply serves the bytes of one reply of the office to the portal, and
// records the first time they all went out (broker.RecordReplyFetch): the
// office sees that its Bescheid left the gateway towards the applicant. A
// read broken off is no fetch, nor is a HEAD.
func (s *Server) portalReply(w http.ResponseWriter, r *http.Request, portal string) {
	id := chi.URLParam(r, "id")
	rep, rc, err := s.opt.Broker.PortalReply(r.Context(), portal, id, chi.URLParam(r, "rid"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	if r.Method == http.MethodHead {
		// net/http swallows a HEAD's body and reports it written: copied, the
		// bytes counted as the portal's read, and the office was told that its
		// Bescheid had left towards the applicant when none of it had.
		replyHeaders(w, rep)
		return
	}
	if n, err := serveReply(w, rep, rc, s.transfer()); err != nil || n != rep.Size {
		return
	}
	if err := s.opt.Broker.RecordReplyFetch(id, rep, "portal "+portal); err != nil {
		s.log.Warn("could not record the portal's fetch of a reply; its next fetch records it", "submission", id, "reply", rep.ID, "err", err)
	}
}

// AdminSubmission is the operator's view: the whole record and the whole event log,
// with the notes (an office endpoint's own error text) that portals do not see.
type AdminSubmission struct {
	Submission *submission.Submission `json:"submission"`
	Events     []submission.Event     `json:"events"`
	// FollowUps are the ids of the case's Nachreichungen, of every office,
	// oldest first: a support desk asked "I sent the missing document" finds
	// them from the case. Absent when there are none.
	FollowUps []string `json:"followUps,omitempty"`
}

func (s *Server) adminGet(w http.ResponseWriter, r *http.Request) {
	s.writeAdminSubmission(w, r)(s.opt.Broker.Submission(chi.URLParam(r, "id")))
}

// writeAdminSubmission answers with the record found and its event log, or
// with why there is none.
func (s *Server) writeAdminSubmission(w http.ResponseWriter, r *http.Request) func(*submission.Submission, error) {
	return func(sub *submission.Submission, err error) {
		if err != nil {
			s.fail(w, r, err)
			return
		}
		evs, err := s.opt.Broker.Log(sub.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var fu []string
		if sub.CaseID == "" { // a Nachreichung has none of its own
			if fu, err = s.opt.Broker.FollowUps(sub.ID); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		writeJSON(w, 200, AdminSubmission{Submission: sub, Events: evs, FollowUps: fu})
	}
}

// adminMessage shows the submission a sender made with a NachrichtID, as
// adminGet does: a portal's support desk knows the NachrichtID it sent, and the
// operator of a peer gateway knows a forwarded package by the portal's sender
// and NachrichtID, which both gateways keep, while each gateway gives it an id
// of its own. One index read, no walk.
func (s *Server) adminMessage(w http.ResponseWriter, r *http.Request) {
	if !singleValued(w, r, "sender", "messageId") {
		return
	}
	q := r.URL.Query()
	for _, f := range []string{"sender", "messageId"} {
		if v := q.Get(f); v == "" || len(v) > maxMessageQuery {
			problem.Write(w, r, problem.New(422, problem.TypeInvalidField,
				fmt.Sprintf("%s is needed, at most %d bytes: the Absender and the NachrichtID of the package", f, maxMessageQuery)).With("field", f))
			return
		}
	}
	s.writeAdminSubmission(w, r)(s.opt.Broker.FindMessage(q.Get("sender"), q.Get("messageId")))
}

// maxMessageQuery bounds the sender and NachrichtID of adminMessage: longer
// than any the intake takes.
const maxMessageQuery = 1024

// adminListMax bounds the admin list of submissions.
var adminListMax = 1000

func (s *Server) adminList(w http.ResponseWriter, r *http.Request) {
	if !singleValued(w, r, "state") {
		return
	}
	want := submission.State(r.URL.Query().Get("state"))
	if want != "" && !slices.Contains(submission.States(), want) { // was an empty list
		problem.Write(w, r, problem.New(422, problem.TypeInvalidField, "state must be one of "+stateNames()).With("field", "state"))
		return
	}
	// At most adminListMax; complete says whether that was all of them (an
	// operator could not tell 1000 from the first 1000 of more).
	// A state the store does not index is listed by reading every record (8 s
	// on 200,000 from a cold disk, minutes on millions), and the walk went on
	// after the client had given up: an operator's retries, or a dashboard that
	// polls with a timeout, stacked whole scans beside intake. It ends with the
	// request.
	ctx := r.Context()
	var out []map[string]any
	complete := true
	err := s.opt.Broker.InState(want, func(sub *submission.Submission) bool {
		if ctx.Err() != nil {
			return false
		}
		if len(out) == adminListMax {
			complete = false
			return false
		}
		out = append(out, map[string]any{"id": sub.ID, "state": sub.State, "office": sub.OfficeID,
			"receivedAt": sub.ReceivedAt, "attempts": sub.TotalAttempts})
		return true
	})
	if err == nil {
		err = ctx.Err() // a walk cut short is no list: the client is gone (499)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if out == nil {
		out = []map[string]any{}
	}
	writeJSON(w, 200, map[string]any{"submissions": out, "complete": complete})
}

// adminBackup streams an online backup of the store (store/backup.go). A failure
// after the first byte aborts the connection: the client sees a cut transfer, and
// the stream lacks its manifest, never a whole-looking archive.
func (s *Server) adminBackup(w http.ResponseWriter, r *http.Request) {
	if s.opt.Backup == nil {
		problem.Write(w, r, problem.New(http.StatusNotFound, problem.TypeNotFound,
			"this gateway's store has no online backup: in cluster mode the records live in JetStream, back up its streams (docs/cluster.md)"))
		return
	}
	// One at a time: each takes a copy of the database on disk and reads every blob.
	if !s.backingUp.CompareAndSwap(false, true) {
		problem.Write(w, r, problem.New(http.StatusConflict, problem.TypeConflict, "a backup is running; one at a time"))
		return
	}
	defer s.backingUp.Store(false)
	at := time.Now().UTC()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="amtsbote-backup-`+at.Format("20060102T150405Z")+`.tar"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := &countingWriter{w: Paced(w, s.transfer())}
	if err := s.opt.Backup(r.Context(), cw); err != nil {
		if cw.n == 0 && r.Context().Err() == nil {
			w.Header().Del("Content-Disposition")
			s.fail(w, r, err)
			return
		}
		s.log.Error("backup cut off", "err", err, "bytes", cw.n)
		panic(http.ErrAbortHandler)
	}
	s.lastBackup.Set(float64(time.Now().Unix()))
	s.lastBackupBytes.Set(float64(cw.n))
	s.log.Info("backup sent", "bytes", cw.n, "took", time.Since(at).Round(time.Millisecond))
}

// transfer is the progress rule of this server's long answers: the upload rule's
// window and minimum rate, the other way.
func (s *Server) transfer() Transfer {
	return Transfer{Window: s.opt.UploadWindow, MinRate: s.opt.UploadMinRate}
}

// countingWriter counts what went through.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// adminEndpoints lists the offices' endpoints the broker knows: circuit breakers
// (per process) and channels disabled after a 410 Gone (persisted).
func (s *Server) adminEndpoints(w http.ResponseWriter, r *http.Request) {
	eps := s.opt.Broker.Endpoints()
	if eps == nil {
		eps = []broker.EndpointState{}
	}
	writeJSON(w, 200, map[string]any{"endpoints": eps})
}

// backlogReadLimit bounds the records one GET /v1/admin/offices reads: about a
// second's reading on a bbolt store, and a week's arrivals at a large portal.
const backlogReadLimit = 100_000

// adminOffices answers which offices packages wait for: the backlog gauges say
// that something waits, this says for whom and since when.
func (s *Server) adminOffices(w http.ResponseWriter, r *http.Request) {
	offices, _, complete, err := s.opt.Broker.Backlog(backlogReadLimit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if offices == nil {
		offices = []broker.OfficeBacklog{}
	}
	// waiting is what the offices' rows count, not the records read: a case
	// erased before its office took it is read and waits for nothing, and the
	// answer said "2 waiting" beside one row of 1 (amtsbote admin offices: "2
	// packages wait for 1 office", or "nothing waits" with a count of 1).
	waiting := 0
	for _, o := range offices {
		waiting += o.Queued + o.Retrying + o.HandedOver + o.Held
	}
	writeJSON(w, 200, map[string]any{"offices": offices, "waiting": waiting, "complete": complete})
}

// nextPage is the link to the page after the row last of a listing that pages
// by id: the query as asked, with after and limit set.
func nextPage(path string, q url.Values, last string, limit int) string {
	next := url.Values{}
	for k, v := range q {
		next[k] = v
	}
	next.Set("after", last)
	next.Set("limit", strconv.Itoa(limit))
	return path + "?" + next.Encode()
}

// adminUndecided lists the cases that await their office's decision
// (broker.Undecided): what the gauge amtsbote_submissions_delivered_undecided
// counts and AmtsboteUndecidedForDays fires for, by office and case, with when
// the office took each; paged by the next link as the dead letters are.
func (s *Server) adminUndecided(w http.ResponseWriter, r *http.Request) {
	if !singleValued(w, r, "office", "after", "limit") {
		return
	}
	limit, ok := queryLimit(w, r, 1000, 1000)
	if !ok {
		return
	}
	q := r.URL.Query()
	cases, err := s.opt.Broker.Undecided(r.Context(), q.Get("office"), q.Get("after"), limit+1) // one more: is there a next page?
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := map[string]any{}
	if len(cases) > limit {
		cases = cases[:limit]
		resp["next"] = nextPage("/v1/admin/undecided", q, cases[limit-1].ID, limit)
	}
	if cases == nil {
		cases = []broker.UndecidedCase{}
	}
	resp["undecided"] = cases
	writeJSON(w, 200, resp)
}

// adminEnableEndpoint enables a disabled office channel again and closes its breaker.
func (s *Server) adminEnableEndpoint(w http.ResponseWriter, r *http.Request) {
	st, err := s.opt.Broker.EnableEndpoint(chi.URLParam(r, "office"), chi.URLParam(r, "channel"), "operator (admin API)")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, 200, st)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// deadLetterFilter reads office, from and to (RFC 3339) of a dead-letter request.
func deadLetterFilter(office, from, to string) (broker.ReplayFilter, error) {
	f := broker.ReplayFilter{OfficeID: office}
	for _, p := range []struct {
		name, v string
		dst     *time.Time
	}{{"from", from, &f.From}, {"to", to, &f.To}} {
		if p.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, p.v)
		if err != nil {
			return f, &timeFieldError{field: p.name}
		}
		*p.dst = t
	}
	return f, nil
}

// timeFieldError names the dead-letter parameter that is not an RFC 3339 time.
type timeFieldError struct{ field string }

func (e *timeFieldError) Error() string { return e.field + " is not an RFC 3339 time" }

// badTimeField answers 422 for a deadLetterFilter error, naming its field.
func badTimeField(w http.ResponseWriter, r *http.Request, err error) {
	field := "from"
	if fe, ok := errors.AsType[*timeFieldError](err); ok {
		field = fe.field
	}
	problem.Write(w, r, problem.New(422, problem.TypeInvalidField, "from and to are RFC 3339 times").With("field", field))
}

// adminDeadLetters lists held submissions with their reason and attempts.
func (s *Server) adminDeadLetters(w http.ResponseWriter, r *http.Request) {
	if !singleValued(w, r, "office", "from", "to", "after", "limit") {
		return
	}
	q := r.URL.Query()
	f, err := deadLetterFilter(q.Get("office"), q.Get("from"), q.Get("to"))
	if err != nil {
		badTimeField(w, r, err)
		return
	}
	limit, ok := queryLimit(w, r, 1000, 1000)
	if !ok {
		return
	}
	f.After = q.Get("after")
	dls, err := s.opt.Broker.DeadLetters(r.Context(), f, limit+1) // one more: is there a next page?
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := map[string]any{}
	if len(dls) > limit {
		dls = dls[:limit]
		resp["next"] = nextPage("/v1/admin/dead-letters", q, dls[limit-1].ID, limit)
	}
	out := make([]map[string]any, 0, len(dls))
	for _, d := range dls {
		out = append(out, map[string]any{"id": d.ID, "office": d.OfficeID, "channel": d.Channel, "reason": d.Reason,
			"note": d.Note, "attempts": d.Attempts, "receivedAt": d.ReceivedAt, "heldAt": d.HeldAt})
	}
	resp["deadLetters"] = out
	writeJSON(w, 200, resp)
}

// replayBody selects what /v1/admin/dead-letters/replay queues again.
type replayBody struct {
	IDs    []string `json:"ids"`
	Office string   `json:"office"`
	From   string   `json:"from"`
	To     string   `json:"to"`
}

func (s *Server) adminReplay(w http.ResponseWriter, r *http.Request) {
	var body replayBody
	if !s.readJSON(w, r, 1<<20, &body, false, true, `{"ids": [...]} or {"office": "...", "from": "...", "to": "..."}`) {
		return
	}
	if len(body.IDs) == 0 && body.Office == "" && body.From == "" && body.To == "" {
		problem.Write(w, r, problem.New(422, problem.TypeInvalidField, "name ids, an office or a time window; replaying everything takes an explicit window").With("field", "ids"))
		return
	}
	f, err := deadLetterFilter(body.Office, body.From, body.To)
	if err != nil {
		badTimeField(w, r, err)
		return
	}
	f.IDs = body.IDs
	res, err := s.opt.Broker.Replay(r.Context(), f, "operator (admin API, replay)")
	if err != nil {
		// The operator must learn which id stopped the replay and how many went
		// before it, or the list cannot be mended and sent again.
		var re *broker.ReplayError
		if errors.As(err, &re) && !errors.Is(err, context.Canceled) {
			p := ProblemFor(err).With("id", re.ID).With("replayed", re.Replayed)
			if errors.Is(err, broker.ErrNotFound) {
				p.Detail = fmt.Sprintf("no submission has the id %q; nothing was queued", re.ID)
			}
			err = p
		}
		s.fail(w, r, err)
		return
	}
	skipped := make([]map[string]any, 0, len(res.Skipped))
	for _, k := range res.Skipped {
		m := map[string]any{"id": k.ID, "state": k.State}
		if k.Reason != "" { // still held: why it cannot be replayed
			m["reason"] = k.Reason
		}
		skipped = append(skipped, m)
	}
	writeJSON(w, 200, map[string]any{"replayed": res.Replayed, "skipped": skipped})
}

// readJSON decodes the request's JSON body, read to at most max bytes, into v. A
// body over max is 413 too-large, one that is not JSON 400 malformed-request whose
// detail shows shape; an empty body is accepted where emptyOK. Where strict, a
// member v does not have is 400 too, its name in the detail: the operator's
// bodies (erase, replay) drive what cannot be taken back, and a mistyped member
// was ignored (an erasure without the operator's name, a replay of every office's
// dead letters instead of one's). It reports whether the handler goes on; if
// not, it has answered.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, max int64, v any, emptyOK, strict bool, shape string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	if err == nil {
		// One JSON value and nothing after it: a decision that cannot be undone is
		// not taken on a body that goes on after its object (it was, until an
		// audit sent one).
		if _, next := dec.Token(); next != io.EOF {
			err = cmp.Or(next, errTrailingJSON)
		}
	}
	switch {
	case err == nil, emptyOK && errors.Is(err, io.EOF):
		return true
	case isMaxBytes(err):
		s.fail(w, r, err)
	case strings.HasPrefix(err.Error(), "json: unknown field "): // encoding/json has no type for it
		problem.Write(w, r, problem.New(400, problem.TypeMalformed,
			"unknown member "+strings.TrimPrefix(err.Error(), "json: unknown field ")+"; body must be JSON: "+shape))
	default:
		problem.Write(w, r, problem.New(400, problem.TypeMalformed, "body must be JSON: "+shape))
	}
	return false
}

var errTrailingJSON = errors.New("more after the JSON value")

// declaredTooLarge answers 413 and reports true when the request declares a body
// longer than max (a body without a declared length is cut at max while read).
func declaredTooLarge(w http.ResponseWriter, r *http.Request, max int64) bool {
	if r.ContentLength <= max {
		return false
	}
	problem.Write(w, r, problem.New(413, problem.TypeTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", r.ContentLength, max)).With("max", max))
	return true
}
