package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Clients maps bearer tokens to identities. Tokens are kept only as SHA-256 digests
// and compared in constant time, so neither memory dumps nor timing reveal them.
type Clients struct {
	admin   [32]byte
	hasAdm  bool
	portals map[[32]byte]string
	offices map[[32]byte]string
}

// NewClients builds the token table. Empty tokens are ignored (that client cannot log in).
// An office may have several tokens (config.OfficeClient.APITokens: the entries
// of offices.<id>.tokens, newest first during a rotation), each of which
// authenticates it: with one only, the instances of an office's system could
// not switch to a new token at the same moment, and one of them was refused
// until the next restart. Each token is taken whole: one with a blank inside
// (a passphrase) is never split, so only a client sending all of it matches,
// not one sending a word of it.
//
// A token is taken without the whitespace around it, as bearer reads the one a
// client sends (and HTTP strips a header value's ends): one configured with a
// trailing newline (a YAML block scalar, a copy from a file) never matched.
func NewClients(adminToken string, portals map[string]string, offices map[string][]string) *Clients {
	c := &Clients{portals: map[[32]byte]string{}, offices: map[[32]byte]string{}}
	if tok := strings.TrimSpace(adminToken); tok != "" {
		c.admin, c.hasAdm = sha256.Sum256([]byte(tok)), true
	}
	for id, tok := range portals {
		if tok = strings.TrimSpace(tok); tok != "" {
			c.portals[sha256.Sum256([]byte(tok))] = id
		}
	}
	for id, toks := range offices {
		for _, tok := range toks {
			if tok = strings.TrimSpace(tok); tok != "" {
				c.offices[sha256.Sum256([]byte(tok))] = id
			}
		}
	}
	return c
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

func lookup(m map[[32]byte]string, tok string) (string, bool) {
	d := sha256.Sum256([]byte(tok))
	id, ok := m[d]
	return id, ok
}

// Portal returns the portal id the request authenticates as.
func (c *Clients) Portal(r *http.Request) (string, bool) {
	tok, ok := bearer(r)
	if !ok {
		return "", false
	}
	return lookup(c.portals, tok)
}

// Office returns the office id the request authenticates as.
func (c *Clients) Office(r *http.Request) (string, bool) {
	tok, ok := bearer(r)
	if !ok {
		return "", false
	}
	return lookup(c.offices, tok)
}

// Admin reports whether the request carries the admin token.
func (c *Clients) Admin(r *http.Request) bool {
	tok, ok := bearer(r)
	if !ok || !c.hasAdm {
		return false
	}
	d := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(d[:], c.admin[:]) == 1
}
