package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/internal/clientgone"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/submission"
)

// ProblemFor is the one error table of the whole API: intake, the status and office
// APIs, admin and the directory endpoints all map errors through it, so a sentinel
// means the same status and type wherever it surfaces (docs/problems.md). The order
// matters where errors wrap each other (an attachment digest error is also an
// invalid field). Unknown errors are the gateway's fault: 500, and logged.
//
// routing.ErrInvalidQuery is 422 invalid-field on every route: the request was read
// (well-formed XML or query string), one value breaks its rule, exactly what
// invalid-field means for package fields; malformed-request (400) is kept for what
// cannot be read at all.
func ProblemFor(err error) *problem.Problem {
	var amb *routing.AmbiguousPlaceError
	var ambSvc *routing.AmbiguousServiceError
	var fe *paket.FieldError
	var le *paket.LimitError
	var decided *problem.Problem
	switch {
	case errors.As(err, &decided):
		// A check that already knows its answer (ReadRoot) returns it as the error.
		return decided
	case errors.Is(err, paket.ErrLimit), errors.Is(err, signing.ErrLimit), isMaxBytes(err):
		p := problem.New(http.StatusRequestEntityTooLarge, problem.TypeTooLarge, err.Error())
		var mb *http.MaxBytesError
		if errors.As(err, &le) {
			p.With("limit", le.Limit).With("max", le.Max)
		} else if errors.As(err, &mb) { // a body without a declared length, cut at the limit
			p.With("max", mb.Limit)
		}
		return p
	case errors.Is(err, paket.ErrMalformed), errors.Is(err, signing.ErrMalformed):
		return problem.New(http.StatusBadRequest, problem.TypeMalformed, err.Error())
	case errors.Is(err, signing.ErrUntrustedSigner):
		return problem.New(http.StatusForbidden, problem.TypeUntrustedSigner, err.Error())
	case errors.Is(err, signing.ErrInvalidSignature), errors.Is(err, signing.ErrNoSignature):
		return problem.New(http.StatusForbidden, problem.TypeInvalidSignature, err.Error())
	case errors.Is(err, intake.ErrSenderMismatch):
		return problem.New(http.StatusForbidden, problem.TypeSenderMismatch, err.Error())
	case errors.Is(err, intake.ErrParts):
		return problem.New(http.StatusUnprocessableEntity, problem.TypeMultipartParts, err.Error())
	case errors.Is(err, intake.ErrPartRead):
		return problem.New(http.StatusBadRequest, problem.TypeMalformed, err.Error())
	case errors.Is(err, paket.ErrAttachmentDigest):
		p := problem.New(http.StatusUnprocessableEntity, problem.TypeAttachmentDigest, err.Error())
		if errors.As(err, &fe) {
			p.With("field", fe.Field)
		}
		return p
	case errors.Is(err, paket.ErrInvalidField):
		p := problem.New(http.StatusUnprocessableEntity, problem.TypeInvalidField, err.Error())
		if errors.As(err, &fe) {
			p.With("field", fe.Field)
		}
		return p
	case errors.As(err, &amb):
		cands := make([]placeJSON, 0, len(amb.Candidates))
		for _, a := range amb.Candidates {
			cands = append(cands, placeOf(a, ""))
		}
		return problem.New(http.StatusUnprocessableEntity, problem.TypeAmbiguousPlace,
			fmt.Sprintf("%q names %d places; choose one by its ARS", amb.Query, len(amb.Candidates))).With("candidates", cands)
	case errors.As(err, &ambSvc):
		// A name several services bear ("Sterbeurkunde"): no single one, so
		// unknown-service, with the services to choose from by their key.
		cands := make([]serviceJSON, 0, len(ambSvc.Candidates))
		for _, s := range ambSvc.Candidates {
			cands = append(cands, serviceJSON{LeikaKey: s.Key, Name: s.Name})
		}
		return problem.New(http.StatusUnprocessableEntity, problem.TypeUnknownService,
			fmt.Sprintf("%q names %d services; choose one by its LeiKa key", ambSvc.Query, len(ambSvc.Candidates))).With("candidates", cands)
	case errors.Is(err, routing.ErrUnknownService):
		return problem.New(http.StatusUnprocessableEntity, problem.TypeUnknownService, err.Error())
	case errors.Is(err, routing.ErrUnknownPlace):
		return problem.New(http.StatusUnprocessableEntity, problem.TypeUnknownPlace, err.Error())
	case errors.Is(err, routing.ErrNoResponsibleOffice):
		return problem.New(http.StatusUnprocessableEntity, problem.TypeNoResponsibleOffice, err.Error())
	case errors.Is(err, routing.ErrInvalidQuery):
		return problem.New(http.StatusUnprocessableEntity, problem.TypeInvalidField, err.Error())
	case errors.Is(err, broker.ErrBytesRemoved):
		return problem.New(http.StatusGone, problem.TypeBytesRemoved, "the package bytes were removed (the retention period after the office's answer ended, or an operator erased them on request); the record and the receipts remain")
	case errors.Is(err, broker.ErrNotFound):
		return problem.New(http.StatusNotFound, problem.TypeNotFound, "no such resource")
	case errors.Is(err, submission.ErrTakenOver):
		// Before conflict, which it comes with. The detail names no clerk: it is
		// what the office's system logs and passes on (a ticket, a monitor), and
		// the case's view shows what the office needs (takenOver, the events).
		return problem.New(http.StatusConflict, problem.TypeTakenOver, "a clerk took this case over in the office's web mailbox (Behördenpostfach) before your system had it; it is processed there now, and your system neither fetches, decides nor answers it (the clerk answers the applicant): drop it (its view shows takenOver)")
	case errors.Is(err, submission.ErrNotDelivered):
		// Before conflict, which it comes with: the conflict's type (the
		// contract's), with a detail in the office's terms. The error's own
		// text ("conflict: illegal state transition: ...") named neither the
		// cause nor the way out to the integrator who reads it.
		return problem.New(http.StatusConflict, problem.TypeConflict, "your office does not have this case yet (it was neither delivered to it nor fetched): fetch its package first (GET /v1/office/submissions/{id}/package), then send this again; nothing was recorded")
	case errors.Is(err, broker.ErrConflict):
		return problem.New(http.StatusConflict, problem.TypeConflict, err.Error())
	case errors.Is(err, broker.ErrStopped):
		return problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, "the gateway is shutting down; retry")
	case errors.Is(err, broker.ErrStoreUnavailable):
		return problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, "the gateway's store cannot be reached right now (cluster mode: the NATS cluster is out of reach or has no quorum); retry later")
	case errors.Is(err, broker.ErrUnreadable):
		return problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, "the stored bytes cannot be read right now; retry later")
	case errors.Is(err, httpbody.ErrBusy):
		return problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, "the gateway holds as many packages in memory as it may (limits.body_memory); nothing was accepted; retry later")
	case errors.Is(err, intake.ErrBusy):
		return problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, "the gateway is busy verifying other packages; nothing was accepted; retry later")
	case errors.Is(err, broker.ErrGatewayCertificate):
		return problem.New(http.StatusServiceUnavailable, problem.TypeGatewayCertificate, err.Error()+"; nothing was accepted; retry later")
	case errors.Is(err, broker.ErrUnavailable):
		return problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, "the gateway cannot write right now (storage full or failing); nothing was accepted or recorded; retry later")
	}
	return problem.New(http.StatusInternalServerError, problem.TypeInternal, "internal error; the request was not accepted")
}

func isMaxBytes(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// RetryAfterSeconds is what a 503 suggests to a portal (and to a peer gateway).
const RetryAfterSeconds = "30"

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if clientgone.Answer(w, r, err, s.log) {
		return
	}
	p := ProblemFor(err)
	if p.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", RetryAfterSeconds)
	}
	// The route's pattern, not the path: a path may be 60 KB of an attacker's
	// choosing (and holds ids), as observe's rule for the access log says.
	route := routePattern(r)
	switch {
	case p.Status == http.StatusServiceUnavailable && (errors.Is(err, intake.ErrBusy) || errors.Is(err, httpbody.ErrBusy) || errors.Is(err, broker.ErrStopped)):
		// Overload or a stop: the answer, not a fault, and under load hundreds
		// a second (the busy counters and their alert say how many).
		if s.busyLog.Allow(time.Now()) {
			s.log.Info("requests refused for now (busy or stopping; at most one such line a minute)", "route", route, "err", err)
		}
	case errors.Is(err, broker.ErrGatewayCertificate):
		// Every new package is refused until the operator installs a valid
		// certificate: an error, once a minute while it lasts.
		if s.certLog.Allow(time.Now()) {
			s.log.Error("packages refused: the gateway certificate is not valid (at most one such line a minute)", "route", route, "err", err)
		}
	case p.Status == http.StatusServiceUnavailable:
		// The store cannot take writes or cannot be reached: a fault the operator
		// must see, once a minute while it lasts, not once per request.
		if s.unavailableLog.Allow(time.Now()) {
			s.log.Warn("requests refused: the store cannot be written or reached (at most one such line a minute)", "route", route, "err", err)
		}
	case p.Status >= 500:
		s.log.Error("request failed", "route", route, "err", err)
	default:
		s.log.Info("request refused", "route", route, "status", p.Status, "type", p.Type)
	}
	problem.Write(w, r, p)
}
