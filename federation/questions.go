package federation

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/internal/repeatlimit"
)

// One status question per peer at a time. A question costs this gateway a
// store read for every package it names, and a signature: 12–16 ms of CPU for
// one of 500 packages, under 1 ms for one of one (measured on loopback, a
// bolt store, 2 cores, the asker's signing included, 2026-12-07). A
// forwarding gateway asks one question at a time (federation.Tracker: each peer
// its own goroutine, batches one after the other), in a cluster one gateway
// per poll interval and any gateway on a nudge; the broker's confirmation of a
// package left handed over after a crash (peer.Adapter.Confirmed) asks one of
// one package per peer office at a time. Those few wait for each other for
// milliseconds. A broken peer that asked in
// parallel took as many cores as it had connections, and intake and delivery
// waited; now its questions wait for each other, and one that waited
// DefaultQuestionWait is answered 429 with Retry-After, which the asker takes
// as transient (classify), as it takes a timeout: nothing it asks about is
// lost, it asks again at its next poll.
//
// Questions one after the other are not bounded: they are what a legitimate
// peer with a backlog does (20 questions in a row for 10,000 open packages,
// every poll interval the forwarding gateway's operator chose, 50 ms at the
// least), and cannot be told from a broken loop here. One at a time, a peer
// takes at most one question's work at once.
//
// A signed Aenderungsmeldung takes the same slot (Receiver.nudge): up to
// MaxChanges store reads, 2 ms of CPU here for one of 100 (3.4 ms both sides,
// the sender's signing 1.4 ms of it; a status question of 100: 4.5 ms), so a
// broken peer sending them in parallel took the cores as its questions did.
// A peer's gateways send one at a time each (the nudger: one goroutine a
// peer, its documents one after the other), a cluster's few at once wait for
// each other and for a question for milliseconds; the sender waits out a 429
// and sends again (Client.Changed). One slot for both, not one each: a peer
// takes at most one such request's work at once, whichever it is.
//
// A fetch of a reply (Antwortabruf) takes none: its lookup is one store read
// (0.6 ms of CPU here with the signature's check), and the rest is the bytes,
// about 1 ms of CPU a MiB both sides (16 MiB: 16.6 ms), paced by the fetching side's reading.
// A slot held over the transfer would refuse a cluster's second gateway for as
// long as the first's fetch of 64 MiB takes on a slow link, up to 17 minutes,
// and a refused fetch costs the fetching side that reply's backoff (30 s,
// doubling) and a failure in AmtsbotePeerRepliesFailing; held over the lookup
// alone it would bound next to nothing.

// DefaultQuestionWait is how long a peer's status question waits for the one
// the peer has in flight: long enough for a cluster's gateways asking at once
// (a question takes milliseconds), short of the asker's QuestionTimeout.
const DefaultQuestionWait = 2 * time.Second

type questionSlots struct {
	mu    sync.Mutex
	slots map[string]chan struct{}
	// log lets the line of a 429 through once a minute (a looping peer
	// would flood it), with how many it left out.
	log     repeatlimit.Limit
	logOnce sync.Once
	unsaid  atomic.Int64
}

func (q *questionSlots) slot(peer string) chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.slots == nil {
		q.slots = map[string]chan struct{}{}
	}
	c := q.slots[peer] // one per configured peer: only a trusted peer gets here
	if c == nil {
		c = make(chan struct{}, 1)
		q.slots[peer] = c
	}
	return c
}

// questionSlot waits until peer has no other status question (or
// Aenderungsmeldung) in flight here,
// at most QuestionWait, and returns what ends this one's turn; or answers 429
// (or nothing, for a peer that has gone) and reports false.
func (h *Receiver) questionSlot(w http.ResponseWriter, r *http.Request, peer string) (done func(), ok bool) {
	c := h.questions.slot(peer)
	release := func() { <-c }
	select {
	case c <- struct{}{}:
		return release, true
	default:
	}
	wait := h.QuestionWait
	if wait <= 0 {
		wait = DefaultQuestionWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case c <- struct{}{}:
		return release, true
	case <-r.Context().Done():
		return nil, false
	case <-t.C:
	}
	h.Metrics.questionLimited(peer)
	q := &h.questions
	q.logOnce.Do(func() { q.log.Every = time.Minute })
	n := q.unsaid.Add(1)
	if q.log.Allow(time.Now()) {
		q.unsaid.Add(-n)
		h.log().Warn("a peer gateway's status questions refused: it asked again while one (or an Aenderungsmeldung) was in flight (at most one such line a minute; amtsbote_federation_questions_limited_total counts them all)",
			"peer", peer, "refused_since_last_line", n)
	}
	w.Header().Set("Retry-After", "1")
	problem.Write(w, r, problem.New(http.StatusTooManyRequests, TypeTooManyQuestions,
		"a status question or Aenderungsmeldung of this peer is in flight here; a peer sends one at a time; send again later"))
	return nil, false
}
