package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// ErrParts: the parts of a multipart/related request do not fit the package's
// references — a part no Anlage names, a Content-ID twice, a part without
// Content-ID, or a referenced part that is missing (422 multipart-parts).
var ErrParts = errors.New("intake: the request's parts do not match the package's attachment references")

// ErrNoParts: the package names attachments by reference but came as a plain
// application/xml body, which has nowhere to carry them (422 multipart-parts).
var ErrNoParts = fmt.Errorf("%w: the package references attachments (Referenz=\"cid:...\"); send it as multipart/related with one part per reference", ErrParts)

// ErrPartRead: a part's body could not be read to its end (the client went away,
// the multipart framing broke): the request, not the gateway, failed (400).
var ErrPartRead = errors.New("intake: could not read a part of the request")

// Parts yields the attachment parts of a multipart/related request, after its root.
type Parts interface {
	// Next returns the next part's Content-ID header value and its body, which is
	// valid until the following Next; io.EOF after the last part.
	Next() (contentID string, body io.Reader, err error)
}

// attachments returns the package's attachments for broker.Receive. Inline ones
// carry their verified bytes; referenced ones are streamed from parts into the blob
// store while hashed (PutStream with the signed SHA-256 and Groesse as digest and
// limit, so a part that differs is never stored under any name). h holds the
// blobs stored so far (nil: none), also on error, for discard.
func (p *Pipeline) attachments(ctx context.Context, pk *paket.Paket, parts Parts) (atts []broker.AttachmentIn, h *holding, err error) {
	byCID := map[string]int{} // Content-ID → index in pk.Anlagen
	for i, a := range pk.Anlagen {
		meta := submission.Attachment{ID: a.ID, FileName: a.Dateiname, MimeType: a.MimeType, Size: a.Groesse, SHA256: a.SHA256}
		if a.Referenz == "" {
			atts = append(atts, broker.AttachmentIn{Meta: meta, Content: a.Inhalt})
			continue
		}
		cid, err := paket.CID(a.Referenz)
		if err != nil {
			return nil, nil, &paket.FieldError{Field: anlagePath(a) + "/@Referenz", Reason: err.Error()}
		}
		byCID[cid] = i
		atts = append(atts, broker.AttachmentIn{Meta: meta, Stored: true})
	}
	if len(byCID) > 0 && parts == nil {
		return nil, nil, ErrNoParts
	}
	if parts == nil {
		return atts, nil, nil
	}
	// atts has the Anlagen's order, so index i of pk.Anlagen is index i of atts.
	done := map[string]bool{}
	for {
		header, body, err := parts.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, h, err
		}
		cid := paket.ContentID(header)
		if cid == "" {
			return nil, h, fmt.Errorf("%w: a part has no Content-ID <...> (got %q)", ErrParts, header)
		}
		i, ok := byCID[cid]
		if !ok {
			return nil, h, fmt.Errorf("%w: part <%s> is named by no Anlage", ErrParts, cid)
		}
		if done[cid] {
			return nil, h, fmt.Errorf("%w: Content-ID <%s> appears twice", ErrParts, cid)
		}
		done[cid] = true
		a := pk.Anlagen[i]
		// The limit is the signed size: one byte more is a mismatch, so a part is
		// never read further than the package allows (MaxReferencedBytes and
		// MaxReferencedTotal bounded the declared sizes in Parse).
		tr := &trackedReader{r: body}
		put, err := p.Broker.Blobs().PutStream(ctx, tr, a.Groesse, a.SHA256)
		switch {
		case errors.Is(err, store.ErrTooLarge):
			return nil, h, &paket.FieldError{Field: anlagePath(a), Reason: "the part <" + cid + "> has more bytes than the declared Groesse",
				Err: fmt.Errorf("%w: attachment %q is longer than %d bytes", paket.ErrAttachmentDigest, a.ID, a.Groesse)}
		case errors.Is(err, store.ErrDigestMismatch):
			return nil, h, &paket.FieldError{Field: anlagePath(a), Reason: "the part <" + cid + "> does not match the declared Groesse and SHA256",
				Err: fmt.Errorf("%w: %w", paket.ErrAttachmentDigest, err)}
		case tr.err != nil:
			// The body failed, not the store: 400 (or the 413 of a body limit).
			return nil, h, fmt.Errorf("%w: attachment %q: %w", ErrPartRead, a.ID, tr.err)
		case err != nil:
			if ctx.Err() != nil {
				return nil, h, fmt.Errorf("intake: attachment %q: %w", a.ID, err)
			}
			// The disk or the cluster: nothing was accepted, the portal retries later.
			return nil, h, fmt.Errorf("intake: store attachment %q: %w: %w", a.ID, broker.ErrUnavailable, err)
		}
		if h == nil {
			h = p.hold()
		}
		h.add(put)
		if put.Size != a.Groesse {
			// A shorter stream hashes differently unless the declared digest is of the
			// shorter content: Groesse is signed too, so it must match on its own.
			return nil, h, &paket.FieldError{Field: anlagePath(a), Reason: "the part <" + cid + "> does not match the declared Groesse",
				Err: fmt.Errorf("%w: attachment %q has %d bytes, declared %d", paket.ErrAttachmentDigest, a.ID, put.Size, a.Groesse)}
		}
	}
	for cid, i := range byCID {
		if !done[cid] {
			return nil, h, fmt.Errorf("%w: the part <%s> of Anlage %q is missing", ErrParts, cid, pk.Anlagen[i].ID)
		}
	}
	return atts, h, nil
}

func (p *Pipeline) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

func anlagePath(a paket.Anlage) string { return "Antragspaket/Anlagen/Anlage[@ID='" + a.ID + "']" }

// discard ends h and removes the blobs this request created and no record
// references. Best effort: what stays is unreferenced and the retention sweep
// removes it later.
func (p *Pipeline) discard(h *holding) {
	for _, put := range h.end() {
		if err := store.DiscardNew(p.Broker.Blobs(), put); err != nil {
			p.log().Warn("intake: could not remove the blob of a refused request; the retention sweep will", "digest", put.Digest, "err", err)
		}
	}
}

// trackedReader keeps the error of the reader it wraps, so a failing request body is
// told apart from a failing store.
type trackedReader struct {
	r   io.Reader
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// holding keeps the blobs a request has streamed fresh until its record commits.
//
// Why: the parts of a multipart upload are stored one after another, and the
// record that references them commits only after the last (at the upload's
// minimum rate, 16 KiB/s by default, a 4 GiB package may take days). Every
// deleter decides from the records committed before it looked and from a blob's
// time: the retention's sweep removes what no record references and is older
// than its grace (an hour), an erasure what its case held and is older than
// store.HoldGrace. Both took an upload's first attachment while its last part was
// still on its way, and the package was then acknowledged without it. So from
// its first stored part until broker.Receive returns, the request refreshes its
// blobs every HoldRefresh (store.Refresher), and once more right before Receive:
// a blob found gone then fails the request (503, send again) instead of a 201
// for bytes that are not there. Only requests with referenced attachments ever
// start one: a plain package costs nothing.
type holding struct {
	ref   store.Refresher // nil: the store never deletes on its own
	every time.Duration
	log   *slog.Logger

	mu   sync.Mutex
	puts []store.StreamPut
	stop chan struct{}
	done chan struct{}
}

func (p *Pipeline) hold() *holding {
	h := &holding{every: p.HoldRefresh, log: p.log()}
	if h.every <= 0 {
		h.every = store.HoldRefresh
	}
	h.ref, _ = p.Broker.Blobs().(store.Refresher)
	return h
}

// add holds put too, starting the refreshes with the first one.
func (h *holding) add(put store.StreamPut) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.puts = append(h.puts, put)
	if h.ref == nil || h.stop != nil {
		return
	}
	h.stop, h.done = make(chan struct{}), make(chan struct{})
	go h.run(h.stop, h.done)
}

func (h *holding) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			// A failure is logged and the next tick tries again; the refresh
			// before Receive is the one that decides.
			ctx, cancel := context.WithTimeout(context.Background(), h.every)
			err := h.refresh(ctx)
			cancel()
			if err != nil {
				h.log.Warn("intake: could not refresh the attachments of an upload under way", "err", err)
			}
		}
	}
}

// refresh moves every held blob's time to now; the first error ends it.
func (h *holding) refresh(ctx context.Context) error {
	if h == nil || h.ref == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.puts {
		at, err := h.ref.Refresh(ctx, h.puts[i].Digest)
		if err != nil {
			return fmt.Errorf("attachment blob %s: %w", h.puts[i].Digest, err)
		}
		// DiscardNew compares with the blob's last time of this request's own.
		h.puts[i].Written = at
	}
	return nil
}

// end stops the refreshes and returns what was held.
func (h *holding) end() []store.StreamPut {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	stop, done := h.stop, h.done
	h.stop, h.done = nil, nil
	h.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.puts
}
