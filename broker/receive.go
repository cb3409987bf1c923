package broker

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// Intake is a verified, parsed and routed package, ready to be received.
type Intake struct {
	MessageID   string
	Sender      string
	SignerID    string
	LeikaKey    string
	ServiceName string
	Place       string
	AreaARS     string
	AreaName    string
	OfficeID    string
	OfficeName  string
	// Targets is the office's channel plan, preferred first. Empty means no channel
	// on this gateway: the package is held for the office to fetch.
	Targets []submission.Target
	// Package is the exact signed bytes as received; they are stored and forwarded
	// unchanged.
	Package []byte
	// ContentDigest names the application the package carries
	// (intake.ApplicationDigest): a later package under the same sender and message
	// id is a repeat only if it matches.
	ContentDigest string
	// SignerCert is the DER of the certificate Package was verified with. It is in
	// every package of that sender, so the store may keep it once (store.Blob).
	SignerCert  []byte
	Attachments []AttachmentIn
	// Origin is set when a peer gateway forwarded the package (Portalverbund).
	Origin *submission.Origin
	// CaseID is the case of the earlier application a Nachreichung belongs to
	// (submission.Submission.CaseID); "" for a new case.
	CaseID string
}

// AttachmentIn is an attachment whose bytes were already checked against the signed digest.
type AttachmentIn struct {
	Meta    submission.Attachment
	Content []byte
	// Stored: the caller streamed the bytes into Blobs() already (PutStream) and
	// Meta.SHA256 and Meta.Size name them; Content is nil and Receive puts nothing.
	Stored bool
}

// Blobs is the blob store Receive puts into: intake streams large attachments there
// itself (AttachmentIn.Stored) before it calls Receive.
func (b *Broker) Blobs() store.BlobStore { return b.db.Blobs() }

// Received is the outcome of Receive.
type Received struct {
	Submission *submission.Submission
	Receipt    []byte // the signed Eingangsbestaetigung (the first one, for a duplicate)
	Created    bool   // false: the sender had sent this message before
}

// Lookup returns an earlier submission of the same message by the same sender, so a
// retrying portal gets its first receipt back without routing again. The caller
// decides whether it is a repeat (the same application) and says so with
// Repeated. A store that cannot be read (a NATS cluster
// without quorum or out of reach) is ErrUnavailable, as a store that cannot be
// written is in Receive: the portal is told to retry (503), not that the gateway
// failed (500).
func (b *Broker) Lookup(sender, messageID string) (*Received, error) {
	s, err := b.db.FindByMessage(sender, messageID)
	if err != nil {
		return nil, lookupFailed(err)
	}
	r, err := b.db.Receipt(s.ID, ReceiptIntake)
	if err != nil {
		return nil, lookupFailed(err)
	}
	return &Received{Submission: s, Receipt: r}, nil
}

// Repeated counts a repeat answered with its first receipt
// (amtsbote_submissions_duplicate_total). The caller counts it, not Lookup or
// Receive: a package under a used NachrichtID that is another application, or a
// forwarded one's, is refused (409) and was counted as a repeat.
func (b *Broker) Repeated() { b.metrics.duplicates.Inc() }

func lookupFailed(err error) error {
	if errors.Is(err, ErrNotFound) {
		return err
	}
	return fmt.Errorf("broker: look up the message: %w: %w", ErrUnavailable, err)
}

// blobCreator is a store that stores a new submission's bytes with its record.
type blobCreator interface {
	CreateWithBlobs(ctx context.Context, sub *submission.Submission, events []submission.Event, receiptKind string, receipt []byte, blobs []store.Blob) (*submission.Submission, []byte, bool, error)
}

// Receive stores the package durably and queues its delivery: the gateway's Eingang,
// not the office's acceptance of the application (that is Decide). When it returns
// without error, the package survives any crash. A repeated (sender, message id)
// returns the first submission and receipt with Created=false and stores no record
// (the check is inside the storing transaction; callers that want to skip work for a
// repeat call Lookup first, as intake does).
func (b *Broker) Receive(ctx context.Context, in Intake) (*Received, error) {
	if b.stopped.Load() {
		return nil, ErrStopped
	}
	// A store that takes the bytes with the record (store.DB: small ones in the same
	// transaction) gets them there. Otherwise blobs first: the record that references
	// them is committed only after they are on disk. A crash in between leaves an
	// unreferenced blob, never a dangling record; a repeat writes nothing new, since
	// blobs are named by their content.
	withBlobs, together := b.db.(blobCreator)
	var blobs []store.Blob // together: what goes with the record
	put := func(data []byte, recurring ...[]byte) (string, error) {
		if together {
			sum := sha256.Sum256(data)
			d := hex.EncodeToString(sum[:])
			blobs = append(blobs, store.Blob{SHA256: d, Data: data, Recurring: recurring})
			return d, nil
		}
		return b.db.Blobs().Put(data)
	}
	var signerCert [][]byte
	if len(in.SignerCert) > 0 { // as the text of <ds:X509Certificate>, unwrapped
		signerCert = [][]byte{base64.StdEncoding.AppendEncode(nil, in.SignerCert)}
	}
	pkgDigest, err := put(in.Package, signerCert...)
	if err != nil {
		return nil, fmt.Errorf("broker: store package: %w: %w", ErrUnavailable, err)
	}
	metas := make([]submission.Attachment, 0, len(in.Attachments))
	for _, a := range in.Attachments {
		if a.Stored {
			metas = append(metas, a.Meta)
			continue
		}
		d, err := put(a.Content)
		if err != nil {
			return nil, fmt.Errorf("broker: store attachment: %w: %w", ErrUnavailable, err)
		}
		m := a.Meta
		m.SHA256, m.Size = d, int64(len(a.Content))
		metas = append(metas, m)
	}
	now := time.Now().UTC()
	s, evs := submission.New(submission.Params{
		ID: newID(), DeliveryID: DeliveryID(b.cfg.GatewayID, in.Sender, in.MessageID),
		MessageID: in.MessageID, Sender: in.Sender, SignerID: in.SignerID,
		LeikaKey: in.LeikaKey, ServiceName: in.ServiceName, Place: in.Place,
		AreaARS: in.AreaARS, AreaName: in.AreaName, OfficeID: in.OfficeID, OfficeName: in.OfficeName,
		Targets: in.Targets, PackageSHA256: pkgDigest, PackageSize: int64(len(in.Package)), Attachments: metas,
		ContentDigest: in.ContentDigest, CaseID: in.CaseID,
	}, now)
	if in.Origin != nil {
		o := *in.Origin
		s.Origin = &o
		// The origin right after "received": the log reads in the order things happened.
		evs = append(evs[:1], append([]submission.Event{submission.ArrivedFromPeer(now, &o)}, evs[1:]...)...)
	}
	receipt, err := b.signer.SignIntake(s)
	if err != nil {
		return nil, fmt.Errorf("broker: sign receipt: %w", err)
	}
	var stored *submission.Submission
	var storedReceipt []byte
	var created bool
	if together {
		stored, storedReceipt, created, err = withBlobs.CreateWithBlobs(ctx, s, evs, ReceiptIntake, receipt, blobs)
	} else {
		stored, storedReceipt, created, err = b.db.Create(ctx, s, evs, ReceiptIntake, receipt)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// Not the sender's fault, and nothing was committed: a full disk or a
		// failing write answers "try again later", never a 201 and never a 500.
		return nil, fmt.Errorf("broker: %w: %w", ErrUnavailable, err)
	}
	if !created {
		return &Received{Submission: stored, Receipt: storedReceipt}, nil
	}
	b.metrics.accepted.Inc()
	b.emit(stored, evs)
	if stored.State.Dispatchable() {
		b.enqueue(stored)
	}
	return &Received{Submission: stored, Receipt: storedReceipt, Created: true}, nil
}
