package xta

import (
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
// is read through api.UploadBody, the answer written through api.Paced; the listener's
// ReadHeaderTimeout still bounds the headers (slowloris), and MaxMessageBytes the
// body.

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
