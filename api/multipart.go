package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/internal/httpbody"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/submission"
)

// submitMultipart takes a package as multipart/related (RFC 2387): the root part is
// the signed Antragspaket, read into memory and bounded by MaxBodyBytes as a plain
// application/xml body is; every further part is an attachment the package names
// by Referenz="cid:...", streamed by intake into the blob store while it is hashed.
// Memory stays bounded whatever the attachments' size.
//
// The root must be the first part. A start parameter may name it (it must then name
// the first part): the attachments are checked against the digests in the signed
// root, so a part before the root would have to be stored unchecked first.
//
// Timeouts: a 2 GiB upload over a 50 Mbit/s link takes six minutes, over a slow
// one an hour, far beyond the server's ReadTimeout and WriteTimeout (which bound
// every ordinary request, and whose fixed deadlines would cut uploads off). So this
// handler replaces the connection's read deadline by a progress rule: every
// UploadWindow the request must deliver UploadWindow×UploadMinRate bytes, or the
// read fails and the connection is closed. A slowloris client is still bounded (it
// must keep sending at the minimum rate, and MaxUploadBytes caps the total), and
// ReadHeaderTimeout still bounds the headers. The write deadline is lifted during
// the upload and set to WriteTimeout again for the response.
//
// An answer may come before the body's end: a repeat is answered with its parts
// unread, a refusal where it is found. net/http would then close the connection
// with the rest unread, and the kernel resets it: a client that sends the whole
// body before it reads the answer (curl, Java's HttpURLConnection) saw "connection
// reset" instead, and took a repeat or a refusal for a failure to retry. So such an
// answer closes the connection (Connection: close) only after the rest is read and
// discarded (drainUpload).
func (s *Server) submitMultipart(w http.ResponseWriter, r *http.Request, params map[string]string) {
	boundary := params["boundary"]
	if boundary == "" {
		problem.Write(w, r, problem.New(400, problem.TypeMalformed, "multipart/related needs a boundary parameter"))
		return
	}
	if t := params["type"]; t != "" && !AcceptsXML(t) {
		problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia,
			"the root part of multipart/related must be the signed Antragspaket (type=application/xml)"))
		return
	}
	if declaredTooLarge(w, r, s.opt.MaxUploadBytes) {
		return
	}
	rc := http.NewResponseController(w)
	// The body is read on after an early answer (drainUpload); without this,
	// net/http would read at most 256 KiB of it before the answer and then close.
	// Not every ResponseWriter has it (tests' recorders; HTTP/2 needs none).
	_ = rc.EnableFullDuplex()
	body := uploadBody(w, r, s.opt.MaxUploadBytes, s.opt.UploadWindow, s.opt.UploadMinRate)
	mr := multipart.NewReader(body, boundary)
	root, err := mr.NextRawPart()
	if err != nil {
		s.failUpload(w, r, rc, body, fmt.Errorf("%w: the root part: %w", intake.ErrPartRead, err))
		return
	}
	if start := params["start"]; start != "" && startID(start) != paket.ContentID(root.Header.Get("Content-Id")) {
		s.failUpload(w, r, rc, body, fmt.Errorf("%w: start names %s, but the first part is %q; the root part must come first", intake.ErrParts, start, root.Header.Get("Content-Id")))
		return
	}
	raw, release, err := ReadRoot(r.Context(), s.opt.BodyBudget, root, s.opt.MaxBodyBytes, "the signed Antragspaket")
	defer release()
	if err != nil {
		s.failUpload(w, r, rc, body, err)
		return
	}
	a, err := s.opt.Pipeline.SubmitParts(r.Context(), raw, RelatedParts(mr))
	if err != nil {
		s.failUpload(w, r, rc, body, err)
		return
	}
	_ = rc.SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout))
	if a.Created {
		// Every part was read: what may follow the closing delimiter is net/http's
		// to read or to close the connection on.
		writeIntake(w, a)
		return
	}
	// A repeat, its parts unread: a portal's package whose signature was checked
	// again, so the rest may be what its signed sizes declare (plus the parts'
	// framing) — what its first upload was allowed, under the same progress rule.
	httpbody.Refusing(w, r)
	writeIntake(w, a)
	drainUpload(w, r, body, RepeatRest(a.Submission.Attachments), time.Time{})
}

// RepeatRest is what the rest of a repeated upload may hold once its root was
// read and its parts were not: what its attachments' signed sizes declare plus
// the parts' framing, as much as its first upload was allowed. The portal
// API's uploads and the federation's forwardings with attachments drain a
// repeat so far (DrainUpload).
func RepeatRest(atts []submission.Attachment) int64 {
	return declaredBytes(atts) + uploadFraming
}

// uploadFraming is what the parts of a multipart/related upload may add to their
// contents: delimiters and part headers (as MaxUploadBytes allows for).
const uploadFraming = 1 << 20

// declaredBytes is the sum of the attachments' signed sizes.
func declaredBytes(atts []submission.Attachment) int64 {
	var n int64
	for _, a := range atts {
		n += max(a.Size, 0)
	}
	return n
}

// startID is the Content-ID the start parameter names: "<id>" as RFC 2387 writes
// it, or the bare id some clients send.
func startID(start string) string {
	if id := paket.ContentID(start); id != "" {
		return id
	}
	return strings.TrimSpace(start)
}

// failUpload answers a refused upload and closes the connection. The rest of the
// body is read and discarded first, so that the client can read the answer
// (submitMultipart says why), but no more than a refusal is worth: at most
// MaxBodyBytes (what any plain request may send) within one UploadWindow (the
// server's read timeout), under the progress rule — not the gigabytes an upload
// may have, which at the minimum rate would hold the connection for days. A
// client that reads the answer while it sends (curl, Go) stops within a round
// trip; one that sends everything first gets the answer if the rest fits.
func (s *Server) failUpload(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, body *progressReader, err error) {
	_ = rc.SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout))
	httpbody.Refusing(w, r)
	s.fail(w, r, err)
	drainUpload(w, r, body, s.opt.MaxBodyBytes, time.Now().Add(s.opt.UploadWindow))
}

// drainUpload sends the answer written (readied by httpbody.Refusing) and then
// reads and discards the rest of an upload's body until its end, at most
// maxBytes and, unless until is zero, until then; the progress rule of body
// still applies (httpbody.Drain says why).
func drainUpload(w http.ResponseWriter, r *http.Request, body *progressReader, maxBytes int64, until time.Time) {
	if r.ProtoMajor == 1 {
		if body.failed {
			// The progress rule or the size limit ended the body: there is no
			// rest to read, and net/http closes the connection.
			return
		}
		body.until = until
		body.restart()
	}
	httpbody.Drain(w, r, body, maxBytes, time.Time{})
}

// DrainUpload is drainUpload for a body from UploadBody, for the federation's
// forwarding with attachments: its progress rule bounds the time unless until
// is set. Any other reader is drained by httpbody.Drain alone.
func DrainUpload(w http.ResponseWriter, r *http.Request, body io.Reader, maxBytes int64, until time.Time) {
	if p, ok := body.(*progressReader); ok {
		drainUpload(w, r, p, maxBytes, until)
		return
	}
	httpbody.Drain(w, r, body, maxBytes, until)
}

// ReadRoot reads the root part of a multipart/related upload into memory: XML (what
// names what it must be, for the answer), sent as it is, at most max bytes. The
// parts after it stay unread. The portal's intake and the federation's forwarding
// with attachments read their roots so; the errors are their answers (ErrPartRead,
// httpbody.ErrBusy, or a 415 or 413 problem that ProblemFor passes on).
//
// The root's length is unknown until read: its bytes are taken from budget as
// they arrive (httpbody.FirstBytes says why), and what it needed is kept while
// the attachments stream (they are not held) until release, which the caller
// defers whatever the error.
func ReadRoot(ctx context.Context, budget *httpbody.Budget, root *multipart.Part, max int64, what string) (raw []byte, release func(), err error) {
	lease, err := budget.Acquire(ctx, httpbody.FirstBytes)
	if err != nil {
		return nil, func() {}, err
	}
	raw, err = readRoot(root, lease.Reader(ctx, root, max), max, what)
	lease.Keep(int64(cap(raw)))
	return raw, lease.Release, err
}

func readRoot(root *multipart.Part, body io.Reader, max int64, what string) ([]byte, error) {
	if !AcceptsXML(root.Header.Get("Content-Type")) {
		return nil, problem.New(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMedia,
			"the root (first) part must be "+what+" as application/xml")
	}
	if err := IdentityEncoding(root.Header); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(body, max+1))
	if errors.Is(err, httpbody.ErrBusy) {
		return nil, err // the gateway's memory, not the client's body: 503
	}
	if err != nil {
		return nil, fmt.Errorf("%w: the root part: %w", intake.ErrPartRead, err)
	}
	if int64(len(raw)) > max {
		return nil, problem.New(http.StatusRequestEntityTooLarge, problem.TypeTooLarge,
			fmt.Sprintf("the root part exceeds the limit of %d bytes", max)).With("max", max)
	}
	return raw, nil
}

// UploadBody is r's body, at most maxBytes, under the progress rule of uploads
// (see submitMultipart): every window, window×minRate bytes must arrive. The
// write deadline is lifted until AnswerUpload sets it for the answer. The
// federation's forwarding with attachments reads its uploads so, too.
func UploadBody(w http.ResponseWriter, r *http.Request, maxBytes int64, window time.Duration, minRate int64) io.Reader {
	return uploadBody(w, r, maxBytes, window, minRate)
}

func uploadBody(w http.ResponseWriter, r *http.Request, maxBytes int64, window time.Duration, minRate int64) *progressReader {
	rc := http.NewResponseController(w)
	body := &progressReader{r: http.MaxBytesReader(w, r.Body, maxBytes), rc: rc, pace: newPace(window, minRate, rc.SetReadDeadline)}
	body.restart()
	// Not every ResponseWriter supports deadlines (tests' recorders): then the
	// server's own timeouts stay, which only shortens what an upload may take.
	_ = rc.SetWriteDeadline(time.Time{})
	return body
}

// AnswerUpload sets the write deadline for the answer to an upload (UploadBody).
func AnswerUpload(w http.ResponseWriter, writeTimeout time.Duration) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
}

// RelatedParts is intake.Parts over the parts of a multipart/related body that
// follow its root part.
func RelatedParts(mr *multipart.Reader) intake.Parts { return &mpParts{mr: mr} }

// IdentityEncoding refuses a part whose Content-Transfer-Encoding changes its bytes:
// the signature and the digests are over the bytes as sent, and HTTP is 8-bit clean.
func IdentityEncoding(h textproto.MIMEHeader) error {
	cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	switch cte {
	case "", "binary", "8bit", "7bit":
		return nil
	}
	return fmt.Errorf("%w: Content-Transfer-Encoding %q; send parts as binary", intake.ErrParts, cte)
}

// mpParts is intake.Parts over a multipart reader.
type mpParts struct{ mr *multipart.Reader }

func (m *mpParts) Next() (string, io.Reader, error) {
	p, err := m.mr.NextRawPart()
	if err == io.EOF {
		return "", nil, io.EOF
	}
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", intake.ErrPartRead, err)
	}
	if err := IdentityEncoding(p.Header); err != nil {
		return "", nil, err
	}
	return p.Header.Get("Content-Id"), p, nil
}

// pace is the progress rule of a long transfer: whenever quota bytes moved within
// the current window, the deadline (set: the read or the write one) moves to a new
// window from now. A transfer that moves less within a window meets the deadline.
// A deadline never moves past until, if set.
type pace struct {
	set    func(time.Time) error
	window time.Duration
	quota  int64
	moved  int64 // bytes in the current window
	until  time.Time
}

func newPace(window time.Duration, minRate int64, set func(time.Time) error) pace {
	return pace{set: set, window: window, quota: max(1, int64(window.Seconds()*float64(minRate)))}
}

func (p *pace) restart() {
	p.moved = 0
	// Not every ResponseWriter supports deadlines (tests' recorders): then the
	// server's own timeouts stay.
	d := time.Now().Add(p.window)
	if !p.until.IsZero() && p.until.Before(d) {
		d = p.until
	}
	_ = p.set(d)
}

// add counts n bytes moved and starts a new window when the quota is reached.
func (p *pace) add(n int) {
	if p.moved += int64(n); p.moved >= p.quota {
		p.restart()
	}
}

// progressReader enforces the progress rule of an upload on its read deadline.
type progressReader struct {
	r  io.Reader
	rc *http.ResponseController
	pace
	failed bool // a read failed (not EOF): a deadline, the size limit, the connection
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != nil && err != io.EOF {
		p.failed = true
	}
	if err == io.EOF {
		// The whole body is in. net/http now reads the connection in the background
		// to notice a client that goes away, and a deadline hit there would cancel
		// the request while it stores and fsyncs: no deadline until the answer (the
		// server sets its own again for the next request).
		_ = p.rc.SetReadDeadline(time.Time{})
		return n, err
	}
	p.add(n)
	return n, err
}
