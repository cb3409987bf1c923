package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// TestPeerReplyIsStoredOnlyAsAnnounced: the bytes of a reply the peer's signed
// status answer announced are fetched unsigned, so they are stored only if they
// are what was announced: other bytes, fewer or more, store nothing and record
// nothing; the same reply again is recorded once; a reply from a gateway the
// package did not go to is refused before any byte is stored.
func TestPeerReplyIsStoredOnlyAsAnnounced(t *testing.T) {
	e := start(t, t.TempDir(), &scripted{channel: "primary", block: make(chan struct{})})
	ctx := context.Background()
	a, err := e.b.Receive(ctx, intake("peer-reply", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	if _, err := e.b.RecordForwarded(id, submission.Forward{Peer: "amtsbote-by", PeerSubmissionID: "p-1", At: time.Now().UTC()}, []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	content := []byte("%PDF-1.7 Bescheid")
	sum := sha256.Sum256(content)
	announced := submission.Reply{Kind: "Bescheid", MessageID: "by-reply-1", ContentType: "application/pdf",
		Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), At: time.Now().UTC(), Actor: "KVR"}

	for name, body := range map[string][]byte{
		"other bytes": []byte("%PDF-1.7 Bescheix"),
		"fewer bytes": content[:len(content)-1],
		"more bytes":  append(bytes.Clone(content), '!'),
		"no bytes":    nil,
	} {
		_, err := e.b.RecordPeerReply(ctx, id, "amtsbote-by", announced, bytes.NewReader(body))
		if !errors.Is(err, store.ErrDigestMismatch) && !errors.Is(err, store.ErrTooLarge) {
			t.Errorf("%s: %v, want a digest mismatch or too large", name, err)
		}
	}
	if _, err := e.b.RecordPeerReply(ctx, id, "amtsbote-nw", announced, bytes.NewReader(content)); !errors.Is(err, ErrConflict) {
		t.Errorf("a reply from a gateway the package did not go to: %v, want ErrConflict", err)
	}
	if s, _ := e.b.Submission(id); len(s.Replies) != 0 {
		t.Fatalf("replies recorded from refused bytes: %+v", s.Replies)
	}
	if _, err := e.db.Blobs().Open(ctx, announced.SHA256); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the announced blob is stored before the right bytes came: %v", err)
	}

	r, err := e.b.RecordPeerReply(ctx, id, "amtsbote-by", announced, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if r.Channel != "peer" || r.MessageID != "by-reply-1" || r.SHA256 != announced.SHA256 || r.ID == "" {
		t.Errorf("stored reply %+v", r)
	}
	again, err := e.b.RecordPeerReply(ctx, id, "amtsbote-by", announced, bytes.NewReader(nil))
	if err != nil || again.ID != r.ID {
		t.Errorf("the same reply again: %+v %v, want the first", again, err)
	}
	s, _ := e.b.Submission(id)
	if len(s.Replies) != 1 {
		t.Fatalf("%d replies, want 1", len(s.Replies))
	}
	_, rc, err := e.b.OpenReplyOf(ctx, s, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
}

// pausedReader yields its first at bytes, then waits for go_ before the rest:
// a reply whose fetch is still under way while the test changes the case.
type pausedReader struct {
	r       io.Reader
	at, n   int
	reached chan struct{}
	go_     chan struct{}
}

func (p *pausedReader) Read(b []byte) (int, error) {
	if p.n == p.at && p.reached != nil {
		close(p.reached)
		p.reached = nil
		<-p.go_
	}
	if p.n < p.at && len(b) > p.at-p.n {
		b = b[:p.at-p.n]
	}
	n, err := p.r.Read(b)
	p.n += n
	return n, err
}

// TestPeerReplyFetchedDuringAnErasureLeavesNoBytes: a case erased while a
// reply of the peer's office is fetched for it takes no reply
// (ErrBytesRemoved), and the bytes that arrived meanwhile are removed again at
// once, as intake removes the parts of a refused package: they stayed as an
// unreferenced blob until the retention's sweep, an erased applicant's
// Bescheid on disk for up to an hour after the erasure was reported done.
func TestPeerReplyFetchedDuringAnErasureLeavesNoBytes(t *testing.T) {
	e := start(t, t.TempDir(), &scripted{channel: "primary", block: make(chan struct{})})
	ctx := context.Background()
	a, err := e.b.Receive(ctx, intake("peer-reply-erased", "primary"))
	if err != nil {
		t.Fatal(err)
	}
	id := a.Submission.ID
	if _, err := e.b.RecordForwarded(id, submission.Forward{Peer: "amtsbote-by", PeerSubmissionID: "p-1", At: time.Now().UTC()}, []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("Bescheid "), 10_000)
	sum := sha256.Sum256(content)
	announced := submission.Reply{Kind: "Bescheid", MessageID: "by-reply-1", ContentType: "application/pdf",
		Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), At: time.Now().UTC()}
	body := &pausedReader{r: bytes.NewReader(content), at: 1000, reached: make(chan struct{}), go_: make(chan struct{})}
	reached := body.reached
	done := make(chan error, 1)
	go func() {
		_, err := e.b.RecordPeerReply(ctx, id, "amtsbote-by", announced, body)
		done <- err
	}()
	<-reached
	if _, err := e.b.Erase(ctx, id, "operator", ""); err != nil {
		close(body.go_)
		t.Fatal(err)
	}
	close(body.go_)
	if err := <-done; !errors.Is(err, ErrBytesRemoved) {
		t.Fatalf("a reply to a case erased while it was fetched: %v, want ErrBytesRemoved", err)
	}
	if s, _ := e.b.Submission(id); len(s.Replies) != 0 {
		t.Fatalf("the erased case holds replies: %+v", s.Replies)
	}
	if rc, err := e.db.Blobs().Open(ctx, announced.SHA256); !errors.Is(err, store.ErrNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("the reply's bytes stay after the erasure: %v", err)
	}
}
