package paket

// Limits bounds what Scan and Parse accept, so that hostile input costs a bounded amount
// of memory and CPU (promise 4: bad input never crashes a process).
//
// A zero field takes its DefaultLimits value, so the zero Limits is safe; a negative
// field disables that limit (only sensible in tools that read trusted files).
type Limits struct {
	MaxBytes           int64 // size of the raw package (Scan only: Parse sees no bytes)
	MaxDepth           int   // element nesting; the root has depth 1
	MaxElements        int   // elements in the whole document, the root included
	MaxAttributes      int   // attributes on one element, namespace declarations included
	MaxAttachments     int   // Anlage elements
	MaxAttachmentBytes int64 // decoded size of one attachment, declared or inline
	// MaxReferencedBytes is the declared size of one attachment sent by reference
	// (Referenz="cid:...", a part of a multipart/related request): those bytes are
	// streamed to disk, never held in memory, so the limit is a disk and bandwidth
	// budget, not a memory one.
	MaxReferencedBytes int64
	// MaxReferencedTotal is the sum of the declared sizes of all attachments sent by
	// reference in one package.
	MaxReferencedTotal int64
}

// DefaultLimits returns the limits the gateway uses unless configured otherwise: body
// 32 MiB, depth 64, 200,000 elements, 64 attributes per element, 100 attachments of at
// most 20 MiB each inline; by reference at most 2 GiB each and 4 GiB together.
func DefaultLimits() Limits {
	return Limits{
		MaxBytes:           32 << 20,
		MaxDepth:           64,
		MaxElements:        200_000,
		MaxAttributes:      64,
		MaxAttachments:     100,
		MaxAttachmentBytes: 20 << 20,
		MaxReferencedBytes: 2 << 30,
		MaxReferencedTotal: 4 << 30,
	}
}

// Effective returns the limits with every zero field set to its default.
func (l Limits) Effective() Limits { return l.effective() }

// effective fills zero fields with defaults; negative fields stay negative (= off).
func (l Limits) effective() Limits {
	d := DefaultLimits()
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxElements == 0 {
		l.MaxElements = d.MaxElements
	}
	if l.MaxAttributes == 0 {
		l.MaxAttributes = d.MaxAttributes
	}
	if l.MaxAttachments == 0 {
		l.MaxAttachments = d.MaxAttachments
	}
	if l.MaxAttachmentBytes == 0 {
		l.MaxAttachmentBytes = d.MaxAttachmentBytes
	}
	if l.MaxReferencedBytes == 0 {
		l.MaxReferencedBytes = d.MaxReferencedBytes
	}
	if l.MaxReferencedTotal == 0 {
		l.MaxReferencedTotal = d.MaxReferencedTotal
	}
	return l
}

// over reports whether got exceeds max, treating a negative max as "no limit".
// AttrsPerElement bounds the attributes of a whole document, namespace
// declarations included, at this many per element MaxElements allows. Why: a tree
// holds an attribute in some 150 bytes, and MaxAttributes alone (per element)
// let a 32 MiB body of three million empty attributes pass Scan; the signature
// check then built a tree of 1.15 GB before it found no signature — for a body
// anyone may post. Real packages carry fewer attributes than elements.
const AttrsPerElement = 2

// attrsTotal is the document's attribute bound under lim (negative: none).
func attrsTotal(lim Limits) int {
	if lim.MaxElements < 0 {
		return -1
	}
	return AttrsPerElement * lim.MaxElements
}

func over[T int | int64](got, max T) bool { return max >= 0 && got > max }

func limitErr[T int | int64](name string, max, got T) error {
	return &LimitError{Limit: name, Max: int64(max), Got: int64(got)}
}

// overEstimate compares a size estimated from base64 length (which rounds up to a
// multiple of 3) with max, allowing for the at most 2 padding bytes.
func overEstimate(est, max int64) bool { return max >= 0 && est > max+2 }
