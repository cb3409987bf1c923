package signing

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// NamespaceReceipt is the XML namespace of receipts (schema: quittung-v1.xsd).
const NamespaceReceipt = "urn:amtsbote:quittung:1"

// ReceiptKind names the two receipts; the value is the root element's local name.
type ReceiptKind string

// The receipt kinds.
const (
	KindEingang    ReceiptKind = "Eingangsbestaetigung" // the gateway accepted the package
	KindZustellung ReceiptKind = "Zustellbestaetigung"  // the package was handed to the office
)

// Receipt is what a receipt attests. Delivery fields are only set (and required)
// for a Zustellbestaetigung.
type Receipt struct {
	Kind          ReceiptKind
	SubmissionID  string
	MessageID     string // NachrichtID
	Sender        string // portal id (Absender)
	LeikaKey      string
	OfficeID      string
	OfficeName    string
	GatewayID     string
	Time          time.Time
	PackageSHA256 string // lower-case hex
	DeliveryID    string
	Channel       string
	Receiver      string
}

// Element names in document order; the XSD fixes the same order.
var receiptFields = []struct {
	name     string
	get      func(*Receipt) *string
	delivery bool
}{
	{"EinreichungID", func(r *Receipt) *string { return &r.SubmissionID }, false},
	{"NachrichtID", func(r *Receipt) *string { return &r.MessageID }, false},
	{"Absender", func(r *Receipt) *string { return &r.Sender }, false},
	{"LeiKaSchluessel", func(r *Receipt) *string { return &r.LeikaKey }, false},
	{"StelleID", func(r *Receipt) *string { return &r.OfficeID }, false},
	{"StelleName", func(r *Receipt) *string { return &r.OfficeName }, false},
	{"GatewayID", func(r *Receipt) *string { return &r.GatewayID }, false},
	{"Zeitpunkt", nil, false},
	{"PaketSHA256", func(r *Receipt) *string { return &r.PackageSHA256 }, false},
	{"ZustellungID", func(r *Receipt) *string { return &r.DeliveryID }, true},
	{"Kanal", func(r *Receipt) *string { return &r.Channel }, true},
	{"Empfaenger", func(r *Receipt) *string { return &r.Receiver }, true},
}

// applies reports whether field f belongs in a receipt of kind k. Kanal is also
// (optionally) in the Eingangsbestaetigung: the channel the package will be
// delivered on, so the portal knows at the 201 how the office gets it.
func applies(name string, delivery bool, k ReceiptKind) bool {
	return !delivery || k == KindZustellung || name == "Kanal"
}

func (r *Receipt) validate() error {
	if r.Kind != KindEingang && r.Kind != KindZustellung {
		return fmt.Errorf("%w: unknown receipt kind %q", ErrMalformed, r.Kind)
	}
	for _, f := range receiptFields {
		if f.get == nil || !applies(f.name, f.delivery, r.Kind) {
			continue
		}
		if f.name == "StelleName" || (f.delivery && f.name == "Empfaenger") || (r.Kind == KindEingang && f.name == "Kanal") {
			continue // optional
		}
		if strings.TrimSpace(*f.get(r)) == "" {
			return fmt.Errorf("%w: receipt field %s is empty", ErrMalformed, f.name)
		}
	}
	if r.Time.IsZero() {
		return fmt.Errorf("%w: receipt time is zero", ErrMalformed)
	}
	if b, err := hex.DecodeString(r.PackageSHA256); err != nil || len(b) != sha256.Size || strings.ToLower(r.PackageSHA256) != r.PackageSHA256 {
		return fmt.Errorf("%w: PackageSHA256 %q is not 64 lower-case hex digits", ErrMalformed, r.PackageSHA256)
	}
	return nil
}

// ReceiptElement builds the unsigned receipt element. Its ID is derived from kind,
// submission id and delivery id, so the same receipt always gets the same ID.
func ReceiptElement(r Receipt) (*etree.Element, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	el := etree.NewElement(string(r.Kind))
	el.CreateAttr("xmlns", NamespaceReceipt)
	el.CreateAttr(idAttributeName, receiptID(&r))
	el.CreateAttr("Version", "1")
	r.eachField(func(name, v string) { el.CreateElement(name).SetText(v) })
	return el, nil
}

// receiptID is a receipt's ID attribute: derived from kind, submission id and
// delivery id, so the same receipt always gets the same ID.
func receiptID(r *Receipt) string {
	sum := sha256.Sum256([]byte(string(r.Kind) + "\x00" + r.SubmissionID + "\x00" + r.DeliveryID))
	return "Q" + hex.EncodeToString(sum[:10])
}

// eachField calls f with each element of the receipt that has a value, in
// document order.
func (r *Receipt) eachField(f func(name, value string)) {
	for _, fl := range receiptFields {
		if !applies(fl.name, fl.delivery, r.Kind) {
			continue
		}
		var v string
		if fl.get == nil {
			v = r.Time.UTC().Format(time.RFC3339Nano)
		} else {
			v = *fl.get(r)
		}
		if v != "" {
			f(fl.name, v)
		}
	}
}

// SignReceipt builds and signs a receipt (receiptwriter.go).
func (s *Signer) SignReceipt(r Receipt) ([]byte, error) {
	return s.writeReceipt(r, s.signBytes)
}

// ParseReceipt reads a receipt from a verified root (Verified.Root). It rejects
// unknown elements, so a receipt never says more than this code understands.
func ParseReceipt(root *etree.Element) (Receipt, error) {
	var r Receipt
	if root == nil {
		return r, fmt.Errorf("%w: nil receipt", ErrMalformed)
	}
	if root.NamespaceURI() != NamespaceReceipt {
		return r, fmt.Errorf("%w: <%s> is not in namespace %s", ErrMalformed, root.FullTag(), NamespaceReceipt)
	}
	r.Kind = ReceiptKind(root.Tag)
	if r.Kind != KindEingang && r.Kind != KindZustellung {
		return r, fmt.Errorf("%w: <%s> is not a receipt", ErrMalformed, root.Tag)
	}
	seen := map[string]bool{}
	for _, ch := range root.ChildElements() {
		if ch.NamespaceURI() != NamespaceReceipt {
			return r, fmt.Errorf("%w: foreign element <%s> in receipt", ErrMalformed, ch.FullTag())
		}
		found := false
		for _, f := range receiptFields {
			if f.name != ch.Tag || !applies(f.name, f.delivery, r.Kind) {
				continue
			}
			if seen[f.name] {
				return r, fmt.Errorf("%w: duplicate <%s> in receipt", ErrMalformed, f.name)
			}
			seen[f.name] = true
			found = true
			if len(ch.ChildElements()) != 0 {
				return r, fmt.Errorf("%w: <%s> must hold text only", ErrMalformed, f.name)
			}
			if f.get == nil {
				t, err := time.Parse(time.RFC3339Nano, ch.Text())
				if err != nil {
					return r, fmt.Errorf("%w: Zeitpunkt: %w", ErrMalformed, err)
				}
				r.Time = t
			} else {
				*f.get(&r) = ch.Text()
			}
		}
		if !found {
			return r, fmt.Errorf("%w: unknown element <%s> in %s", ErrMalformed, ch.Tag, r.Kind)
		}
	}
	if err := r.validate(); err != nil {
		return Receipt{}, err
	}
	return r, nil
}
