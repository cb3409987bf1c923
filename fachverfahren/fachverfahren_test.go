package fachverfahren_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// bigSize is over the 64 MiB every download was cut to.
const bigSize = 65 << 20

// generated is bigSize bytes of the same seeded noise at every call: made on the
// fly, as a portal streams a scan, never held whole by the test.
func generated() io.ReadCloser {
	return io.NopCloser(io.LimitReader(rand.NewChaCha8([32]byte{'f', 'v'}), bigSize))
}

// attachmentRequest is what the office asked of one attachment and got.
type attachmentRequest struct {
	rangeHdr, ifRange string
	status            int
	bytes             int64
	took              time.Duration // from the request to the body's end
}

// throttle is a transport that passes the downloads of one attachment slowly,
// pausing at every 8 MiB (so the whole takes long, no gap does), and stalls the first one after cutAt bytes until the request is given
// up: a connection that stops delivering without breaking. It records each request.
type throttle struct {
	suffix string
	cutAt  int64
	pause  time.Duration
	mu     sync.Mutex
	reqs   []*attachmentRequest
}

func (th *throttle) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !strings.HasSuffix(r.URL.Path, th.suffix) {
		return resp, err
	}
	th.mu.Lock()
	rec := &attachmentRequest{rangeHdr: r.Header.Get("Range"), ifRange: r.Header.Get("If-Range"), status: resp.StatusCode}
	th.reqs = append(th.reqs, rec)
	cut := int64(-1)
	if len(th.reqs) == 1 {
		cut = th.cutAt
	}
	th.mu.Unlock()
	resp.Body = &slowBody{rc: resp.Body, th: th, rec: rec, cut: cut, ctx: r.Context(), start: time.Now()}
	return resp, nil
}

func (th *throttle) requests() []attachmentRequest {
	th.mu.Lock()
	defer th.mu.Unlock()
	out := make([]attachmentRequest, 0, len(th.reqs))
	for _, r := range th.reqs {
		out = append(out, *r)
	}
	return out
}

type slowBody struct {
	rc    io.ReadCloser
	th    *throttle
	rec   *attachmentRequest
	cut   int64 // stall after this many bytes; -1 never
	ctx   context.Context
	start time.Time
}

func (b *slowBody) Read(p []byte) (int, error) {
	b.th.mu.Lock()
	got := b.rec.bytes
	b.th.mu.Unlock()
	if b.cut >= 0 && got >= b.cut {
		// Stalled: nothing more comes. The bound only ends the test of a client
		// that never gives up.
		select {
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		case <-time.After(20 * time.Second):
			return 0, errors.New("stalled for 20 s (test bound)")
		}
	}
	if b.cut >= 0 && int64(len(p)) > b.cut-got {
		p = p[:b.cut-got]
	}
	n, err := b.rc.Read(p)
	if got/(8<<20) != (got+int64(n))/(8<<20) {
		time.Sleep(b.th.pause)
	}
	b.th.mu.Lock()
	b.rec.bytes += int64(n)
	if err == io.EOF {
		b.rec.took = time.Since(b.start)
	}
	b.th.mu.Unlock()
	return n, err
}

func (b *slowBody) Close() error { return b.rc.Close() }

// TestAttachmentOver64MiBIsStreamedAndResumed: an attachment of 65 MiB sent by
// reference reaches a decision, its digest checked against the signed package's
// declaration. Its download stalls after 20 MiB: the idle timeout cuts it, and it
// is resumed from there with Range and If-Range (206), not fetched again from
// zero; the resumption takes longer than the idle timeout, which bounds only gaps.
// The heap stays far below the attachment's size, and no temporary file is left.
// Before, every download was cut at 64 MiB and the attachment reported as
// tampered, and a client timeout of 30 s bounded each download as a whole.
func TestAttachmentOver64MiBIsStreamedAndResumed(t *testing.T) {
	f := startGateway(t, channel.API, config.Channel{})
	a, part, err := portal.StreamedAnlage("scan", "scan.bin", "application/octet-stream", func() (io.ReadCloser, error) { return generated(), nil })
	if err != nil {
		t.Fatal(err)
	}
	p := example()
	p.Anlagen = append(p.Anlagen, a)
	id := f.submit(t, p, part)
	f.waitState(t, id, submission.StateHandedOver, 30*time.Second)

	const idle = 2 * time.Second
	th := &throttle{suffix: "/attachments/scan", cutAt: 20 << 20, pause: 400 * time.Millisecond}
	tmp := t.TempDir()
	var logMu sync.Mutex
	var log []string
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, Client: &http.Client{Transport: th},
		IdleTimeout: idle, TempDir: tmp, Logf: func(format string, args ...any) {
			logMu.Lock()
			log = append(log, fmt.Sprintf(format, args...))
			logMu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	fv.SetVerifier(f.verifier())

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	peak := make(chan uint64)
	stop := make(chan struct{})
	go func() {
		var m runtime.MemStats
		var most uint64
		for {
			runtime.ReadMemStats(&m)
			most = max(most, m.HeapInuse)
			select {
			case <-stop:
				peak <- most
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	n, err := fv.Poll(context.Background(), f.g.URL())
	close(stop)
	heap := <-peak
	out := fv.Processed()[id]
	if err != nil || n != 1 || out.Err != nil || !out.Accepted || out.Attachments != len(p.Anlagen) {
		t.Fatalf("poll: %d %v, outcome %+v\n%s", n, err, out, strings.Join(log, "\n"))
	}
	if st := f.state(t, id); st != submission.StateAccepted {
		t.Fatalf("at the gateway: %s, want accepted", st)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, generated()); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("attachment fetched: scan (application/octet-stream, %d bytes), SHA-256 matches", bigSize)
	if a.SHA256 != hex.EncodeToString(sum.Sum(nil)) || !strings.Contains(strings.Join(log, "\n"), want) {
		t.Errorf("no log line %q:\n%s", want, strings.Join(log, "\n"))
	}

	reqs := th.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests of the attachment: %+v, want the first and its resumption", reqs)
	}
	if r := reqs[0]; r.rangeHdr != "" || r.status != http.StatusOK || r.bytes != th.cutAt {
		t.Errorf("first request: %+v, want the whole asked for and %d bytes delivered before the stall", r, th.cutAt)
	}
	if r := reqs[1]; r.rangeHdr != fmt.Sprintf("bytes=%d-", th.cutAt) || r.ifRange != `"`+a.SHA256+`"` ||
		r.status != http.StatusPartialContent || r.bytes != bigSize-th.cutAt {
		t.Errorf("resumption: %+v, want bytes=%d- if still %s, 206 with the rest", r, th.cutAt, a.SHA256)
	}
	// 6 pauses of 400 ms: longer than the idle timeout, and not cut.
	if took := reqs[1].took; took <= idle {
		t.Errorf("the resumption took %s, not longer than the idle timeout: it does not show that only gaps are bounded", took)
	}
	t.Logf("heap in use at most %d MiB (%d MiB before)", heap>>20, base.HeapInuse>>20)
	if heap > base.HeapInuse+32<<20 {
		t.Errorf("heap in use rose to %d MiB from %d MiB while a %d MiB attachment was downloaded: it is held in memory", heap>>20, base.HeapInuse>>20, bigSize>>20)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// lossy is a transport that loses every fetch of the packages named in fail
// (nil: of any package; a connection reset before the request is sent, so the gateway never counts
// it, or, with cut, after the gateway has answered it) until left such losses
// are spent (left < 0: never), and, with pageSize set, asks the office list for
// pages of that many entries, as a gateway answers that gives fewer than asked.
type lossy struct {
	pageSize int
	cut      bool
	mu       sync.Mutex
	fail     map[string]bool
	left     int
	lost     int
}

func (l *lossy) RoundTrip(r *http.Request) (*http.Response, error) {
	if l.pageSize > 0 && r.Method == http.MethodGet && r.URL.Path == wire.OfficeSubmissionsPath {
		q := r.URL.Query()
		q.Set("limit", strconv.Itoa(l.pageSize))
		r = r.Clone(r.Context())
		r.URL.RawQuery = q.Encode()
	}
	l.mu.Lock()
	lose := false
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/package") && l.left != 0 {
		for id := range l.fail {
			lose = lose || r.URL.Path == wire.OfficePackagePath(id)
		}
		if lose || l.fail == nil {
			lose = true
			l.left--
			l.lost++
		}
	}
	l.mu.Unlock()
	if !lose {
		return http.DefaultTransport.RoundTrip(r)
	}
	if l.cut {
		if resp, err := http.DefaultTransport.RoundTrip(r); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	return nil, errors.New("connection reset (simulated)")
}

// officeList is the ids the office's list names in state st, in its order.
func officeList(t *testing.T, f *fixture, st submission.State) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.g.URL()+wire.OfficeListPath("", 100, string(st)), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list wire.OfficeList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("office list: %d %v", resp.StatusCode, err)
	}
	var ids []string
	for _, s := range list.Submissions {
		ids = append(ids, s.ID)
	}
	return ids
}

// TestPollFollowsNextPastStuckCases: the list comes in pages of one entry, and
// the first case cannot be fetched now (kept for the next round). One round
// follows the next links and decides the two cases behind it. Before, a round
// read the first page only: the stuck case hid the others, round after round.
func TestPollFollowsNextPastStuckCases(t *testing.T) {
	f := startGateway(t, channel.API, config.Channel{})
	var ids []string
	for range 3 {
		id := f.submit(t, example())
		f.waitState(t, id, submission.StateHandedOver, 30*time.Second)
		ids = append(ids, id)
	}
	order := officeList(t, f, submission.StateHandedOver)
	if len(order) != 3 {
		t.Fatalf("listed: %v, want %v", order, ids)
	}
	stuck := order[0]
	lost := &lossy{pageSize: 1, fail: map[string]bool{stuck: true}, left: -1}
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, Client: &http.Client{Transport: lost}})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	if n, err := fv.Poll(context.Background(), f.g.URL()); err != nil || n != 2 {
		t.Fatalf("one round: %d finished, %v; want 2", n, err)
	}
	for _, id := range order[1:] {
		if st := f.state(t, id); st != submission.StateAccepted {
			t.Errorf("%s is %s, want accepted", id, st)
		}
	}
	if st := f.state(t, stuck); st != submission.StateHandedOver || lost.lost != 1 {
		t.Errorf("the stuck %s is %s after %d tries, want handed_over after 1", stuck, st, lost.lost)
	}
}

// TestPollDecidesAFetchedCaseAfterGivingUp: the first fetch of a package is cut
// off after the gateway counted it (delivered: no longer listed as waiting), and
// the next try fails as well, after RetryFor: the office reports the error, but
// keeps the package, and a later round decides it. Before, the package was
// dropped when given up, and no later round named it again: it stayed
// undecided for ever.
func TestPollDecidesAFetchedCaseAfterGivingUp(t *testing.T) {
	f := startGateway(t, channel.API, config.Channel{})
	id := f.submit(t, example())
	f.waitState(t, id, submission.StateHandedOver, 30*time.Second)
	lost := &lossy{fail: map[string]bool{id: true}, cut: true, left: 2}
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, RetryFor: 50 * time.Millisecond, Client: &http.Client{Transport: lost}})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	ctx := context.Background()
	if n, err := fv.Poll(ctx, f.g.URL()); err != nil || n != 0 {
		t.Fatalf("first round (cut off): %d %v", n, err)
	}
	if st := f.state(t, id); st != submission.StateDelivered {
		t.Fatalf("after the first fetch: %s, want delivered", st)
	}
	time.Sleep(100 * time.Millisecond) // beyond RetryFor
	if n, err := fv.Poll(ctx, f.g.URL()); err != nil || n != 1 || fv.Processed()[id].Err == nil {
		t.Fatalf("second round (given up): %d %v %+v", n, err, fv.Processed()[id])
	}
	if n, err := fv.Poll(ctx, f.g.URL()); err != nil || n != 1 || fv.Processed()[id].Err != nil || !fv.Processed()[id].Accepted {
		t.Fatalf("third round: %d %v %+v, want it decided", n, err, fv.Processed()[id])
	}
	if st := f.state(t, id); st != submission.StateAccepted {
		t.Fatalf("after the third round: %s, want accepted", st)
	}
}

// TestPollFirstRoundDecidesWhatWasFetchedBefore: a package was fetched (the
// delivery) by an office system that then stopped before it decided — a crash,
// a restart. The office's first round finds it among the delivered cases and
// decides it. Before, only waiting cases were listed: it stayed undecided.
func TestPollFirstRoundDecidesWhatWasFetchedBefore(t *testing.T) {
	f := startGateway(t, channel.API, config.Channel{})
	id := f.submit(t, example())
	f.waitState(t, id, submission.StateHandedOver, 30*time.Second)
	req, _ := http.NewRequest(http.MethodGet, f.g.URL()+wire.OfficePackagePath(id), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if st := f.state(t, id); resp.StatusCode != http.StatusOK || st != submission.StateDelivered {
		t.Fatalf("the earlier fetch: %d, %s", resp.StatusCode, st)
	}
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	if n, err := fv.Poll(context.Background(), f.g.URL()); err != nil || n != 1 || !fv.Processed()[id].Accepted {
		t.Fatalf("first round: %d %v %+v", n, err, fv.Processed()[id])
	}
	if st := f.state(t, id); st != submission.StateAccepted {
		t.Fatalf("after the first round: %s, want accepted", st)
	}
}

// TestWebhookOfficeDecidesAfterGivingUp: after a notification (answered, so
// the gateway counts the package delivered and sends no other) the fetches fail
// beyond RetryFor. The office reports the error and keeps trying, less often,
// until it has decided. Before, it gave up for good: the package stayed
// delivered and undecided.
func TestWebhookOfficeDecidesAfterGivingUp(t *testing.T) {
	lost := &lossy{left: 3}
	fv, err := fachverfahren.Start(fachverfahren.Options{RetryFor: 50 * time.Millisecond, Client: &http.Client{Transport: lost}})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	secret := webhook.NewSecret()
	f := startGateway(t, channel.Webhook, config.Channel{Endpoint: fv.URL(), Secret: secret})
	fv.SetCredentials(testToken, secret)
	id := f.submit(t, example())
	next := func() fachverfahren.Outcome {
		t.Helper()
		select {
		case out := <-fv.Outcomes():
			return out
		case <-time.After(20 * time.Second):
			t.Fatalf("no outcome; at the gateway %s", f.state(t, id))
			return fachverfahren.Outcome{}
		}
	}
	if out := next(); out.SubmissionID != id || out.Err == nil {
		t.Fatalf("first outcome: %+v, want the error it gave up with", out)
	}
	if out := next(); out.SubmissionID != id || out.Err != nil || !out.Accepted {
		t.Fatalf("second outcome: %+v, want accepted", out)
	}
	if st := f.state(t, id); st != submission.StateAccepted {
		t.Fatalf("at the gateway: %s, want accepted", st)
	}
}

// answerLost is a transport that loses the first decision (before it is sent)
// and counts the fetches of attachments.
type answerLost struct {
	mu                sync.Mutex
	lost, attachments int
}

func (l *answerLost) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	lose := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/accept") && l.lost == 0
	if lose {
		l.lost++
	}
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/attachments/") {
		l.attachments++
	}
	l.mu.Unlock()
	if lose {
		return nil, errors.New("connection reset (simulated)")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestLostDecisionFetchesNoAttachmentAgain: the decision is lost on the way,
// after every attachment was fetched and checked. The next round decides the
// package without fetching its attachments again. Before, every try fetched
// them all anew: after a lost answer, gigabytes again.
func TestLostDecisionFetchesNoAttachmentAgain(t *testing.T) {
	f := startGateway(t, channel.API, config.Channel{})
	p := example()
	id := f.submit(t, p)
	f.waitState(t, id, submission.StateHandedOver, 30*time.Second)
	lost := &answerLost{}
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, Client: &http.Client{Transport: lost}})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	ctx := context.Background()
	if n, err := fv.Poll(ctx, f.g.URL()); err != nil || n != 0 || lost.lost != 1 {
		t.Fatalf("first round (answer lost): %d %v", n, err)
	}
	if n, err := fv.Poll(ctx, f.g.URL()); err != nil || n != 1 || !fv.Processed()[id].Accepted || fv.Processed()[id].Attachments != len(p.Anlagen) {
		t.Fatalf("second round: %d %v %+v", n, err, fv.Processed()[id])
	}
	if lost.attachments != len(p.Anlagen) {
		t.Errorf("%d fetches of attachments for %d attachments", lost.attachments, len(p.Anlagen))
	}
	if st := f.state(t, id); st != submission.StateAccepted {
		t.Fatalf("after the second round: %s, want accepted", st)
	}
}

// padded is a transport that answers every attachment with bytes appended, as
// a gateway serving the wrong content would: with a length that says so, or
// without one (chunked).
type padded struct{ withLength bool }

const padding = "appended"

func (p padded) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !strings.Contains(r.URL.Path, "/attachments/") {
		return resp, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(resp.Body, strings.NewReader(padding)), resp.Body}
	if p.withLength {
		resp.ContentLength += int64(len(padding))
		resp.Header.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	} else {
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
	return resp, nil
}

// TestAttachmentLongerThanAnnouncedIsRefused: an attachment answered with more
// bytes than announced fails for good with an error that says so — before its
// bytes are read when the answer's length tells — and leaves no temporary file.
// Before, an answer was cut silently (at 64 MiB) and only its digest told.
func TestAttachmentLongerThanAnnouncedIsRefused(t *testing.T) {
	for _, withLength := range []bool{false, true} {
		t.Run(fmt.Sprintf("length=%v", withLength), func(t *testing.T) {
			f := startGateway(t, channel.API, config.Channel{})
			p := example()
			id := f.submit(t, p)
			f.waitState(t, id, submission.StateHandedOver, 30*time.Second)
			tmp := t.TempDir()
			fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, TempDir: tmp, Client: &http.Client{Transport: padded{withLength}}})
			if err != nil {
				t.Fatal(err)
			}
			defer fv.Close()
			a := p.Anlagen[0]
			want := fmt.Sprintf("attachment %s: the gateway sends more than the %d bytes announced", a.ID, a.Groesse)
			if withLength {
				want = fmt.Sprintf("attachment %s: the gateway sends %d bytes from byte 0, announced are %d in all", a.ID, a.Groesse+int64(len(padding)), a.Groesse)
			}
			if n, err := fv.Poll(context.Background(), f.g.URL()); err != nil || n != 1 || fv.Processed()[id].Err == nil || fv.Processed()[id].Err.Error() != want {
				t.Fatalf("poll: %d %v %+v, want the error %q", n, err, fv.Processed()[id], want)
			}
			if st := f.state(t, id); st != submission.StateDelivered {
				t.Errorf("at the gateway: %s, want delivered (not decided)", st)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// trickle is a transport whose attachment downloads never end: a few bytes,
// then nothing until the request's context ends (the test sets an idle timeout
// far beyond its guard). It says on started when the first one began.
type trickle struct {
	once    sync.Once
	started chan struct{}
	sent    int // one download at a time here
}

func (tr *trickle) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/attachments/") {
		return http.DefaultTransport.RoundTrip(r)
	}
	tr.once.Do(func() { close(tr.started) })
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, ContentLength: -1, Request: r,
		Body: io.NopCloser(readerFunc(func(p []byte) (int, error) {
			if tr.sent < 16 {
				tr.sent++
				p[0] = 'x'
				return 1, nil
			}
			<-r.Context().Done()
			return 0, r.Context().Err()
		}))}, nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestCloseEndsADownloadUnderWay: after a notification, the office's download
// of an attachment still under way (stalled, its idle timeout an hour off) is
// cancelled by Close. Close waited for it: the default client has no overall
// timeout any more (a 2 GiB attachment takes minutes), so a stop of the office's
// system waited as long as the download. The guard is liveness only: this
// download would never end.
func TestCloseEndsADownloadUnderWay(t *testing.T) {
	tr := &trickle{started: make(chan struct{})}
	fv, err := fachverfahren.Start(fachverfahren.Options{Client: &http.Client{Transport: tr}, IdleTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	secret := webhook.NewSecret()
	f := startGateway(t, channel.Webhook, config.Channel{Endpoint: fv.URL(), Secret: secret})
	fv.SetCredentials(testToken, secret)
	f.submit(t, example())
	select {
	case <-tr.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the office never began downloading the attachment")
	}
	closed := make(chan error, 1)
	go func() { closed <- fv.Close() }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close still waits for a download that never ends")
	}
}

// TestWebhookWithoutSecretAnswers5xx: a notification that reaches the office before
// its secret is set (SetCredentials comes later) is answered 500, which the gateway
// retries, as docs/webhook.md step 1 says. It was answered 400, which the gateway
// takes as permanent: the package left the webhook channel for the office's own
// missing configuration. Once the secret is set, the same notification is taken.
func TestWebhookWithoutSecretAnswers5xx(t *testing.T) {
	fv, err := fachverfahren.Start(fachverfahren.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	secret := webhook.NewSecret()
	body := []byte(`{"type":"` + webhook.TypeNewSubmissions + `","deliveryId":"dlv-1","submissionId":"s1"}`)
	post := func() int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, fv.URL(), strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		if err := webhook.Sign(req.Header, secret, "dlv-1", time.Now(), body); err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != http.StatusInternalServerError {
		t.Fatalf("office without a secret answered %d, want 500 (a 4xx is permanent at the gateway)", code)
	}
	// Set, but not a whsec_ key: the office's fault too.
	fv.SetCredentials(testToken, "geheim")
	if code := post(); code != http.StatusInternalServerError {
		t.Fatalf("office with an invalid secret answered %d, want 500", code)
	}
	// A notification under another secret is still refused as unauthenticated.
	fv.SetCredentials(testToken, webhook.NewSecret())
	if code := post(); code != http.StatusUnauthorized {
		t.Fatalf("office with another secret answered %d, want 401", code)
	}
	// The retry after the secret is set is taken. (The office then tries to fetch
	// from links that lead nowhere; Close ends that.)
	fv.SetCredentials(testToken, secret)
	if code := post(); code != http.StatusOK {
		t.Fatalf("office with its secret answered %d, want 200", code)
	}
}

// deliveredEvents counts the delivered events of a submission: one, however
// many ways the package had to the office.
func deliveredEvents(t *testing.T, f *fixture, id string) int {
	t.Helper()
	evs, err := f.g.Broker.Events(t.Context(), testOffice, id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == submission.EventDelivered {
			n++
		}
	}
	return n
}

// TestPollTakesAHeldPackage: the office's endpoint refused the notification
// (401: a wrong secret), the office has no other channel, and the package is
// held until its system fetches it. Poll, as docs/pull.md and docs/webhook.md
// tell a system catching up to, lists held packages and decides this one.
// Poll listed handed_over only: the held package was never fetched.
func TestPollTakesAHeldPackage(t *testing.T) {
	sec := webhook.NewSecret()
	fv, err := fachverfahren.Start(fachverfahren.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	f := startGateway(t, channel.Webhook, config.Channel{Endpoint: fv.URL(), Secret: sec})
	fv.SetCredentials(testToken, webhook.NewSecret()) // not the gateway's: 401, permanent
	id := f.submit(t, example())
	f.waitState(t, id, submission.StateHeld, 30*time.Second)
	if n, err := fv.Poll(t.Context(), f.g.URL()); err != nil || n != 1 || !fv.Processed()[id].Accepted {
		t.Fatalf("one round: %d finished, %v, %+v; want the held package decided", n, err, fv.Processed()[id])
	}
	if st := f.state(t, id); st != submission.StateAccepted {
		t.Fatalf("after the round the held package is %s, want accepted", st)
	}
	if n := deliveredEvents(t, f, id); n != 1 {
		t.Errorf("%d delivered events, want 1", n)
	}
}

// TestPollTakesRetryingAndStuckQueuedPackages: the office's endpoint answers 503
// and the breaker opens after one failure, so the first package is retrying and
// a second stays queued (no attempt while the breaker is open). One Poll round
// takes the retrying package; the queued one it takes in the next round, when it
// is queued still (a package queued for moments is about to be notified, and
// taking it at once raced that). Both are delivered once and decided, and the
// gateway makes no further attempt. Poll listed handed_over only: neither was
// ever fetched while the endpoint stayed down.
func TestPollTakesRetryingAndStuckQueuedPackages(t *testing.T) {
	sec := webhook.NewSecret()
	fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, Secret: sec, FailFirst: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	f := startGateway(t, channel.Webhook, config.Channel{Endpoint: fv.URL(), Secret: sec}, func(cfg *config.Config) {
		cfg.Delivery.BreakerThreshold = 1
		cfg.Delivery.BreakerCooldown = time.Hour
	})
	retrying := f.submit(t, example())
	f.waitState(t, retrying, submission.StateRetrying, 30*time.Second)
	queued := f.submit(t, example())
	if st := f.state(t, queued); st != submission.StateQueued {
		t.Fatalf("the second package is %s, want queued behind the open breaker", st)
	}
	if n, err := fv.Poll(t.Context(), f.g.URL()); err != nil || n != 1 || !fv.Processed()[retrying].Accepted {
		t.Fatalf("first round: %d finished, %v, %+v; want the retrying package decided", n, err, fv.Processed()[retrying])
	}
	if st := f.state(t, queued); st != submission.StateQueued {
		t.Fatalf("after the first round the queued package is %s, want it left queued for one round", st)
	}
	if n, err := fv.Poll(t.Context(), f.g.URL()); err != nil || n != 1 || !fv.Processed()[queued].Accepted {
		t.Fatalf("second round: %d finished, %v, %+v; want the queued package decided", n, err, fv.Processed()[queued])
	}
	for _, id := range []string{retrying, queued} {
		if st := f.state(t, id); st != submission.StateAccepted {
			t.Errorf("%s is %s, want accepted", id, st)
		}
		if n := deliveredEvents(t, f, id); n != 1 {
			t.Errorf("%s: %d delivered events, want 1", id, n)
		}
	}
}

// TestPollSweepsWhatADeadInstanceFetched: the office runs two instances of its
// system. Instance A fetches a package (the first fetch is the delivery, so it
// is no longer listed as waiting) and dies before it decides. Instance B was
// running already: it listed the delivered cases in its first round only, and
// the case sat undecided for good. Now a later round lists them again once
// SweepEvery has passed (and takes a case delivered at least that long ago).
// The sweep asks for the cases that await the office's decision and that its
// system took (awaiting=decision&deliveredVia=api,webhook), which the gateway
// answers from its index of them; it asked state=delivered, which read every
// case the office ever had.
func TestPollSweepsWhatADeadInstanceFetched(t *testing.T) {
	ctx := context.Background()
	f := startGateway(t, channel.API, config.Channel{})
	// B sweeps in every round; C, with the default spacing, not again so soon.
	lists := &listQueries{}
	b, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, SweepEvery: time.Nanosecond, Client: &http.Client{Transport: lists}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := fachverfahren.Start(fachverfahren.Options{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, fv := range []*fachverfahren.Office{b, c} {
		if _, err := fv.Poll(ctx, f.g.URL()); err != nil { // the first round, with nothing to take
			t.Fatal(err)
		}
	}
	id := f.submit(t, example())
	f.waitState(t, id, submission.StateHandedOver, 30*time.Second)
	req, _ := http.NewRequest(http.MethodGet, f.g.URL()+wire.OfficePackagePath(id), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req) // instance A's fetch; then it dies
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if st := f.state(t, id); resp.StatusCode != http.StatusOK || st != submission.StateDelivered {
		t.Fatalf("instance A's fetch: %d, %s", resp.StatusCode, st)
	}
	if n, err := c.Poll(ctx, f.g.URL()); err != nil || n != 0 || f.state(t, id) != submission.StateDelivered {
		t.Fatalf("C's second round, its sweep not due: %d %v %s, want nothing taken", n, err, f.state(t, id))
	}
	if n, err := b.Poll(ctx, f.g.URL()); err != nil || n != 1 || !b.Processed()[id].Accepted {
		t.Fatalf("B's second round: %d %v %+v, want the case decided", n, err, b.Processed()[id])
	}
	if st := f.state(t, id); st != submission.StateAccepted {
		t.Fatalf("after B's second round: %s, want accepted", st)
	}
	var sweeps int
	for _, q := range lists.all() {
		if q.Get("state") == string(wire.StateDelivered) {
			t.Errorf("B listed state=delivered (%s): every case of the office", q.Encode())
		}
		if q.Get("awaiting") == wire.AwaitingDecision {
			sweeps++
			if q.Get("deliveredVia") != "api,webhook" || q.Has("state") {
				t.Errorf("B's sweep asked %s, want awaiting=decision&deliveredVia=api,webhook", q.Encode())
			}
		}
	}
	if sweeps != 2 {
		t.Errorf("B's two rounds swept %d times by awaiting=decision, want 2", sweeps)
	}
}

// listQueries is a transport that records the query of every request of the
// office's list.
type listQueries struct {
	mu sync.Mutex
	qs []url.Values
}

func (l *listQueries) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && r.URL.Path == wire.OfficeSubmissionsPath {
		l.mu.Lock()
		l.qs = append(l.qs, r.URL.Query())
		l.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (l *listQueries) all() []url.Values {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.qs)
}
