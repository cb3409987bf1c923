package xta

import (
	"net/http"
	"time"

	"github.com/amtsbote/amtsbote/api"
)

// Timeouts: a getMessage of a 40 MB Antragspaket with its attachments, or a
// sendMessage with a big Bescheid, takes minutes over a slow link, far beyond the
// fixed read and write deadlines that bound an ordinary request (http.read_timeout,
// http.write_timeout), which cut such transfers off in the middle. So every request
// and every answer of this service moves under the progress rule of the REST face's
// uploads and downloads instead: within every TransferWindow, TransferWindow ×
// TransferMinRate bytes must move, or the connection is given up. The request body
// is read through api.UploadBody, the answer written by pacedWriter; the listener's
// ReadHeaderTimeout still bounds the headers (slowloris), and MaxMessageBytes the
// body.

// pacedWriter writes an answer under the progress rule of downloads: from the
// answer's first byte, whenever quota bytes went out within the window, the write
// deadline moves to a new window from now. It is api's rule for blob downloads
// (api.Transfer), which api does not export for a writer of its own making.
type pacedWriter struct {
	http.ResponseWriter
	ctl     *http.ResponseController
	window  time.Duration
	quota   int64
	moved   int64 // bytes in the current window
	started bool
}

func newPacedWriter(w http.ResponseWriter, window time.Duration, minRate int64) *pacedWriter {
	return &pacedWriter{ResponseWriter: w, ctl: http.NewResponseController(w), window: window,
		quota: max(1, int64(window.Seconds()*float64(minRate)))}
}

// transfer returns the progress rule of the options, with api's defaults.
func (o *Options) transfer() (time.Duration, int64) {
	window, rate := o.TransferWindow, o.TransferMinRate
	if window <= 0 {
		window = api.DefaultTransferWindow
	}
	if rate <= 0 {
		rate = api.DefaultTransferMinRate
	}
	return window, rate
}

func (p *pacedWriter) restart() {
	p.moved = 0
	// Not every ResponseWriter supports deadlines (tests' recorders): then the
	// server's own timeouts stay.
	_ = p.ctl.SetWriteDeadline(time.Now().Add(p.window))
}

// start starts the first window with the answer: until then the request was read
// and processed, without a write deadline (api.UploadBody lifted it).
func (p *pacedWriter) start() {
	if !p.started {
		p.started = true
		p.restart()
	}
}

func (p *pacedWriter) WriteHeader(code int) {
	p.start()
	p.ResponseWriter.WriteHeader(code)
}

// Write writes b in pieces of at most quota bytes: a piece sent at the minimum
// rate takes at most a window, so a client that keeps the rate never meets the
// deadline in the middle of one large write.
func (p *pacedWriter) Write(b []byte) (int, error) {
	p.start()
	done := 0
	for done < len(b) {
		piece := b[done:min(len(b), done+int(min(p.quota, 1<<30)))]
		n, err := p.ResponseWriter.Write(piece)
		done += n
		if p.moved += int64(n); p.moved >= p.quota {
			p.restart()
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (p *pacedWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
