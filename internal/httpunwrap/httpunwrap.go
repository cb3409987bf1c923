// Package httpunwrap finds a writer of a given kind under an
// http.ResponseWriter, through the Unwrap chain that wrapping writers expose
// (as http.ResponseController follows it). The metrics' counting writer is
// wrapped by the faces' own writers (a paced download, a federation answer), and
// both the SOAP faces (httpmetrics.NoteFault) and problem documents
// (problem.Write) must reach it through them. A package of its own, without
// Prometheus, because api/problem, which the portal and office client
// libraries import, uses it too.
package httpunwrap

import "net/http"

// Find returns the first writer in w's Unwrap chain, w included, that is a T.
func Find[T any](w http.ResponseWriter) (T, bool) {
	for w != nil {
		if t, ok := w.(T); ok {
			return t, true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	var zero T
	return zero, false
}
