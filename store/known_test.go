package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"testing"

	"github.com/amtsbote/amtsbote/submission"
	bolt "go.etcd.io/bbolt"
)

// certText is a certificate as a signed document carries it: base64 that does not
// compress.
func certText(t *testing.T) []byte {
	t.Helper()
	der := make([]byte, 900)
	_, _ = rand.Read(der)
	return []byte(base64.StdEncoding.EncodeToString(der))
}

func signedXML(certs ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0"?><r:Eingangsbestaetigung xmlns:r="urn:x"><r:ID>abc</r:ID><ds:Signature><ds:KeyInfo><ds:X509Data>`)
	for _, c := range certs {
		b.WriteString("<ds:X509Certificate>")
		b.Write(c)
		b.WriteString("</ds:X509Certificate>")
	}
	b.WriteString(`</ds:X509Data></ds:KeyInfo></ds:Signature></r:Eingangsbestaetigung>`)
	return b.Bytes()
}

// TestKnownCertificatesRoundTrip: receipts and inline blobs that carry a known
// certificate are stored without it and read back byte for byte — also by a store
// opened later without the option (the file keeps what it used), also when an
// unknown certificate stands beside the known one, and never for content with NUL
// bytes, where a token could be confused with content.
func TestKnownCertificatesRoundTrip(t *testing.T) {
	known, other := certText(t), certText(t)
	dir := t.TempDir()
	db, err := Open(dir, Options{Known: [][]byte{known, []byte("short")}})
	if err != nil {
		t.Fatal(err)
	}
	receipt := signedXML(known, other, known)
	// Receipts are packed with S2, inline blobs of earlier builds with zstd
	// (store.go); both leave the known certificate out.
	for _, c := range []struct {
		pack   func([]byte) []byte
		marker byte
	}{{pack, packedS2Certs}, {packBig, packedZstdCerts}} {
		if short, long := db.packCerts(receipt, c.pack), c.pack(receipt); short[0] != c.marker || len(short) > len(long)-800 {
			// The certificate is 900 random bytes; the compressor already finds its second copy.
			t.Fatalf("a receipt with the known certificate twice: marker %#x, %d bytes packed, %d without the store's certificates", short[0], len(short), len(long))
		}
		if v := db.packCerts(signedXML(other), c.pack); v[0] == c.marker {
			t.Fatal("a receipt without a known certificate is marked as having one")
		}
	}
	binary := append(append([]byte{0, 1, 2}, signedXML(known)...), 0)
	if _, ok := db.known.shrink(nil, binary); ok {
		t.Fatal("content with NUL bytes was shrunk")
	}
	pkg := signedXML(known)
	blobs := []Blob{{SHA256: digestOf(pkg), Data: pkg}, {SHA256: digestOf(binary), Data: binary}}
	s := &submission.Submission{ID: "s1", MessageID: "m1", Sender: "amt24", OfficeID: "o", State: submission.StateAccepted, Generation: 1}
	if _, _, _, err := db.CreateWithBlobs(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "in", receipt, blobs); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.UpdateWithReceipt("s1", "out", signedXML(other, known), func(s *submission.Submission) ([]submission.Event, error) {
		s.State = submission.StateDelivered
		return []submission.Event{{Type: submission.EventDelivered}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	check := func(db *DB, when string) {
		t.Helper()
		for kind, want := range map[string][]byte{"in": receipt, "out": signedXML(other, known)} {
			if got, err := db.Receipt("s1", kind); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: receipt %s: %v, %d bytes, want %d the same", when, kind, err, len(got), len(want))
			}
		}
		for _, b := range blobs {
			if got := blobBytes(t, db, b.SHA256, when); !bytes.Equal(got, b.Data) {
				t.Fatalf("%s: blob of %d bytes read back as %d different ones", when, len(b.Data), len(got))
			}
		}
		// A repeat of the message returns the stored receipt, as it was given.
		if _, got, created, err := db.Create(context.Background(), &submission.Submission{ID: "s2", MessageID: "m1", Sender: "amt24", Generation: 1}, nil, "in", []byte("x")); err != nil || created || !bytes.Equal(got, receipt) {
			t.Fatalf("%s: repeat: created %v, %v, receipt the same %v", when, created, err, bytes.Equal(got, receipt))
		}
	}
	check(db, "written")
	check(reopen(t, db, dir), "reopened without the certificates")
}

// blobBytes reads a blob whole.
func blobBytes(t *testing.T, db *DB, digest, when string) []byte {
	t.Helper()
	r, err := db.Blobs().Open(context.Background(), digest)
	if err != nil {
		t.Fatalf("%s: blob: %v", when, err)
	}
	defer r.Close()
	got, _ := io.ReadAll(r)
	return got
}

// reopen closes db and opens its folder again without the option of known
// certificates: what the file holds must do.
func reopen(t *testing.T, db *DB, dir string) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	return db2
}

// TestSchemaUpgrade: files of schema 1 (before nested blobs and certificate
// tokens), 2 (before S2 values) and 3 (before one tree per case) open, keep their
// data and are marked 4; a file of a newer schema is refused instead of misread.
// (upgrade_test.go moves a file of the old layout.)
func TestSchemaUpgrade(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &submission.Submission{ID: "s1", MessageID: "m1", Sender: "amt24", State: submission.StateAccepted, Generation: 1}
	if _, _, _, err := db.Create(context.Background(), s, nil, "in", []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	setSchema := func(v string) {
		t.Helper()
		if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte(v)) }); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, old := range []string{"1", "2", "3"} {
		setSchema(old)
		if db, err = Open(dir, Options{}); err != nil {
			t.Fatalf("schema %s: %v", old, err)
		}
		if _, err := db.Get("s1"); err != nil {
			t.Fatalf("schema %s's record: %v", old, err)
		}
		_ = db.view(func(tx *bolt.Tx) error {
			if v := tx.Bucket(bucketMeta).Get([]byte("schema")); string(v) != schemaVersion {
				t.Errorf("schema %s after the upgrade: %q, want %q", old, v, schemaVersion)
			}
			return nil
		})
	}
	setSchema("5")
	if db, err = Open(dir, Options{}); err == nil {
		db.Close()
		t.Fatal("a file of schema 5 was opened")
	}
}

// TestLearnedCertificates: a sender's certificate named by Blob.Recurring is kept
// once. Until a transaction that writes its row has committed, only that
// transaction's values use its token (a value of another write committed first
// would name a certificate the file lacks); a repeat of a message, which writes
// nothing, does not make it durable; a store opened later reads the values and
// uses the certificate from the start; and the set stops growing at maxKnown.
func TestLearnedCertificates(t *testing.T) {
	sender, fresh := certText(t), certText(t)
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pkg := signedXML(sender)
	l, row, ok := db.known.learn(sender)
	if !ok || !row {
		t.Fatalf("learn: ok %v, row %v", ok, row)
	}
	if _, shrunk := db.known.shrink(nil, pkg); shrunk {
		t.Fatal("a value that does not write the row used the token of a certificate not yet durable")
	}
	if _, shrunk := db.known.shrink(nil, pkg, l); !shrunk {
		t.Fatal("the value that writes the row did not use the token")
	}

	blob := Blob{SHA256: digestOf(pkg), Data: pkg, Recurring: [][]byte{sender}}
	s := &submission.Submission{ID: "s1", MessageID: "m1", Sender: "amt24", OfficeID: "o", State: submission.StateAccepted, Generation: 1}
	if _, _, created, err := db.CreateWithBlobs(context.Background(), s, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r"), []Blob{blob}); err != nil || !created {
		t.Fatalf("create: %v, created %v", err, created)
	}
	if _, row, _ := db.known.learn(sender); row {
		t.Fatal("the row is still to be written after the commit that wrote it")
	}
	if _, shrunk := db.known.shrink(nil, pkg); !shrunk {
		t.Fatal("a durable learned certificate is not used by other values")
	}
	// A repeat writes nothing, so a certificate it names stays unsure.
	again := Blob{SHA256: digestOf(signedXML(fresh)), Data: signedXML(fresh), Recurring: [][]byte{fresh}}
	if _, _, created, err := db.CreateWithBlobs(context.Background(), &submission.Submission{ID: "s2", MessageID: "m1", Sender: "amt24", Generation: 1}, nil, "in", []byte("r"), []Blob{again}); err != nil || created {
		t.Fatalf("repeat: %v, created %v", err, created)
	}
	if _, row, _ := db.known.learn(fresh); !row {
		t.Fatal("a repeat, which writes nothing, made a learned certificate durable")
	}
	read := func(db *DB, when string) {
		t.Helper()
		if !bytes.Equal(blobBytes(t, db, blob.SHA256, when), pkg) {
			t.Fatalf("%s: the package read back differs", when)
		}
	}
	read(db, "written")
	db2 := reopen(t, db, dir)
	read(db2, "reopened")
	if _, shrunk := db2.known.shrink(nil, pkg); !shrunk {
		t.Fatal("reopened: the learned certificate is not used from the start")
	}
	if _, shrunk := db2.known.shrink(nil, signedXML(fresh)); shrunk {
		t.Fatal("reopened: a certificate whose row was never written is used")
	}

	for i := 0; ; i++ {
		_, _, ok := db2.known.learn(fmt.Appendf(nil, "MII%060d", i))
		if !ok {
			if n := len(db2.known.byText); n != maxKnown {
				t.Fatalf("learning stopped at %d certificates, want %d", n, maxKnown)
			}
			break
		}
		if i > maxKnown {
			t.Fatal("learning does not stop")
		}
	}
}
