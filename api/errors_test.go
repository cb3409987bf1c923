package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
)

func TestProblemFor(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("intake: %w", err) }
	tests := []struct {
		name   string
		err    error
		status int
		typ    string
	}{
		{"package limit", &paket.LimitError{Limit: "depth", Max: 64, Got: 65}, 413, problem.TypeTooLarge},
		{"signing limit", wrap(signing.ErrLimit), 413, problem.TypeTooLarge},
		{"body limit", &http.MaxBytesError{Limit: 10}, 413, problem.TypeTooLarge},
		{"malformed", wrap(paket.ErrMalformed), 400, problem.TypeMalformed},
		{"malformed signature", wrap(signing.ErrMalformed), 400, problem.TypeMalformed},
		{"parts", wrap(intake.ErrParts), 422, problem.TypeMultipartParts},
		{"part unreadable", wrap(intake.ErrPartRead), 400, problem.TypeMalformed},
		{"untrusted", wrap(signing.ErrUntrustedSigner), 403, problem.TypeUntrustedSigner},
		{"invalid signature", wrap(signing.ErrInvalidSignature), 403, problem.TypeInvalidSignature},
		{"no signature", wrap(signing.ErrNoSignature), 403, problem.TypeInvalidSignature},
		{"sender", wrap(intake.ErrSenderMismatch), 403, problem.TypeSenderMismatch},
		// A digest error is also an invalid field; the more specific type must win.
		{"attachment digest", &paket.FieldError{Field: "Anlage", Reason: "x", Err: paket.ErrAttachmentDigest}, 422, problem.TypeAttachmentDigest},
		{"invalid field", &paket.FieldError{Field: "Kopf/Leistung/Schluessel", Reason: "x"}, 422, problem.TypeInvalidField},
		{"ambiguous place", &routing.AmbiguousPlaceError{Query: "01561", Candidates: []*routing.Area{{Key: "146270060060", ARS: "146270060060", Name: "Großenhain"}}}, 422, problem.TypeAmbiguousPlace},
		{"unknown service", wrap(routing.ErrUnknownService), 422, problem.TypeUnknownService},
		{"unknown place", wrap(routing.ErrUnknownPlace), 422, problem.TypeUnknownPlace},
		{"no office", wrap(routing.ErrNoResponsibleOffice), 422, problem.TypeNoResponsibleOffice},
		{"bad query", wrap(routing.ErrInvalidQuery), 422, problem.TypeInvalidField},
		{"not found", wrap(broker.ErrNotFound), 404, problem.TypeNotFound},
		{"conflict", wrap(broker.ErrConflict), 409, problem.TypeConflict},
		{"stopping", broker.ErrStopped, 503, problem.TypeUnavailable},
		{"bytes unreadable", wrap(broker.ErrUnreadable), 503, problem.TypeUnavailable},
		{"busy", wrap(intake.ErrBusy), 503, problem.TypeUnavailable},
		{"our own failure", errors.New("disk on fire"), 500, problem.TypeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ProblemFor(tc.err)
			if p.Status != tc.status || p.Type != tc.typ {
				t.Fatalf("got %d %s, want %d %s", p.Status, p.Type, tc.status, tc.typ)
			}
			if p.Title == "" {
				t.Fatal("problem without a title")
			}
		})
	}
	if p := ProblemFor(errors.New("secret path /var/x")); p.Detail == "secret path /var/x" {
		t.Fatal("an internal error's text must not reach the client")
	}
}

func TestClients(t *testing.T) {
	c := NewClients("adm", map[string]string{"amt24": "p-tok", "empty": ""}, map[string][]string{"dd": {"o-tok", "o-tok-old"}})
	req := func(h string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		return r
	}
	if id, ok := c.Portal(req("Bearer p-tok")); !ok || id != "amt24" {
		t.Fatal("portal token")
	}
	if id, ok := c.Portal(req("bearer   p-tok")); !ok || id != "amt24" {
		t.Fatal("scheme is case-insensitive")
	}
	for _, h := range []string{"", "Bearer", "Bearer ", "Basic p-tok", "Bearer o-tok", "Bearer p-tokx"} {
		if _, ok := c.Portal(req(h)); ok {
			t.Errorf("%q accepted as portal", h)
		}
	}
	// During a rotation each of an office's tokens is its own (two instances
	// of its system switch one after the other).
	for _, tok := range []string{"o-tok", "o-tok-old"} {
		if id, ok := c.Office(req("Bearer " + tok)); !ok || id != "dd" {
			t.Errorf("office token %s: %q %v", tok, id, ok)
		}
	}
	if _, ok := c.Office(req("Bearer p-tok")); ok {
		t.Error("a portal token must not open the office API")
	}
	if !c.Admin(req("Bearer adm")) || c.Admin(req("Bearer o-tok")) {
		t.Error("admin token")
	}
	if NewClients("", nil, nil).Admin(req("Bearer ")) {
		t.Error("no admin token configured must mean no admin access")
	}
}

// TestClientsTakeAnOfficeTokenWhole: the tokens the gateway gives NewClients
// (config.OfficeClient.APITokens) keep a blank inside a token, as bearer keeps
// the one a client sends: a passphrase authenticates whole, and neither of its
// halves does. For a few hours the configured token was split at blanks, so
// the office system sending it whole got 401 and each half alone was enough.
// The entries of tokens (a rotation) are each the office's.
func TestClientsTakeAnOfficeTokenWhole(t *testing.T) {
	const first, second = "office-a-secret-part-one", "office-a-secret-part-two"
	c := NewClients("", nil, map[string][]string{
		"office-a": config.OfficeClient{Token: " " + first + " " + second + "\n"}.APITokens(),
		"office-b": config.OfficeClient{Tokens: []string{"office-b-new with a blank", "office-b-old"}}.APITokens(),
	})
	office := func(tok string) (string, bool) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return c.Office(r)
	}
	for tok, want := range map[string]string{first + " " + second: "office-a", "office-b-new with a blank": "office-b", "office-b-old": "office-b"} {
		if id, ok := office(tok); !ok || id != want {
			t.Errorf("token %q: %q %v, want %s", tok, id, ok, want)
		}
	}
	for _, tok := range []string{first, second, "office-b-new", "office-b-new with a blank office-b-old"} {
		if id, ok := office(tok); ok {
			t.Errorf("token %q authenticates %s", tok, id)
		}
	}
}
