package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/federation"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// replyAt lets the office at n answer its case of the package with a reply, as
// its Fachverfahren does by XTA sendMessage (the office desk's Reply), as the
// file kind + " Müller.pdf".
func (n *fedNode) replyAt(t *testing.T, sender, messageID, kind string, content []byte) submission.Reply {
	t.Helper()
	s, err := n.g.Broker.FindMessage(sender, messageID)
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.g.Broker.Reply(context.Background(), s.OfficeID, s.ID, broker.ReplyIn{Kind: kind, MessageID: "fv-" + kind,
		ContentType: "application/pdf", FileName: kind + " Müller.pdf", Content: content, Actor: "Sachbearbeiterin KVR", Channel: channel.XTA})
	if err != nil {
		t.Fatalf("the office at %s replies: %v", n.id, err)
	}
	return r
}

// TestPeerOfficesRepliesReachThePortal: a package forwarded from Saxony to
// Bavaria is decided by a Munich office, which answers with a Rückfrage before
// its decision and a Bescheid after it. Both replies reached only the Bavarian
// gateway's record: the Saxon portal, which holds the applicant, read the
// decision but never the Bescheid (docs/federation.md listed it as an open
// point). Now the Saxon gateway fetches each reply its peer announces in the
// signed status answer, checks its bytes against the announced size and digest,
// and the portal reads them at its own gateway as any office's reply — also the
// one that comes after the decision, when the package is no longer open.
func TestPeerOfficesRepliesReachThePortal(t *testing.T) {
	sn, by := snAndBy(t)
	ctx := context.Background()

	id := sn.submit(t, fedMuenchenARS)
	s := sn.waitState(t, id, submission.StateDelivered)

	rueckfrage := []byte("%PDF-1.7 Rückfrage: bitte Nachweis nachreichen")
	first := by.replyAt(t, s.Sender, s.MessageID, "Rueckfrage", rueckfrage)
	waitFor(t, "the Rückfrage at sn", func() bool { return len(sn.sub(t, id).Replies) == 1 })

	by.decide(t, s.Sender, s.MessageID, wire.OutcomeAccepted)
	sn.waitState(t, id, submission.StateAccepted)
	// After the decision: the package is no longer open at sn, and is asked about
	// for its replies all the same.
	bescheid := bytes.Repeat([]byte("Bescheid "), 40_000) // 360 KB: more than one read
	second := by.replyAt(t, s.Sender, s.MessageID, "Bescheid", bescheid)
	waitFor(t, "the Bescheid at sn", func() bool { return len(sn.sub(t, id).Replies) == 2 })

	p := sn.portal(t)
	st, err := p.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Replies) != 2 {
		t.Fatalf("the portal's status lists %d replies, want 2: %+v", len(st.Replies), st.Replies)
	}
	for i, want := range []struct {
		kind  string
		from  submission.Reply
		bytes []byte
	}{{"Rueckfrage", first, rueckfrage}, {"Bescheid", second, bescheid}} {
		r := st.Replies[i]
		if r.Kind != want.kind || r.Channel != channel.Peer || r.SHA256 != want.from.SHA256 || r.Size != int64(len(want.bytes)) || r.ContentType != "application/pdf" ||
			r.FileName != want.kind+" Müller.pdf" {
			t.Errorf("reply %d as the portal sees it: %+v, want %s of %d bytes by channel peer, its file name as the office gave it", i, r, want.kind, len(want.bytes))
		}
		got, err := p.Reply(ctx, id, r.ID)
		if err != nil {
			t.Fatalf("the portal fetches reply %d: %v", i, err)
		}
		if !bytes.Equal(got, want.bytes) {
			t.Errorf("reply %d: the portal reads %d bytes, not the office's %d", i, len(got), len(want.bytes))
		}
	}
	// The office at by sees that its replies went on towards the applicant:
	// sn's fetch is, for by, the portal's (reply_fetched by gateway
	// amtsbote-sn); at sn the portal's own read is recorded.
	waitFor(t, "by records sn's fetches", func() bool {
		bs, err := by.g.Broker.FindMessage(s.Sender, s.MessageID)
		return err == nil && len(bs.Replies) == 2 && bs.Replies[0].FetchedAt != nil && bs.Replies[1].FetchedAt != nil
	})
	bs, _ := by.g.Broker.FindMessage(s.Sender, s.MessageID)
	byEvs, err := by.g.Broker.Log(bs.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := submission.OfType(byEvs, submission.EventReplyFetched); len(got) != 2 || got[0].Actor != "gateway amtsbote-sn" {
		t.Errorf("by's reply_fetched events %+v, want two by gateway amtsbote-sn", got)
	}
	// Recorded once the handler's copy ended, which may come a moment after
	// the portal had the last byte.
	waitFor(t, "sn records the portal's reads", func() bool {
		rs := sn.sub(t, id).Replies
		return rs[0].FetchedAt != nil && rs[1].FetchedAt != nil
	})
	evs, err := sn.g.Broker.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == submission.EventReplied {
			n++
			if e.Channel != channel.Peer || !strings.Contains(e.Detail, "from gateway amtsbote-by") {
				t.Errorf("replied event %+v: want channel peer, naming the gateway", e)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d replied events at sn, want 2", n)
	}
	// Asked again and again (the decided package stays asked about, every poll
	// of 100 ms at first): nothing twice.
	time.Sleep(500 * time.Millisecond)
	if got := len(sn.sub(t, id).Replies); got != 2 {
		t.Fatalf("%d replies at sn after more questions, want 2", got)
	}
	// The operator sees it per peer (AmtsbotePeerUnanswered, AmtsbotePeerRepliesFailing).
	m := scrapeMetrics(t, sn.url())
	if !strings.Contains(m, `amtsbote_federation_replies_total{outcome="stored",peer="amtsbote-by"} 2`) ||
		!strings.Contains(m, `amtsbote_federation_replies_total{outcome="failed",peer="amtsbote-by"} 0`) ||
		!regexp.MustCompile(`amtsbote_federation_questions_total\{outcome="answered",peer="amtsbote-by"\} [1-9]`).MatchString(m) {
		t.Errorf("sn's federation counters:\n%s", grepLines(m, "amtsbote_federation_"))
	}
}

// TestPeerReplyAfterARestartOfTheForwardingGateway: the forwarding gateway
// restarts after the decision; the open packages it finds again are the
// undecided ones, so a Bescheid that comes afterwards would never be asked
// for. It finds the decided ones whose bytes it keeps too.
func TestPeerReplyAfterARestartOfTheForwardingGateway(t *testing.T) {
	sn, by := snAndBy(t)
	id := sn.submit(t, fedMuenchenARS)
	s := sn.waitState(t, id, submission.StateDelivered)
	by.decideWith(t, s.Sender, s.MessageID, wire.OutcomeRejected, `"Unterlagen unvollständig"`)
	sn.waitState(t, id, submission.StateRejected)

	sn.stop(t)
	by.replyAt(t, s.Sender, s.MessageID, "Bescheid", []byte("%PDF-1.7 Ablehnungsbescheid"))
	sn.start(t)
	waitFor(t, "the Bescheid at sn after its restart", func() bool { return len(sn.sub(t, id).Replies) == 1 })
}

// TestPeerRepliesOnlyToWhoForwarded: a reply is fetched only by the gateway
// that forwarded its package (as the status answer names only those): another
// peer asking for it, and the forwarding gateway asking for a reply of a
// package it did not forward (by's own portal's), get 404 whether it exists or
// not. A third peer (amtsbote-th, trusted by by, never started) only signs.
func TestPeerRepliesOnlyToWhoForwarded(t *testing.T) {
	sn, by, th := snByAndTh(t)

	forwarded := sn.waitState(t, sn.submit(t, fedMuenchenARS), submission.StateDelivered)
	r := by.replyAt(t, forwarded.Sender, forwarded.MessageID, "Bescheid", []byte("Bescheid"))
	own := by.sub(t, by.submit(t, fedMuenchenARS))
	own = by.waitState(t, own.ID, submission.StateDelivered)
	ownReply := by.replyAt(t, own.Sender, own.MessageID, "Bescheid", []byte("Bescheid an den eigenen Antragsteller"))
	fwd := federation.Ref{Sender: forwarded.Sender, MessageID: forwarded.MessageID}

	// A question of a build before replies travelled asks for none, and gets an
	// answer without them, which its strict reader can read.
	if items := askStatus(t, sn, by, fwd); len(items[0].Replies) != 0 {
		t.Errorf("a question that asks for no replies is answered with %d", len(items[0].Replies))
	}
	if code, body := fetchReply(t, sn, by, fwd, r.ID); code != http.StatusOK || body != "Bescheid" {
		t.Errorf("sn fetches the reply of the package it forwarded: %d %q (the control)", code, body)
	}
	for what, c := range map[string]struct {
		from *fedNode
		ref  federation.Ref
		id   string
	}{
		"another peer, the reply of a package sn forwarded": {th, fwd, r.ID},
		"sn, the reply of by's own portal's package":        {sn, federation.Ref{Sender: own.Sender, MessageID: own.MessageID}, ownReply.ID},
		"sn, a reply id its package does not have":          {sn, fwd, ownReply.ID},
	} {
		if code, body := fetchReply(t, c.from, by, c.ref, c.id); code != http.StatusNotFound || strings.Contains(body, "Bescheid") {
			t.Errorf("%s: %d %q, want 404", what, code, body)
		}
	}
}

// fetchReply sends from's signed Antwortabruf for a reply of ref to to.
func fetchReply(t *testing.T, from, to *fedNode, ref federation.Ref, replyID string) (int, string) {
	t.Helper()
	q := &federation.ReplyQuery{From: from.id, To: to.id, At: time.Now().UTC(), Ref: ref, ReplyID: replyID}
	doc, err := q.Sign(from.gatewaySigner(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(to.url()+federation.PathReply, federation.ContentType, bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestPeerReplyTravelsTwoHops: sn → by → nw, the office at nw. Its Bescheid comes
// back hop by hop: by fetches it from nw into its own record (a package by
// forwarded on), and sn fetches it from by; the portal at sn reads nw's bytes.
func TestPeerReplyTravelsTwoHops(t *testing.T) {
	sn, by, nw := snByNw(t)

	id := sn.submit(t, fedKoelnARS)
	s := sn.waitState(t, id, submission.StateDelivered)
	nw.decide(t, s.Sender, s.MessageID, wire.OutcomeAccepted)
	sn.waitState(t, id, submission.StateAccepted)
	bescheid := []byte("%PDF-1.7 Bescheid der Stadt Köln")
	r := nw.replyAt(t, s.Sender, s.MessageID, "Bescheid", bescheid)
	waitFor(t, "the Bescheid at sn, two hops away", func() bool { return len(sn.sub(t, id).Replies) == 1 })

	got, err := sn.portal(t).Reply(context.Background(), id, sn.sub(t, id).Replies[0].ID)
	if err != nil || !bytes.Equal(got, bescheid) {
		t.Fatalf("the portal at sn reads %q (%v), want nw's Bescheid", got, err)
	}
	if name := sn.sub(t, id).Replies[0].FileName; name != "Bescheid Müller.pdf" {
		t.Errorf("the Bescheid at sn is named %q, want the name nw's office gave it", name)
	}
	if bs, err := by.g.Broker.FindMessage(s.Sender, s.MessageID); err != nil || len(bs.Replies) != 1 || bs.Replies[0].SHA256 != r.SHA256 {
		t.Errorf("by, in between, holds %+v (%v)", bs, err)
	}
}

// scrapeMetrics reads a gateway's /metrics.
func scrapeMetrics(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// grepLines are the lines of text that hold s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPeerReplyDownloadOutlivesWriteTimeout: the bytes of a reply (up to 64
// MiB) go to the forwarding gateway under the progress rule of every other
// download, not the server's fixed http.write_timeout, which cut a Bescheid of
// tens of megabytes off on a link of a few Mbit/s at every attempt: the
// forwarding gateway asked for it again and again and the portal never got it.
func TestPeerReplyDownloadOutlivesWriteTimeout(t *testing.T) {
	sn := newFedNode(t, "amtsbote-sn")
	by := newMunichPeer(t, sn)
	// The progress window (read_timeout) is wider than the fixed write timeout
	// the download must outlive: a loaded machine must not fail the test.
	by.cfg.HTTP.ReadTimeout, by.cfg.HTTP.WriteTimeout = 3*time.Second, time.Second
	by.cfg.HTTP.UploadMinRate = 8 << 10
	by.start(t)
	sn.peer(by, "", time.Hour, "09")
	sn.start(t)

	s := sn.waitState(t, sn.submit(t, fedMuenchenARS), submission.StateDelivered)
	bescheid := randomBytes(16 << 20) // more than the loopback socket buffers hold
	r := by.replyAt(t, s.Sender, s.MessageID, "Bescheid", bescheid)

	q := &federation.ReplyQuery{From: sn.id, To: by.id, At: time.Now().UTC(),
		Ref: federation.Ref{Sender: s.Sender, MessageID: s.MessageID}, ReplyID: r.ID}
	doc, err := q.Sign(sn.gatewaySigner(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(by.url()+federation.PathReply, federation.ContentType, bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Antwortabruf: %d", resp.StatusCode)
	}
	// 64 KiB every 20 ms (~3 MB/s), as TestDownloadOutlivesWriteTimeout reads.
	start := time.Now()
	var got bytes.Buffer
	_, err = io.CopyBuffer(&got, &slowReader{r: resp.Body, pause: 20 * time.Millisecond}, make([]byte, 64<<10))
	took := time.Since(start)
	if err != nil || !bytes.Equal(got.Bytes(), bescheid) {
		t.Fatalf("slow fetch of the reply over %s: %d of %d bytes, %v", took, got.Len(), len(bescheid), err)
	}
	if took < 4*time.Second {
		t.Fatalf("the fetch took %s, not much longer than the write timeout: the test proves nothing", took)
	}
}

// counter reads one counter of a gateway's /metrics (series: the name with its
// labels as exposed); 0 when it is not there.
func counter(t *testing.T, n *fedNode, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(scrapeMetrics(t, n.url()))
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPeerRepliesNotAskedForAnErasedCase: a case erased at the forwarding
// gateway (the applicant's request) while its office at the peer still works
// on it takes no reply. Its status questions asked for the replies all the
// same: each Rückfrage the office sent was announced, fetched and refused at
// every poll (ErrBytesRemoved) until the office decided, weeks maybe, counted
// as failed and warned about, and AmtsbotePeerRepliesFailing sent the
// operator to the peer's operator for a cause that is here. Now the question
// asks for none.
func TestPeerRepliesNotAskedForAnErasedCase(t *testing.T) {
	sn, by := snAndBy(t)
	id := sn.submit(t, fedMuenchenARS)
	s := sn.waitState(t, id, submission.StateDelivered)
	if _, err := sn.g.Broker.Erase(context.Background(), id, "operator", ""); err != nil {
		t.Fatal(err)
	}
	by.replyAt(t, s.Sender, s.MessageID, "Rueckfrage", []byte("%PDF-1.7 Rückfrage"))

	// Questions after the reply is at by (sn asks every 100 ms about the open case).
	answered := `amtsbote_federation_questions_total{outcome="answered",peer="amtsbote-by"}`
	after := counter(t, sn, answered)
	waitFor(t, "three more answered questions", func() bool { return counter(t, sn, answered) >= after+3 })
	if n := counter(t, sn, `amtsbote_federation_replies_total{outcome="failed",peer="amtsbote-by"}`); n != 0 {
		t.Errorf("%v replies failed for the erased case, want none asked for", n)
	}
	if got := sn.sub(t, id); len(got.Replies) != 0 {
		t.Errorf("the erased case holds replies: %+v", got.Replies)
	}
}

// TestNachreichungCrossesToThePeersCase: the applicant answers the Rückfrage
// of a Munich office through Saxony's portal. The Nachreichung names the
// application (Kopf/Bezug) — and Dresden as its place, which sn's directory
// would keep in Saxony —; sn forwards it to by as it forwarded the
// application, and by, which has the case, gives it to the same office under
// that case's id — by resolves the Bezug against the package sn forwarded,
// not against anything else of the portal's there.
func TestNachreichungCrossesToThePeersCase(t *testing.T) {
	sn, by := snAndBy(t)
	id := sn.submit(t, fedMuenchenARS)
	s := sn.waitState(t, id, submission.StateDelivered)
	follow := sn.submitFollowUp(t, "146120000000", s.MessageID)
	fs := sn.waitState(t, follow, submission.StateDelivered)
	if fs.CaseID != id || fs.Forward == nil {
		t.Fatalf("at sn: case %q, forward %+v; want case %s, forwarded", fs.CaseID, fs.Forward, id)
	}
	first, err := by.g.Broker.FindMessage(s.Sender, s.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	there, err := by.g.Broker.FindMessage(fs.Sender, fs.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	if there.CaseID != first.ID || there.OfficeID != first.OfficeID {
		t.Errorf("at by: the Nachreichung is case %q at office %s; want by's case %s at %s", there.CaseID, there.OfficeID, first.ID, first.OfficeID)
	}
}

// TestNachreichungTravelsTwoHops: a case sn forwarded to by, which forwarded
// it on to nw (Cologne): the Nachreichung follows the same chain, each gateway
// sending it to the peer it sent the case to, and reaches the Cologne office
// under nw's id of the case.
func TestNachreichungTravelsTwoHops(t *testing.T) {
	sn, by, nw := snByNw(t)
	id := sn.submit(t, fedKoelnARS)
	s := sn.waitState(t, id, submission.StateDelivered)
	follow := sn.submitFollowUp(t, fedKoelnARS, s.MessageID)
	fs := sn.waitState(t, follow, submission.StateDelivered)
	if fs.CaseID != id {
		t.Fatalf("at sn: case %q, want %s", fs.CaseID, id)
	}
	for _, n := range []*fedNode{by, nw} {
		first, err := n.g.Broker.FindMessage(s.Sender, s.MessageID)
		if err != nil {
			t.Fatalf("at %s: %v", n.id, err)
		}
		var there *submission.Submission
		waitFor(t, "the Nachreichung at "+n.id, func() bool {
			there, err = n.g.Broker.FindMessage(fs.Sender, fs.MessageID)
			return err == nil
		})
		if there.CaseID != first.ID || there.OfficeID != first.OfficeID {
			t.Errorf("at %s: the Nachreichung is case %q at office %s; want %s at %s", n.id, there.CaseID, there.OfficeID, first.ID, first.OfficeID)
		}
	}
}
