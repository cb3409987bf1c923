package paket

import "github.com/beevik/etree"

// Limits bounds what Scan and Parse accept. A zero field takes the DefaultLimits value;
// a negative field disables that limit.
type Limits struct {
	MaxBytes           int64
	MaxDepth           int
	MaxElements        int
	MaxAttributes      int
	MaxAttachments     int
	MaxAttachmentBytes int64
}

// DefaultLimits returns the limits the gateway uses unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 32 << 20, MaxDepth: 64, MaxElements: 200_000, MaxAttributes: 64,
		MaxAttachments: 100, MaxAttachmentBytes: 20 << 20}
}

func Scan(raw []byte, lim Limits) error                  { return nil }
func Parse(root *etree.Element, lim Limits) (*Paket, error) { return nil, ErrMalformed }
func (p *Paket) Element() *etree.Element                 { return etree.NewElement("Antragspaket") }
func Example(leikaKey string) *Paket                     { return &Paket{} }
func ExamplePDF(text string) []byte                      { return nil }
