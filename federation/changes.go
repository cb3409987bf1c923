package federation

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/signing"
)

// A nudge (POST /federation/v1/hinweis) makes the forwarding gateway ask early.
// An empty one names nothing and needs no credentials: it may only cost one
// early question per peer and NudgeGap, about the open packages and those
// decided in the last day (lateKicked). A reply that comes later than that —
// a Bescheid weeks after the office took the case in — waited for the decided
// package's turn, up to maxLateGap (12 hours), before it reached the portal.
//
// So the receiving gateway names the packages that changed, in a signed
// Aenderungsmeldung to the same path. Signed, because it steers which packages
// the next question names: only the peer a package was forwarded to can bring
// its question forward, and only for packages forwarded to it. It is still just
// a hint: the question that follows is the same signed Statusabfrage within the
// same NudgeGap, and its answer is the only thing recorded. A gateway of an
// older build takes the signed body for an empty nudge (it never read the
// body), and a newer one takes an empty nudge as before.

// MaxChanges is the most packages one Aenderungsmeldung names; the receiving
// gateway sends more in several.
const MaxChanges = 100

// MaxChangesBytes bounds an Aenderungsmeldung: a head and MaxChanges packages
// named as in a status question (each text at most 500 characters, escaped
// into at most 6 bytes a character), and the signature.
const MaxChangesBytes = MaxChanges*(2*500*6+128) + 128<<10

// Changes is an Aenderungsmeldung: the receiving gateway names packages the
// forwarding gateway forwarded to it whose state or replies changed.
type Changes struct {
	From, To string
	At       time.Time
	Refs     []Ref
}

func checkChangesSize(n int) error {
	if n == 0 || n > MaxChanges {
		return fmt.Errorf("%w: an Aenderungsmeldung names 1 to %d packages", ErrMalformed, MaxChanges)
	}
	return nil
}

// Sign builds and signs the document.
func (c *Changes) Sign(s *signing.Signer) ([]byte, error) {
	if err := checkChangesSize(len(c.Refs)); err != nil {
		return nil, err
	}
	root := statusDoc("Aenderungsmeldung", c.From, c.To, c.At)
	for _, r := range c.Refs {
		addVorgang(root, r)
	}
	return s.Sign(root)
}

// ParseChanges reads an Aenderungsmeldung from a verified root.
func ParseChanges(root *etree.Element) (*Changes, error) {
	if err := checkRoot(root, "Aenderungsmeldung"); err != nil {
		return nil, err
	}
	r := newReader(root, "Aenderungsmeldung")
	c := &Changes{}
	c.From, c.To, c.At = readHead(r)
	for r.peek("Vorgang") {
		if len(c.Refs) == MaxChanges {
			return nil, checkChangesSize(MaxChanges + 1)
		}
		ref, _, err := readVorgang(r, "Aenderungsmeldung")
		if err != nil {
			return nil, err
		}
		c.Refs = append(c.Refs, ref)
	}
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	if err := checkChangesSize(len(c.Refs)); err != nil {
		return nil, err
	}
	return c, nil
}

// nudge takes a nudge: an empty body kicks every peer's questions (Nudged); a
// signed Aenderungsmeldung brings the question about the packages it names
// forward (Changed), for the peer that signed it. Either is answered 204 once
// taken; a body that is neither is refused like any other peer document.
func (h *Receiver) nudge(w http.ResponseWriter, r *http.Request) {
	var c *Changes
	var peer config.Peer
	if r.ContentLength != 0 {
		body, lease, ok := h.read(w, r, MaxChangesBytes)
		if !ok {
			return
		}
		if len(body) > 0 { // else sent chunked, and empty
			c, peer, ok = check(h, w, r, body, "Aenderungsmeldung", ParseChanges, func(c *Changes) (string, string, time.Time) { return c.From, c.To, c.At })
		}
		// The body's room in the budget is given back once it is read (as a
		// status question's): Changed may look packages up in the store, which
		// in a cluster without quorum takes up to its timeout a read, and the
		// room held meanwhile was refused to the forwardings (503).
		lease.Release()
		if !ok {
			return
		}
	}
	switch {
	case c != nil && h.Changed != nil:
		// In the peer's one slot its status questions take (questions.go):
		// up to MaxChanges store reads, as much as a question of as many
		// packages, and a broken peer sending them in parallel took as many
		// cores as it had connections.
		done, ok := h.questionSlot(w, r, peer.ID)
		if !ok {
			return
		}
		defer done()
		// The request's context: the lookups end when the peer has gone.
		h.Changed(r.Context(), peer.ID, c.Refs)
	case h.Nudged != nil:
		h.Nudged()
	}
	w.WriteHeader(http.StatusNoContent)
}

// Changed tells the peer gateway that forwarded the packages refs to this one
// that they changed, so that it asks about them at once (best effort: it asks
// at its own pace anyway). More than MaxChanges go in several documents.
func (c *Client) Changed(ctx context.Context, peer config.Peer, refs []Ref) error {
	if err := c.Trust.CheckPeer(peer); err != nil {
		return &untrustedPeer{Peer: peer.ID, Err: err}
	}
	for start := 0; start < len(refs); start += MaxChanges {
		ch := &Changes{From: c.Self, To: peer.ID, At: c.now().UTC(), Refs: refs[start:min(start+MaxChanges, len(refs))]}
		doc, err := ch.Sign(c.Signer)
		if err != nil {
			return err
		}
		if err := c.sendChanges(ctx, peer, doc); err != nil {
			return err
		}
	}
	return nil
}

// changesTries is how often Changed sends a document the peer answers 429.
const changesTries = 3

// sendChanges sends one signed Aenderungsmeldung. A 429 is the peer serving
// its slot's work one at a time (questions.go): the document is sent again
// after the Retry-After (1 s if none, at most 5 s), up to changesTries times
// in all. The nudger drops what it could not tell, and a decided package left
// untold waited for its turn at the peer, up to 12 hours, with its Bescheid.
func (c *Client) sendChanges(ctx context.Context, peer config.Peer, doc []byte) error {
	for try := 1; ; try++ {
		status, _, p, err := c.post(ctx, peer, PathNudge, doc, nil)
		if err != nil {
			return err
		}
		if status == http.StatusNoContent || status == http.StatusOK {
			return nil
		}
		if status != http.StatusTooManyRequests || try == changesTries {
			return classify(peer.ID, status, p)
		}
		wait := p.retryAfter
		if wait <= 0 {
			wait = time.Second
		}
		t := time.NewTimer(min(wait, 5*time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
