package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
)

// serveBlob sends a blob of the given size with HTTP range support (206,
// Accept-Ranges: bytes, 416 as a problem document), so an office fetching an
// attachment of gigabytes can resume a broken download instead of starting over.
// The ETag is the content's SHA-256, so If-Range works across gateways and restarts.
//
// A file blob (store.Blobs) is an *os.File and seeks. A blob that only streams (the
// JetStream object store) is served through skipSeeker: a range is reached by
// reading and discarding the bytes before it, which costs time, not memory; and a
// request for several ranges gets the whole content (200), which RFC 9110 allows,
// because ranges out of order would need to read backwards.
//
// The server's WriteTimeout, a fixed deadline for every answer, would cut off any
// download that takes longer (2 GiB over a 100 Mbit/s link take three minutes): a
// blob is sent under a progress rule instead (Transfer), the counterpart of the
// upload rule — every Window, Window×MinRate bytes must go out, or the write
// deadline hits and the connection is closed.
//
// ServeBlob is exported for the other faces that hand out blobs (the web mailbox).
func ServeBlob(w http.ResponseWriter, r *http.Request, rc io.Reader, size int64, digest string, t Transfer) {
	serveBlob(w, r, rc, size, digest, t)
}

// The defaults of the progress rule of long transfers (up and down) and of the
// answer after an upload, those of http.read_timeout, http.upload_min_rate and
// http.write_timeout; every face that streams (the API, the mailbox, the
// federation endpoint) falls back to them.
const (
	DefaultTransferWindow  = 60 * time.Second
	DefaultTransferMinRate = 16 << 10 // bytes per second: 128 kbit/s, a slow mobile link
	DefaultWriteTimeout    = 60 * time.Second
)

// Transfer is the progress rule of a long download; zero fields take the defaults.
type Transfer struct {
	Window  time.Duration
	MinRate int64 // bytes per second
}

func serveBlob(w http.ResponseWriter, r *http.Request, rc io.Reader, size int64, digest string, t Transfer) {
	w = Paced(w, t)
	if digest != "" {
		w.Header().Set("ETag", `"`+digest+`"`)
	}
	if w.Header().Get("Content-Type") == "" {
		// ServeContent would sniff the type by reading ahead and seeking back.
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	rw := &rangeProblemWriter{ResponseWriter: w, r: r, size: size}
	// Range units ignore case (RFC 9110 14.1), http.ServeContent knows only
	// "bytes=": "Bytes=0-9" got 416 "outside the content".
	if unit, set, ok := strings.Cut(r.Header.Get("Range"), "="); ok && unit != "bytes" && strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		r.Header.Set("Range", "bytes="+set)
	}
	switch rangeOf(r, size) {
	case rangeIgnored:
		r.Header.Del("Range")
	case rangeUnsatisfiable:
		rw.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	rs, ok := rc.(io.ReadSeeker)
	if !ok {
		rs = &skipSeeker{r: rc, size: size}
		if strings.Contains(r.Header.Get("Range"), ",") {
			r.Header.Del("Range")
		}
	}
	// No modification time: content named by its digest never changes.
	http.ServeContent(rw, r, "", time.Time{}, rs)
}

type rangeVerdict int

const (
	rangeAsIs          rangeVerdict = iota // none, or one for http.ServeContent
	rangeIgnored                           // a unit other than bytes: the whole content
	rangeUnsatisfiable                     // 416
)

// rangeOf applies what RFC 9110 asks of a Range header where http.ServeContent
// does not: a range unit other than bytes is ignored (it answered 416), and a
// suffix of zero bytes or any range of empty content cannot be satisfied (it
// answered 206 with "bytes 200000-199999/200000" and "bytes 0--1/0").
func rangeOf(r *http.Request, size int64) rangeVerdict {
	h := r.Header.Get("Range")
	if h == "" {
		return rangeAsIs
	}
	unit, set, _ := strings.Cut(h, "=")
	if !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return rangeIgnored
	}
	if size == 0 {
		return rangeUnsatisfiable
	}
	// An empty suffix ("-0") cannot be satisfied; beside others it is dropped
	// (RFC 9110 14.1.1: the satisfiable ones are served), where ServeContent made
	// it a part "bytes 961-960/961" of a multipart answer.
	specs := strings.Split(set, ",")
	kept := specs[:0:0]
	for _, spec := range specs {
		if n, ok := strings.CutPrefix(strings.TrimSpace(spec), "-"); !ok || strings.Trim(n, "0") != "" || n == "" {
			kept = append(kept, spec)
		}
	}
	switch {
	case len(kept) == 0:
		return rangeUnsatisfiable
	case len(kept) < len(specs):
		r.Header.Set("Range", "bytes="+strings.Join(kept, ","))
	}
	return rangeAsIs
}

// Paced returns w under the progress rule t instead of the server's fixed write
// deadline, for an answer that may take long (a blob, a backup, an XTA message of
// tens of megabytes). The first window starts with the answer's first byte, so
// what the handler does before answering is not counted against it.
func Paced(w http.ResponseWriter, t Transfer) http.ResponseWriter {
	if t.Window <= 0 {
		t.Window = DefaultTransferWindow
	}
	if t.MinRate <= 0 {
		t.MinRate = DefaultTransferMinRate
	}
	ctl := http.NewResponseController(w)
	pw := &paceWriter{ResponseWriter: w, pace: newPace(t.Window, t.MinRate, ctl.SetWriteDeadline)}
	// net/http reads the connection in the background while the answer is written,
	// to notice a client that goes away; its read deadline (ReadTimeout from the
	// request's start) would cancel a long download. The write rule bounds it.
	_ = ctl.SetReadDeadline(time.Time{})
	return pw
}

// paceWriter enforces the progress rule of a download on its write deadline.
type paceWriter struct {
	http.ResponseWriter
	pace
	started bool
}

// start begins the first window with the answer's first byte.
func (p *paceWriter) start() {
	if !p.started {
		p.started = true
		p.restart()
	}
}

func (p *paceWriter) WriteHeader(code int) {
	p.start()
	p.ResponseWriter.WriteHeader(code)
}

// Write writes b in pieces of at most quota bytes: a piece sent at the minimum
// rate takes at most a window, so a client that keeps the rate never meets the
// deadline in the middle of one large write.
func (p *paceWriter) Write(b []byte) (int, error) {
	p.start()
	done := 0
	for done < len(b) {
		piece := b[done:min(len(b), done+int(min(p.quota, 1<<30)))]
		n, err := p.ResponseWriter.Write(piece)
		done += n
		p.add(n)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (p *paceWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// rangeProblemWriter turns the plain-text 416 and 412 of http.ServeContent into
// the API's problem documents; every other answer passes through.
type rangeProblemWriter struct {
	http.ResponseWriter
	r       *http.Request
	size    int64
	swallow bool
}

func (w *rangeProblemWriter) WriteHeader(code int) {
	switch code {
	case http.StatusPreconditionFailed:
		// An If-Match that names another ETag: ServeContent answers with the
		// content's own Content-Type and nothing else.
		w.refuse(problem.New(code, problem.TypePreconditionFailed,
			"If-Match or If-Unmodified-Since does not hold for these bytes (the ETag is their SHA-256)"))
	case http.StatusRequestedRangeNotSatisfiable:
		// ServeContent names the size only for a range past the end; a malformed
		// one (bytes=5-1) got none, though the 416 promises it (RFC 9110 15.5.17).
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", w.size))
		w.refuse(problem.New(code, problem.TypeRangeNotSatisfiable,
			fmt.Sprintf("the range %q lies outside the content (Content-Range names its size)", w.r.Header.Get("Range"))))
	default:
		w.ResponseWriter.WriteHeader(code)
	}
}

// refuse answers p instead of the blob, and drops what ServeContent writes
// after. The answer is no-store as every answer of the API (securityHeaders):
// ServeContent deletes Cache-Control on the errors it answers itself (a
// range past the end, since Go 1.23), and a blob's bytes are an applicant's
// personal data, which no cache is to keep nor be told it may. It carries no
// Content-Disposition the handler set for the bytes: a download tool saved the
// problem document under the attachment's file name.
func (w *rangeProblemWriter) refuse(p *problem.Problem) {
	w.swallow = true
	h := w.Header()
	h.Del("Content-Length")
	h.Del("Content-Disposition")
	h.Set("Cache-Control", "no-store")
	problem.Write(w.ResponseWriter, w.r, p)
}

func (w *rangeProblemWriter) Write(b []byte) (int, error) {
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// skipSeeker is an io.ReadSeeker over a reader that can only go forward: Seek only
// notes the position (the size is known, so SeekEnd needs no reading), and Read
// first discards up to it. Seeking back before what was read fails.
type skipSeeker struct {
	r    io.Reader
	size int64
	pos  int64 // where the caller wants to read
	read int64 // how far r has been read
}

var errSeekBack = errors.New("api: this blob streams forward only")

func (s *skipSeeker) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += s.pos
	case io.SeekEnd:
		off += s.size
	default:
		return 0, fmt.Errorf("api: seek whence %d", whence)
	}
	if off < 0 {
		return 0, fmt.Errorf("api: seek to %d", off)
	}
	s.pos = off
	return off, nil
}

func (s *skipSeeker) Read(p []byte) (int, error) {
	if s.pos < s.read {
		return 0, errSeekBack
	}
	if s.pos > s.read {
		n, err := io.CopyN(io.Discard, s.r, s.pos-s.read)
		s.read += n
		if err != nil {
			return 0, fmt.Errorf("api: skip to %d: %w", s.pos, err)
		}
	}
	n, err := s.r.Read(p)
	s.read += int64(n)
	s.pos = s.read
	return n, err
}
