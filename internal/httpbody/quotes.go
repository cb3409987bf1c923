package httpbody

import (
	"errors"
	"net/textproto"
	"strings"
)

// QuotesContent reports whether err, of reading a multipart body, quotes a line
// of the body itself: a MIME header line that does not parse
// (textproto.ProtocolError), or a line after a part that is neither a boundary
// nor the end (mime/multipart's refusal, which has no type of its own, only
// its words). Such a line may hold a file's name or any other part of what was
// sent, the applicant's data, which logs must not carry: the XTA face and the
// web mailbox's reply form log a refusal without it (docs/operations.md,
// "Personal data").
func QuotesContent(err error) bool {
	if pe := textproto.ProtocolError(""); errors.As(err, &pe) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "multipart: expecting a new Part; got line") || strings.Contains(s, "multipart: unexpected line in Next()")
}
