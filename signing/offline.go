package signing

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Report is what offline verification (`amtsbote verify FILE`) can state about a file.
type Report struct {
	Kind       string // receipt kind, or the root element's local name for other documents
	Namespace  string
	RootID     string
	Signer     Identity
	Receipt    *Receipt // set for receipts
	FileSHA256 string
	// Statement is one sentence of what the signature proves.
	Statement string
}

// VerifyOffline checks doc against ts (a trust store, or TrustStoreFromPEM with the
// gateway certificate) for any role and says what the signature proves.
func VerifyOffline(doc []byte, ts *TrustStore, opts VerifyOptions) (*Report, error) {
	v := NewVerifier(ts, opts)
	// Gateway roles first: a receipt must be attributed to a gateway certificate
	// even when the same CA also issues portal certificates (the dev PKI does).
	res, err := v.Verify(doc, RoleGateway, RolePeer, RolePortal, RoleOffice)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(doc)
	rep := &Report{
		Kind:       res.Root.Tag,
		Namespace:  res.Root.NamespaceURI(),
		RootID:     res.Root.SelectAttrValue(idAttributeName, ""),
		Signer:     res.Signer,
		FileSHA256: hex.EncodeToString(sum[:]),
	}
	subject := res.Signer.Certificate.Subject.String()
	if rep.Namespace == NamespaceReceipt {
		r, err := ParseReceipt(res.Root)
		if err != nil {
			return nil, err
		}
		if res.Signer.Role != RoleGateway && res.Signer.Role != RolePeer {
			return nil, fmt.Errorf("%w: receipt signed by %q, which is trusted as %s, not as a gateway", ErrUntrustedSigner, res.Signer.ID, res.Signer.Role)
		}
		rep.Receipt = &r
		switch r.Kind {
		case KindEingang:
			rep.Statement = fmt.Sprintf("the gateway %s (certificate %q, trusted as %s) attests it received package with SHA-256 %s (NachrichtID %s from %s, submission %s, for office %s) at %s",
				r.GatewayID, subject, res.Signer.Role, r.PackageSHA256, r.MessageID, r.Sender, r.SubmissionID, r.OfficeID, r.Time.UTC().Format(time.RFC3339))
			if r.Channel != "" {
				rep.Statement += ", to be delivered over " + r.Channel
			}
		case KindZustellung:
			rep.Statement = fmt.Sprintf("the gateway %s (certificate %q, trusted as %s) attests it delivered package with SHA-256 %s (NachrichtID %s from %s, submission %s) to office %s over %s (delivery %s, receiver %q) at %s",
				r.GatewayID, subject, res.Signer.Role, r.PackageSHA256, r.MessageID, r.Sender, r.SubmissionID, r.OfficeID, r.Channel, r.DeliveryID, r.Receiver, r.Time.UTC().Format(time.RFC3339))
		}
		if r.GatewayID != res.Signer.ID {
			rep.Statement += fmt.Sprintf(" (note: the receipt names gateway %q but the certificate is %q)", r.GatewayID, res.Signer.ID)
		}
		return rep, nil
	}
	rep.Statement = fmt.Sprintf("%q (%s, trusted as %s) signed the element <%s xmlns=%q ID=%q>; only that element is authenticated",
		res.Signer.ID, subject, res.Signer.Role, rep.Kind, rep.Namespace, rep.RootID)
	return rep, nil
}
