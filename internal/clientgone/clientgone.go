// Package clientgone answers a request whose client went away before its answer:
// every face of the gateway (REST, federation, XTA) counts it the same way.
package clientgone

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
)

// Status is the status the metrics count for a request whose client went away
// before its answer (nginx's 499): nobody reads an answer, and it is no failure
// of the gateway, so it must not count as a 5xx (the AmtsboteServerErrors alert)
// nor be logged as an error.
const Status = 499

// Answer answers a request that failed because its client went away (the server
// cancels a request's context when its connection closes): it logs that at info
// and records Status, and reports true; for any other error it does nothing and
// reports false. Every face that can keep a client waiting answers through it.
// Nothing is lost: the store checks the context before it queues a write and
// never abandons one it queued, so a write was either not made or made whole, and
// a retry finds the latter (by its idempotency key, or its message id).
func Answer(w http.ResponseWriter, r *http.Request, err error, log *slog.Logger) bool {
	if !errors.Is(err, context.Canceled) || !errors.Is(r.Context().Err(), context.Canceled) {
		return false
	}
	log.Info("client went away before the answer", "path", r.URL.Path)
	w.WriteHeader(Status)
	return true
}
