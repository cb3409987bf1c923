package intake

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// createFails is a real bbolt store whose record commit fails (a full disk at
// the last moment). Its blobs are the real ones; the package and inline
// attachments go with the record (CreateWithBlobs), as with store.DB.
type createFails struct{ store.Store }

func (createFails) Create(context.Context, *submission.Submission, []submission.Event, string, []byte) (*submission.Submission, []byte, bool, error) {
	return nil, nil, false, errors.New("write failed")
}

// CreateWithBlobs is the way store.DB commits a record with its small blobs.
func (createFails) CreateWithBlobs(context.Context, *submission.Submission, []submission.Event, string, []byte, []store.Blob) (*submission.Submission, []byte, bool, error) {
	return nil, nil, false, errors.New("write failed")
}

// oneParts yields one part.
type oneParts struct {
	cid  string
	body []byte
	done bool
}

func (p *oneParts) Next() (string, io.Reader, error) {
	if p.done {
		return "", nil, io.EOF
	}
	p.done = true
	return p.cid, bytes.NewReader(p.body), nil
}

// TestCommitFailureLeavesNoStreamedBlob: the parts of a multipart request are
// stored before the record; when the record's commit fails, nothing references
// them, and the request removes what it stored (docs/problems.md,
// multipart-parts and unavailable: nothing was accepted, no blob is kept).
func TestCommitFailureLeavesNoStreamedBlob(t *testing.T) {
	pki := signingtest.NewPKI(t)
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	dir, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := dir.FindService("Gewerbe anmelden")
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(broker.Config{GatewayID: "gw-test"}, createFails{db}, nil, nil, nil,
		broker.GatewaySigner{Signer: pki.Gateway.Signer, GatewayID: "gw-test"}, nil, nil)
	p := &Pipeline{
		Verifier:   signing.NewVerifier(pki.Store, signing.VerifyOptions{}),
		Directory:  routing.NewStore(dir),
		Broker:     b,
		LastResort: "mailbox",
		// The refreshes of the held blobs run, but never within the test.
		HoldRefresh: time.Hour,
	}
	content := make([]byte, 8<<10)
	_, _ = rand.Read(content)
	a := paket.NewAnlage("foto", "foto.bin", "application/octet-stream", content)
	a.Inhalt, a.Referenz = nil, "cid:foto@portal.example"
	pk := paket.ExampleWith(svc.Key, paket.NewMessageID(), time.Now())
	pk.Kopf.Ort = paket.Ort{PLZ: "01067"}
	pk.Anlagen = append(pk.Anlagen, a)
	raw, err := pki.Portal.Signer.Sign(pk.Element())
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.SubmitParts(context.Background(), raw, &oneParts{cid: "<foto@portal.example>", body: content})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("SubmitParts = %v, want broker.ErrUnavailable", err)
	}
	var left []string
	if err := b.Blobs().Walk(func(d string, _ int64, _ time.Time) bool { left = append(left, d); return true }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("a request whose record did not commit left blobs %v", left)
	}
}
