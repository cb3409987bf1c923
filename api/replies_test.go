package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/mailbox/mailboxclient"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/amtsbote/amtsbote/wire"
)

// replyBodyLimit is limits.max_body_bytes of the reply tests' gateway: room
// for the example package, and a reply over it costs little to send.
const replyBodyLimit = 64 << 10

// replyFixture is the takeover tests' gateway (pollingOffice polls by the api
// channel, mailOffice has only the mailbox) with a small body limit, the
// portal's client, and the office's calls checked against api/openapi.yaml.
type replyFixture struct {
	takeoverGateway
	pc *portal.Client
	t  *testing.T
}

func startReplyFixture(t *testing.T) *replyFixture {
	t.Helper()
	g := startTakeoverGateway(t, func(c *config.Config) { c.Limits.MaxBodyBytes = replyBodyLimit })
	// The package and the receipts are opaque strings to the contract.
	openapi3filter.RegisterBodyDecoder("application/xml", openapi3filter.FileBodyDecoder)
	return &replyFixture{takeoverGateway: g, pc: &portal.Client{BaseURL: g.g.URL(), Signer: g.pki.Portal.Signer, Token: portalToken}, t: t}
}

// answer is one answer of the gateway, read whole.
type answer struct {
	code   int
	body   []byte
	header http.Header
}

// problem is the answer's problem document (zero if it is none).
func (a answer) problem() problem.Problem {
	var p problem.Problem
	_ = json.Unmarshal(a.body, &p)
	return p
}

// field is the problem's member field ("" if none).
func (a answer) field() string {
	var p struct {
		Field string `json:"field"`
	}
	_ = json.Unmarshal(a.body, &p)
	return p.Field
}

// call sends a request with token and header and checks the answer (and, for
// one that is no refusal, the request) against the contract.
func (f *replyFixture) call(method, path, token string, header http.Header, body io.Reader) answer {
	f.t.Helper()
	return f.send(method, path, token, header, body, true)
}

// send is call; with declared false the body goes without its length
// (Transfer-Encoding: chunked), as a client that streams it sends it.
func (f *replyFixture) send(method, path, token string, header http.Header, body io.Reader, declared bool) answer {
	f.t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = io.ReadAll(body); err != nil {
			f.t.Fatal(err)
		}
	}
	var rb io.Reader
	switch {
	case body != nil && declared:
		rb = bytes.NewReader(raw)
	case body != nil:
		rb = io.MultiReader(bytes.NewReader(raw)) // a reader whose length NewRequest cannot know
	}
	req, _ := http.NewRequest(method, f.g.URL()+path, rb)
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	route, params, err := contractRouter(f.t).FindRoute(req)
	if err != nil {
		f.t.Fatalf("%s %s is not in the contract: %v", method, path, err)
	}
	req.Body = io.NopCloser(bytes.NewReader(raw))
	if resp.StatusCode < 400 {
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			f.t.Fatalf("%s %s: the request breaks the contract: %v", method, path, err)
		}
		req.Body = io.NopCloser(bytes.NewReader(raw))
	}
	if err := conforms(req, resp, b); err != nil {
		f.t.Fatalf("%s %s: %d breaks the contract: %v\n%.500s", method, path, resp.StatusCode, err, b)
	}
	return answer{code: resp.StatusCode, body: b, header: resp.Header}
}

// reply posts a reply of kind with the media type ctype ("": none) and the
// Idempotency-Key key ("": none) as the polling office's system.
func (f *replyFixture) reply(id, kind, ctype, key string, content []byte) answer {
	f.t.Helper()
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	if key != "" {
		h.Set(wire.HeaderIdempotencyKey, key)
	}
	return f.call(http.MethodPost, wire.OfficeReplyPostPath(id, kind), pollingToken, h, bytes.NewReader(content))
}

// delivered is a case of the polling office its system fetched (the delivery).
func (f *replyFixture) delivered() string {
	f.t.Helper()
	id := submitHandedOver(f.t, f.g, f.pc, pollingService)
	if a := f.call(http.MethodGet, wire.OfficePackagePath(id), pollingToken, nil, nil); a.code != http.StatusOK {
		f.t.Fatalf("the system's fetch: %d %s", a.code, a.body)
	}
	return id
}

// replies is what the case's record holds.
func (f *replyFixture) replies(id string) []submission.Reply {
	f.t.Helper()
	s, err := f.g.Broker.Submission(id)
	if err != nil {
		f.t.Fatal(err)
	}
	return s.Replies
}

// stored reports whether the gateway's blob store holds content.
func (f *replyFixture) stored(content []byte) bool {
	f.t.Helper()
	rc, err := f.g.Broker.Blobs().Open(context.Background(), digestOf(content))
	if err != nil {
		return false
	}
	rc.Close()
	return true
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// decodeReply is the reply an answer carries.
// replied posts a reply as reply does and wants it stored (201).
func (f *replyFixture) replied(id, kind, ctype, key string, content []byte) wire.Reply {
	f.t.Helper()
	a := f.reply(id, kind, ctype, key, content)
	if a.code != http.StatusCreated {
		f.t.Fatalf("the %s: %d %s", kind, a.code, a.body)
	}
	return decodeReply(f.t, a)
}

func decodeReply(t *testing.T, a answer) wire.Reply {
	t.Helper()
	var r wire.Reply
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("the answer is no reply: %v %s", err, a.body)
	}
	return r
}

// TestOfficeReplyReachesThePortal: an office whose Fachverfahren takes its
// cases by the office API (channel api, or after a webhook) fetches a case,
// accepts it and sends its Bescheid through the gateway; the portal sees it in
// the case's status and reads the very bytes at its link, and the office reads
// it back at its own. Only an office on XTA could send a reply before.
func TestOfficeReplyReachesThePortal(t *testing.T) {
	f := startReplyFixture(t)
	ctx := context.Background()
	id := f.delivered()
	if a := f.call(http.MethodPost, wire.OfficeDecisionPath(id, wire.OutcomeAccepted), pollingToken,
		http.Header{"Content-Type": {"application/json"}}, strings.NewReader(`{"reason":"Az. AB-2026-1"}`)); a.code != http.StatusOK {
		t.Fatalf("accept: %d %s", a.code, a.body)
	}
	bescheid := []byte("Bescheid zu Ihrer Anzeige\n\nIhre Anzeige ist vollständig und wird bearbeitet.\nAz. AB-2026-1\n")
	const key = "AB-2026-1/bescheid-1"
	a := f.reply(id, wire.ReplyBescheid, "text/plain; charset=utf-8", key, bescheid)
	if a.code != http.StatusCreated {
		t.Fatalf("the Bescheid: %d %s", a.code, a.body)
	}
	rep := decodeReply(t, a)
	if rep.Kind != wire.ReplyBescheid || rep.ContentType != "text/plain; charset=utf-8" || rep.Size != int64(len(bescheid)) ||
		rep.SHA256 != digestOf(bescheid) || rep.Channel != channel.API || rep.At.IsZero() || rep.Link != wire.OfficeReplyPath(id, rep.ID) {
		t.Errorf("the reply stored: %+v", rep)
	}
	if loc := a.header.Get("Location"); loc != rep.Link {
		t.Errorf("Location %q, want %q", loc, rep.Link)
	}

	// The portal: in the status, with its own link, and the same bytes there.
	st, err := f.pc.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Replies) != 1 || st.Replies[0].ID != rep.ID || st.Replies[0].Link != wire.ReplyPath(id, rep.ID) ||
		st.Replies[0].Kind != wire.ReplyBescheid || st.Replies[0].SHA256 != rep.SHA256 || st.Replies[0].Channel != channel.API {
		t.Fatalf("the portal's status lists %+v, want the reply %s with the portal's link", st.Replies, rep.ID)
	}
	replied := false
	for _, e := range st.Events {
		replied = replied || e.Type == submission.EventReplied && e.Channel == channel.API && strings.Contains(e.Detail, rep.ID)
	}
	if !replied {
		t.Errorf("the portal's events lack the reply: %s", eventSummary(st.Events))
	}
	if got, err := f.pc.Reply(ctx, id, rep.ID); err != nil || !bytes.Equal(got, bescheid) {
		t.Fatalf("the portal reads %q (%v), want the Bescheid as sent", got, err)
	}
	if a := f.call(http.MethodGet, st.Replies[0].Link, portalToken, nil, nil); a.header.Get("Content-Type") != rep.ContentType {
		t.Errorf("the portal gets it as %q, want %q", a.header.Get("Content-Type"), rep.ContentType)
	}

	// The office: its view lists it with its own link, where it reads it back.
	a = f.call(http.MethodGet, wire.OfficeSubmissionPath(id), pollingToken, nil, nil)
	var v wire.OfficeSubmission
	if err := json.Unmarshal(a.body, &v); err != nil || a.code != http.StatusOK {
		t.Fatalf("the office's view: %d %v", a.code, err)
	}
	if len(v.Replies) != 1 || v.Replies[0].Link != rep.Link || v.Links[wire.LinkReplies] != wire.OfficeRepliesPath(id) {
		t.Errorf("the office's view: replies %+v, links %v", v.Replies, v.Links)
	}
	a = f.call(http.MethodGet, rep.Link, pollingToken, nil, nil)
	if a.code != http.StatusOK || !bytes.Equal(a.body, bescheid) || a.header.Get("Content-Type") != rep.ContentType ||
		a.header.Get("Content-Length") != strconv.Itoa(len(bescheid)) {
		t.Errorf("the office reads back %d %q as %q", a.code, a.body, a.header.Get("Content-Type"))
	}
	if a := f.call(http.MethodGet, wire.OfficeReplyPath(id, "no-such-reply"), pollingToken, nil, nil); a.code != http.StatusNotFound {
		t.Errorf("a reply the case does not have: %d", a.code)
	}

	// The record: the office's key, and who sent it.
	if got := f.replies(id); len(got) != 1 || got[0].MessageID != key || got[0].Actor != "office "+pollingOffice+" (pull API)" {
		t.Errorf("the record holds %+v", got)
	}
}

// TestOfficeReplyRepeatIsStoredOnce: a system that lost the answer to its
// reply sends it again with the same Idempotency-Key and is told the reply
// stored the first time (200), and the case holds it once. The same key with
// other bytes or another kind is a conflict, refused before anything is
// stored: the desk takes a repeat by its key alone and would have kept the
// other bytes as a blob no record names.
func TestOfficeReplyRepeatIsStoredOnce(t *testing.T) {
	f := startReplyFixture(t)
	id := f.delivered()
	first := []byte("%PDF-1.4 Bescheid (Entwurf 1)")
	rep := f.replied(id, wire.ReplyBescheid, "application/pdf", "bescheid-1", first)

	a := f.reply(id, wire.ReplyBescheid, "application/pdf", "bescheid-1", first)
	if again := decodeReply(t, a); a.code != http.StatusOK || again != rep || a.header.Get(wire.HeaderDuplicate) != "true" || a.header.Get("Location") != rep.Link {
		t.Fatalf("the same Bescheid again: %d %s (%s %q), want 200 with %+v", a.code, a.body, wire.HeaderDuplicate, a.header.Get(wire.HeaderDuplicate), rep)
	}

	other := []byte("%PDF-1.4 Bescheid (Entwurf 2)")
	for _, tc := range []struct {
		name, kind, ctype string
		content           []byte
	}{
		{"other bytes", wire.ReplyBescheid, "application/pdf", other},
		{"another kind", wire.ReplyRueckfrage, "application/pdf", first},
		{"another media type", wire.ReplyBescheid, "application/octet-stream", first},
	} {
		a := f.reply(id, tc.kind, tc.ctype, "bescheid-1", tc.content)
		if p := a.problem(); a.code != http.StatusConflict || p.Type != problem.TypeConflict || !strings.Contains(p.Detail, "names another reply") || !strings.Contains(p.Detail, rep.ID) {
			t.Errorf("the key again with %s: %d %s, want 409 conflict naming %s", tc.name, a.code, a.body, rep.ID)
		}
	}
	if f.stored(other) {
		t.Error("the other bytes under the same key were stored")
	}
	if got := f.replies(id); len(got) != 1 || got[0].ID != rep.ID {
		t.Fatalf("the case holds %+v, want the one reply %s", got, rep.ID)
	}
	evs, err := f.g.Broker.Log(id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == submission.EventReplied {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d replied events, want 1", n)
	}

	// Another key is another reply, and so is each post without one.
	if a := f.reply(id, wire.ReplyBescheid, "application/pdf", "bescheid-2", other); a.code != http.StatusCreated {
		t.Errorf("a second Bescheid with its own key: %d %s", a.code, a.body)
	}
	for range 2 {
		if a := f.reply(id, wire.ReplyRueckfrage, "text/plain", "", []byte("Bitte reichen Sie den Lageplan nach.")); a.code != http.StatusCreated {
			t.Errorf("a Rückfrage without a key: %d %s", a.code, a.body)
		}
	}
	if got := f.replies(id); len(got) != 4 {
		t.Errorf("the case holds %d replies, want 4", len(got))
	}
}

// TestOfficeReplyKeepsItsFileName: a system names the reply's file as a
// download names it (Content-Disposition: attachment; filename=…, filename*
// for a name that is not ASCII); the gateway keeps the name's last element,
// lists it in both views (fileName) and serves the bytes under it, to the
// portal and back to the office. Before 2026-12-07 there was no way to name
// it, and the applicant saved the Bescheid under an id. The name is part of
// a repeat: the same key with another name is 409, with none stored.
func TestOfficeReplyKeepsItsFileName(t *testing.T) {
	f := startReplyFixture(t)
	ctx := context.Background()
	id := f.delivered()
	bescheid := []byte("%PDF-1.7 Bescheid")
	post := func(key, disposition string) answer {
		t.Helper()
		h := http.Header{"Content-Type": {"application/pdf"}, wire.HeaderIdempotencyKey: {key}}
		if disposition != "" {
			h.Set(wire.HeaderContentDisposition, disposition)
		}
		return f.call(http.MethodPost, wire.OfficeReplyPostPath(id, wire.ReplyBescheid), pollingToken, h, bytes.NewReader(bescheid))
	}
	const name = "Bescheid Müller.pdf"
	a := post("bescheid-1", `attachment; filename*=UTF-8''C%3A%5CUsers%5Cmax%5CBescheid%20M%C3%BCller.pdf`)
	if a.code != http.StatusCreated {
		t.Fatalf("the Bescheid: %d %s", a.code, a.body)
	}
	rep := decodeReply(t, a)
	if rep.FileName != name {
		t.Errorf("fileName %q, want %q (the last element of the path sent)", rep.FileName, name)
	}
	st, err := f.pc.Status(ctx, id)
	if err != nil || len(st.Replies) != 1 || st.Replies[0].FileName != name {
		t.Fatalf("the portal's status lists %+v (%v), want the reply named %q", st.Replies, err, name)
	}
	for _, get := range []struct{ who, link, token string }{
		{"the portal", st.Replies[0].Link, portalToken},
		{"the office", rep.Link, pollingToken},
	} {
		a := f.call(http.MethodGet, get.link, get.token, nil, nil)
		_, params, err := mime.ParseMediaType(a.header.Get(wire.HeaderContentDisposition))
		if a.code != http.StatusOK || err != nil || params["filename"] != name || !bytes.Equal(a.body, bescheid) {
			t.Errorf("%s reads %d with Content-Disposition %q (%v), want the bytes as %q", get.who, a.code, a.header.Get(wire.HeaderContentDisposition), err, name)
		}
	}
	// The same request again, the same name given plainly: a repeat.
	if a := post("bescheid-1", `attachment; filename="`+name+`"`); a.code != http.StatusOK {
		t.Errorf("the same name again: %d %s, want 200", a.code, a.body)
	}
	for _, d := range []string{`attachment; filename="Widerruf.pdf"`, ""} {
		if a := post("bescheid-1", d); a.code != http.StatusConflict {
			t.Errorf("the key again with Content-Disposition %q: %d %s, want 409", d, a.code, a.body)
		}
	}
	// A reply without a name is served without Content-Disposition.
	a = post("rueckfrage-1", "")
	if a.code != http.StatusCreated {
		t.Fatalf("a reply without a name: %d %s", a.code, a.body)
	}
	if r := decodeReply(t, a); r.FileName != "" || f.call(http.MethodGet, r.Link, pollingToken, nil, nil).header.Get(wire.HeaderContentDisposition) != "" {
		t.Errorf("a reply without a name: %+v, served with a Content-Disposition", r)
	}
	if got := f.replies(id); len(got) != 2 || got[0].FileName != name {
		t.Errorf("the case holds %+v", got)
	}
}

// TestPortalsFetchOfAReplyIsRecordedOnce: the office sees when the portal
// first read its Bescheid whole — fetchedAt on the reply in its view, and
// the event reply_fetched by "portal amt24" — the way the portal has a
// Zustellbestaetigung for the package. The office's own read back records
// nothing, and the portal's later reads write nothing.
func TestPortalsFetchOfAReplyIsRecordedOnce(t *testing.T) {
	f := startReplyFixture(t)
	ctx := context.Background()
	id := f.delivered()
	rep := f.replied(id, wire.ReplyBescheid, "application/pdf", "bescheid-1", []byte("%PDF-1.7 Bescheid"))
	fetched := func() (*time.Time, int) {
		t.Helper()
		a := f.call(http.MethodGet, wire.OfficeSubmissionPath(id), pollingToken, nil, nil)
		var v wire.OfficeSubmission
		if err := json.Unmarshal(a.body, &v); err != nil || len(v.Replies) != 1 {
			t.Fatalf("the office's view: %d %v %s", a.code, err, a.body)
		}
		n := 0
		for _, e := range v.Events {
			if e.Type == submission.EventReplyFetched {
				n++
				if e.Actor != "portal amt24" || !strings.Contains(e.Detail, rep.ID) {
					t.Errorf("event %+v, want the portal's read of %s", e, rep.ID)
				}
			}
		}
		return v.Replies[0].FetchedAt, n
	}
	if a := f.call(http.MethodGet, rep.Link, pollingToken, nil, nil); a.code != http.StatusOK {
		t.Fatalf("the office reads it back: %d", a.code)
	}
	if at, n := fetched(); at != nil || n != 0 {
		t.Fatalf("after the office's own read: fetchedAt %v, %d events", at, n)
	}
	before := time.Now().UTC().Add(-time.Second)
	if _, err := f.pc.Reply(ctx, id, rep.ID); err != nil {
		t.Fatal(err)
	}
	// Recorded once the handler's copy ended, which may come a moment after
	// the portal had the last byte.
	at, n := fetched()
	for deadline := time.Now().Add(5 * time.Second); at == nil && time.Now().Before(deadline); at, n = fetched() {
		time.Sleep(10 * time.Millisecond)
	}
	if at == nil || at.Before(before) || n != 1 {
		t.Fatalf("after the portal's read: fetchedAt %v, %d reply_fetched events, want one now", at, n)
	}
	first := *at
	for range 2 {
		if _, err := f.pc.Reply(ctx, id, rep.ID); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // as above: the last read's handler ends
	if at, n := fetched(); at == nil || !at.Equal(first) || n != 1 {
		t.Errorf("after more reads: fetchedAt %v (first %v), %d events, want the first read's alone", at, first, n)
	}
	// The portal sees it too, in its status.
	if st, err := f.pc.Status(ctx, id); err != nil || len(st.Replies) != 1 || st.Replies[0].FetchedAt == nil || !st.Replies[0].FetchedAt.Equal(first) {
		t.Errorf("the portal's status: %+v %v", st.Replies, err)
	}
}

// TestOfficeReplyRequestRefusals: what a reply's request must say — its kind,
// its media type, its bytes, within the body limit, the key's form — is
// refused as the contract says (422 naming the field, 415, 413), and nothing
// is stored.
func TestOfficeReplyRequestRefusals(t *testing.T) {
	f := startReplyFixture(t)
	id := f.delivered()
	content := []byte("Bescheid, abgelehnt")
	text := http.Header{"Content-Type": {"text/plain"}}
	with := func(k, v string) http.Header {
		h := text.Clone()
		h.Set(k, v)
		return h
	}
	big := bytes.Repeat([]byte("x"), replyBodyLimit+1)
	for _, tc := range []struct {
		name    string
		query   string
		header  http.Header
		body    []byte
		chunked bool // sent without its length
		status  int
		typ     string
		field   string
	}{
		{"no kind", "", text, content, false, 422, problem.TypeInvalidField, "kind"},
		{"an empty kind", "?kind=", text, content, false, 422, problem.TypeInvalidField, "kind"},
		{"a kind of blanks", "?kind=%20%20", text, content, false, 422, problem.TypeInvalidField, "kind"},
		{"kind twice", "?kind=Bescheid&kind=Rueckfrage", text, content, false, 422, problem.TypeInvalidField, "kind"},
		{"a kind too long", "?kind=" + strings.Repeat("ä", wire.MaxReplyKindLength+1), text, content, false, 422, problem.TypeInvalidField, "kind"},
		{"a kind with a control character", "?kind=Be%07scheid", text, content, false, 422, problem.TypeInvalidField, "kind"},
		{"a kind that is no UTF-8", "?kind=Bescheid%FF", text, content, false, 422, problem.TypeInvalidField, "kind"},
		{"no Content-Type", "?kind=Bescheid", nil, content, false, 415, problem.TypeUnsupportedMedia, ""},
		{"a Content-Type that is none", "?kind=Bescheid", http.Header{"Content-Type": {"pdf"}}, content, false, 415, problem.TypeUnsupportedMedia, ""},
		{"a wildcard media type", "?kind=Bescheid", http.Header{"Content-Type": {"*/*"}}, content, false, 415, problem.TypeUnsupportedMedia, ""},
		{"a wildcard subtype", "?kind=Bescheid", http.Header{"Content-Type": {"application/*"}}, content, false, 415, problem.TypeUnsupportedMedia, ""},
		{"gzip", "?kind=Bescheid", with("Content-Encoding", "gzip"), content, false, 415, problem.TypeUnsupportedMedia, ""},
		{"a form (curl -d)", "?kind=Bescheid", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, content, false, 415, problem.TypeUnsupportedMedia, ""},
		{"an Idempotency-Key too long", "?kind=Bescheid", with(wire.HeaderIdempotencyKey, strings.Repeat("k", wire.MaxIdempotencyKeyLength+1)), content, false, 422, problem.TypeInvalidField, wire.HeaderIdempotencyKey},
		{"an Idempotency-Key that is not ASCII", "?kind=Bescheid", with(wire.HeaderIdempotencyKey, "bescheid-\xe4"), content, false, 422, problem.TypeInvalidField, wire.HeaderIdempotencyKey},
		{"a Content-Disposition without a filename", "?kind=Bescheid", with(wire.HeaderContentDisposition, "attachment"), content, false, 422, problem.TypeInvalidField, wire.HeaderContentDisposition},
		{"a Content-Disposition that does not parse", "?kind=Bescheid", with(wire.HeaderContentDisposition, `attachment; filename="a.pdf`), content, false, 422, problem.TypeInvalidField, wire.HeaderContentDisposition},
		{"a file name that is a path only", "?kind=Bescheid", with(wire.HeaderContentDisposition, `attachment; filename=".."`), content, false, 422, problem.TypeInvalidField, wire.HeaderContentDisposition},
		{"a file name with a bidi override", "?kind=Bescheid", with(wire.HeaderContentDisposition, `attachment; filename*=UTF-8''Bescheid%E2%80%AEfdp.exe`), content, false, 422, problem.TypeInvalidField, wire.HeaderContentDisposition},
		{"a file name with a line break", "?kind=Bescheid", with(wire.HeaderContentDisposition, `attachment; filename*=UTF-8''a%0D%0Ab.pdf`), content, false, 422, problem.TypeInvalidField, wire.HeaderContentDisposition},
		{"a file name too long", "?kind=Bescheid", with(wire.HeaderContentDisposition, `attachment; filename="`+strings.Repeat("a", submission.MaxFileNameBytes)+`.pdf"`), content, false, 422, problem.TypeInvalidField, wire.HeaderContentDisposition},
		{"Content-Disposition twice", "?kind=Bescheid", http.Header{"Content-Type": {"text/plain"}, wire.HeaderContentDisposition: {`attachment; filename="a.pdf"`, `attachment; filename="b.pdf"`}}, content, false, 422, problem.TypeInvalidField, wire.HeaderContentDisposition},
		{"an empty body", "?kind=Bescheid", text, []byte{}, false, 422, problem.TypeInvalidField, "body"},
		{"a body over the limit", "?kind=Bescheid", text, big, false, 413, problem.TypeTooLarge, ""},
		{"a body over the limit, its length not declared", "?kind=Bescheid", text, big, true, 413, problem.TypeTooLarge, ""},
	} {
		a := f.send(http.MethodPost, wire.OfficeRepliesPath(id)+tc.query, pollingToken, tc.header, bytes.NewReader(tc.body), !tc.chunked)
		if p := a.problem(); a.code != tc.status || p.Type != tc.typ || a.field() != tc.field {
			t.Errorf("%s: %d %s, want %d %s (field %q)", tc.name, a.code, a.body, tc.status, tc.typ, tc.field)
		}
		if tc.name == "gzip" && a.header.Get("Accept-Encoding") != "identity" {
			t.Errorf("gzip: Accept-Encoding %q, want identity", a.header.Get("Accept-Encoding"))
		}
	}
	if a := f.call(http.MethodPost, wire.OfficeReplyPostPath(id, wire.ReplyBescheid), "", text, bytes.NewReader(content)); a.code != http.StatusUnauthorized {
		t.Errorf("without the office's token: %d %s", a.code, a.body)
	}
	if got := f.replies(id); len(got) != 0 || f.stored(content) {
		t.Errorf("refused replies left %+v in the record, bytes stored: %v", got, f.stored(content))
	}
}

// TestOfficeReplyOnlyToACaseTheOfficeAnswers: the desk's rules on a reply hold
// on the office API as on XTA, each refused as the contract says and with
// nothing stored: a case the office does not have yet (it fetches the
// package first), another office's case (as if it did not exist), one a clerk
// took over in the web mailbox (the clerk answers the applicant), one
// forwarded to another state's gateway (its office answers there), one whose
// bytes were erased (nobody could read the reply).
func TestOfficeReplyOnlyToACaseTheOfficeAnswers(t *testing.T) {
	f := startReplyFixture(t)
	ctx := context.Background()
	content := func(what string) []byte { return []byte("Bescheid " + what) }
	refused := func(what, id, token string, status int, typ string) {
		t.Helper()
		h := http.Header{"Content-Type": {"text/plain"}, wire.HeaderIdempotencyKey: {"refused-" + what}}
		a := f.call(http.MethodPost, wire.OfficeReplyPostPath(id, wire.ReplyBescheid), token, h, bytes.NewReader(content(what)))
		if p := a.problem(); a.code != status || p.Type != typ {
			t.Errorf("a reply to %s: %d %s, want %d %s", what, a.code, a.body, status, typ)
		}
		if strings.Contains(string(a.body), "paula") {
			t.Errorf("a reply to %s: the refusal names the clerk: %s", what, a.body)
		}
		if f.stored(content(what)) {
			t.Errorf("a reply to %s was refused and its bytes stored", what)
		}
		if got := f.replies(id); len(got) != 0 {
			t.Errorf("a reply to %s: the case holds %+v", what, got)
		}
	}

	waiting := submitHandedOver(t, f.g, f.pc, pollingService)
	refused("a case not delivered yet", waiting, pollingToken, http.StatusConflict, problem.TypeConflict)

	own := f.delivered()
	refused("another office's case", own, mailToken, http.StatusNotFound, problem.TypeNotFound)

	taken := submitHandedOver(t, f.g, f.pc, pollingService)
	clerk := mailboxclient.New(f.g.URL() + gateway.MailboxPath + "/")
	if _, err := clerk.Login(ctx, "paula", "pw"); err != nil {
		t.Fatal(err)
	}
	if page, err := clerk.TakeOver(ctx, taken); err != nil || !strings.Contains(page, "übernommen") {
		t.Fatalf("the takeover: %v", err)
	}
	refused("a case a clerk took over", taken, pollingToken, http.StatusConflict, problem.TypeTakenOver)
	// The clerk's own Bescheid to it (the mailbox's reply form goes to the desk
	// so): the system may not read it back, as it may not read the package.
	ts, err := f.g.Broker.Submission(taken)
	if err != nil {
		t.Fatal(err)
	}
	clerks, err := f.g.Broker.Reply(ctx, ts.OfficeID, taken, broker.ReplyIn{Kind: wire.ReplyBescheid, MessageID: "postfach:1",
		ContentType: "application/pdf", Content: content("of the clerk"), Actor: "paula", Channel: channel.Mailbox})
	if err != nil {
		t.Fatal(err)
	}
	if a := f.call(http.MethodGet, wire.OfficeReplyPath(taken, clerks.ID), pollingToken, nil, nil); a.code != http.StatusConflict || a.problem().Type != problem.TypeTakenOver {
		t.Errorf("the system reads the clerk's Bescheid to a case taken over: %d %s, want 409 %s", a.code, a.body, problem.TypeTakenOver)
	}

	forwarded := submitHandedOver(t, f.g, f.pc, pollingService)
	if _, err := f.g.Broker.RecordForwarded(forwarded, submission.Forward{Peer: "amtsbote-by", PeerSubmissionID: "by-1"}, []byte("<Eingangsbestaetigung/>")); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	if _, err := f.g.Broker.RecordPeerStatus(forwarded, submission.PeerStatus{Peer: "amtsbote-by", State: submission.StateDelivered, Receiver: "office by-1", DeliveredAt: &at}); err != nil {
		t.Fatal(err)
	}
	refused("a case forwarded to another state's gateway", forwarded, pollingToken, http.StatusConflict, problem.TypeConflict)

	// An erased case takes none, and the one it held is gone for the office
	// as for the portal (a repeat of it still names it, as the desk's).
	erased := f.delivered()
	a := f.reply(erased, wire.ReplyBescheid, "text/plain", "before-the-erasure", content("before the erasure"))
	if a.code != http.StatusCreated {
		t.Fatalf("the reply before the erasure: %d %s", a.code, a.body)
	}
	before := decodeReply(t, a)
	if _, err := f.g.Broker.Erase(ctx, erased, "operator (test)", "Antrag der Betroffenen"); err != nil {
		t.Fatal(err)
	}
	a = f.reply(erased, wire.ReplyBescheid, "text/plain", "after-the-erasure", content("after the erasure"))
	if p := a.problem(); a.code != http.StatusGone || p.Type != problem.TypeBytesRemoved {
		t.Errorf("a reply to an erased case: %d %s, want 410 %s", a.code, a.body, problem.TypeBytesRemoved)
	}
	if f.stored(content("after the erasure")) || len(f.replies(erased)) != 1 {
		t.Errorf("a reply to an erased case was stored: %+v", f.replies(erased))
	}
	if a := f.call(http.MethodGet, before.Link, pollingToken, nil, nil); a.code != http.StatusGone || a.problem().Type != problem.TypeBytesRemoved {
		t.Errorf("the office reads back a reply of an erased case: %d %s, want 410", a.code, a.body)
	}
	if a := f.call(http.MethodGet, before.Link, mailToken, nil, nil); a.code != http.StatusNotFound {
		t.Errorf("another office reads a reply of the case: %d %s, want 404", a.code, a.body)
	}
}

func eventSummary(evs []wire.Event) string {
	names := make([]string, len(evs))
	for i, e := range evs {
		names[i] = e.Type + "/" + e.Channel
	}
	return strings.Join(names, " → ")
}

// TestAnswerBeforeTheOfficeHasTheCaseSaysSo: a reply (Bescheid, Rückfrage) the
// office's system sends for a case it has not fetched yet is 409 conflict, as
// the contract says, and its detail tells the integrator what to do. (A
// decision is the pickup too, and taken.) It said "conflict: illegal state transition: a reply to a submission the
// office does not have yet (handed_over)": the gateway's inner words, which name
// neither the cause in the office's terms nor the way out.
func TestAnswerBeforeTheOfficeHasTheCaseSaysSo(t *testing.T) {
	f := startReplyFixture(t)
	waiting := submitHandedOver(t, f.g, f.pc, pollingService)
	check := func(what string, a answer) {
		t.Helper()
		p := a.problem()
		t.Logf("%s: %s", what, p.Detail)
		if a.code != http.StatusConflict || p.Type != problem.TypeConflict {
			t.Fatalf("%s before the office has the case: %d %s, want 409 %s", what, a.code, a.body, problem.TypeConflict)
		}
		for _, inner := range []string{"illegal", "transition", "handed_over", "conflict:"} {
			if strings.Contains(p.Detail, inner) {
				t.Errorf("%s: the detail speaks the gateway's inner words (%q): %q", what, inner, p.Detail)
			}
		}
		if !strings.Contains(p.Detail, "does not have this case yet") || !strings.Contains(p.Detail, "fetch") {
			t.Errorf("%s: the detail %q does not say the office lacks the case and how to get it", what, p.Detail)
		}
	}
	h := http.Header{"Content-Type": {"text/plain"}, wire.HeaderIdempotencyKey: {"early"}}
	check("a reply", f.call(http.MethodPost, wire.OfficeReplyPostPath(waiting, wire.ReplyRueckfrage), pollingToken, h, strings.NewReader("Rückfrage")))
	if got := f.replies(waiting); len(got) != 0 {
		t.Errorf("the early reply was recorded: %+v", got)
	}
	// Once its system fetched the package, the same reply is taken.
	if a := f.call(http.MethodGet, wire.OfficePackagePath(waiting), pollingToken, nil, nil); a.code != http.StatusOK {
		t.Fatalf("the system's fetch: %d %s", a.code, a.body)
	}
	if a := f.call(http.MethodPost, wire.OfficeReplyPostPath(waiting, wire.ReplyRueckfrage), pollingToken, h, strings.NewReader("Rückfrage")); a.code != http.StatusCreated {
		t.Errorf("the reply after the fetch: %d %s", a.code, a.body)
	}
}

// TestPortalsHeadOfAReplyIsNoFetch: a HEAD (a download tool asking the size
// first) sends no byte of the Bescheid, and was recorded as the portal's read
// of it — fetchedAt and reply_fetched told the office that its Bescheid had
// left towards the applicant when it had not. The HEAD answers what the GET
// would, without the bytes.
func TestPortalsHeadOfAReplyIsNoFetch(t *testing.T) {
	f := startReplyFixture(t)
	id := f.delivered()
	content := []byte("%PDF-1.7 Bescheid")
	rep := f.replied(id, wire.ReplyBescheid, "application/pdf", "bescheid-1", content)
	req, _ := http.NewRequest(http.MethodHead, f.g.URL()+wire.ReplyPath(id, rep.ID), nil)
	req.Header.Set("Authorization", "Bearer "+portalToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pdf" ||
		resp.Header.Get("Content-Length") != strconv.Itoa(len(content)) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("HEAD: %d %v, want the GET's header fields", resp.StatusCode, resp.Header)
	}
	// A reply this small is answered when its handler has ended: what it
	// recorded is in the record now.
	for _, r := range f.replies(id) {
		if r.FetchedAt != nil {
			t.Fatalf("after the portal's HEAD the reply counts as fetched at %v", r.FetchedAt)
		}
	}
	if got, err := f.pc.Reply(context.Background(), id, rep.ID); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("the portal's GET: %q %v", got, err)
	}
}
