package paket

import (
	"errors"
	"fmt"
)

// Sentinels the HTTP layer maps to problem types; test with errors.Is.
var (
	// ErrMalformed: not well-formed XML, or not an Antragspaket at all (400).
	ErrMalformed = errors.New("paket: malformed package")
	// ErrLimit: a configured limit was exceeded (413). The error is a *LimitError.
	ErrLimit = errors.New("paket: limit exceeded")
	// ErrInvalidField: a field fails its rule (422). The error is a *FieldError.
	ErrInvalidField = errors.New("paket: invalid field")
	// ErrAttachmentDigest: attachment bytes differ from the signed size or SHA-256 (422).
	ErrAttachmentDigest = errors.New("paket: attachment does not match its signed digest")
)

// LimitError reports which limit was exceeded. errors.Is(err, ErrLimit) holds.
type LimitError struct {
	Limit string // name of the Limits field, e.g. "MaxDepth"
	Max   int64
	Got   int64 // the value seen when the limit tripped (may be a lower bound)
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("paket: limit %s exceeded: max %d, got %d", e.Limit, e.Max, e.Got)
}

// Is makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// FieldError names the field (an XML path like "Kopf/Leistung/Schluessel") that fails
// its rule. errors.Is(err, ErrInvalidField) holds; a digest mismatch additionally
// matches ErrAttachmentDigest through Err.
type FieldError struct {
	Field  string
	Reason string
	Err    error // optional cause, e.g. ErrAttachmentDigest
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("paket: invalid field %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidField) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidField }

// Unwrap exposes the cause so errors.Is(err, ErrAttachmentDigest) works.
func (e *FieldError) Unwrap() error { return e.Err }
