package federation

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// TestReplyQueryValidatesAndRoundTrips: the Antwortabruf a forwarding gateway
// signs is valid by the XSD and reads back at the peer as sent.
func TestReplyQueryValidatesAndRoundTrips(t *testing.T) {
	w := newWorld(t)
	q := &ReplyQuery{From: w.a.Name, To: w.b.Name, At: time.Now().UTC(), Ref: Ref{"amt24", "m-1"}, ReplyID: "019b0000-0000-7000-8000-000000000001"}
	doc, err := q.Sign(w.a.Signer)
	if err != nil {
		t.Fatal(err)
	}
	xmllint(t, map[string][]byte{"antwortabruf": doc})
	v, peer, err := w.trustB.Verify(doc, "")
	if err != nil || peer.ID != w.a.Name {
		t.Fatalf("verify: %v %s", err, peer.ID)
	}
	back, err := ParseReplyQuery(v.Root)
	if err != nil {
		t.Fatal(err)
	}
	if back.From != q.From || back.To != q.To || back.Ref != q.Ref || back.ReplyID != q.ReplyID || !back.At.Equal(q.At) {
		t.Errorf("read back %+v, sent %+v", back, q)
	}
	if _, err := (&ReplyQuery{From: "a", To: "b", At: time.Now()}).Sign(w.a.Signer); !errors.Is(err, ErrMalformed) {
		t.Errorf("an Antwortabruf without a reply id: %v", err)
	}
}

// TestRepliesOnTheWireAreBounded: what a peer announces is read only within the
// bounds the store keeps (a record holds at most MaxReplies replies, a reply at
// most MaxReplyBytes): an answer beyond them, or with a digest that names no
// SHA-256, is refused as malformed, and so is a question's Antworten that is no
// count of replies.
func TestRepliesOnTheWireAreBounded(t *testing.T) {
	ns := `xmlns="` + Namespace + `" ID="_x" Version="1"`
	head := `<Von>a</Von><An>b</An><Zeitpunkt>2026-12-06T10:00:00Z</Zeitpunkt>`
	antwort := func(size, sum string) string {
		return `<Antwort><AntwortID>r</AntwortID><Art>Bescheid</Art><Groesse>` + size + `</Groesse><SHA256>` + sum +
			`</SHA256><Zeitpunkt>2026-12-06T10:00:00Z</Zeitpunkt></Antwort>`
	}
	report := func(antworten string) string {
		return `<Statusauskunft ` + ns + `>` + head + `<Vorgang><Absender>amt24</Absender><NachrichtID>m</NachrichtID><Zustand>accepted</Zustand>` +
			antworten + `</Vorgang></Statusauskunft>`
	}
	sum := strings.Repeat("ab", 32)
	root := func(s string) *etree.Element {
		d := etree.NewDocument()
		if err := d.ReadFromString(s); err != nil {
			t.Fatal(err)
		}
		return d.Root()
	}
	if rp, err := ParseReport(root(report(antwort("67108864", sum)))); err != nil || len(rp.Items[0].Replies) != 1 {
		t.Fatalf("a reply of MaxReplyBytes: %v (the control)", err)
	}
	named := func(doc, name string) string {
		return strings.Replace(doc, "<Antwort>", `<Antwort Dateiname="`+name+`">`, 1)
	}
	if rp, err := ParseReport(root(named(report(antwort("1", sum)), strings.Repeat("ä", 127)+"."))); err != nil || rp.Items[0].Replies[0].FileName != strings.Repeat("ä", 127)+"." {
		t.Fatalf("a file name of 255 bytes: %+v %v (the control)", rp, err)
	}
	for name, doc := range map[string]string{
		"too large":         report(antwort("67108865", sum)),
		"negative size":     report(antwort("-1", sum)),
		"upper-case digest": report(antwort("1", strings.ToUpper(sum))),
		"short digest":      report(antwort("1", sum[:62])),
		"too many":          report(strings.Repeat(antwort("1", sum), MaxReplies+1)),
		"no kind":           strings.Replace(report(antwort("1", sum)), "<Art>Bescheid</Art>", "", 1),
		// A file name as no face keeps it: with its path, empty, with a
		// control or format character, longer than a file name may be.
		"a file name with its path":    named(report(antwort("1", sum)), `C:\Users\x\Bescheid.pdf`),
		"an empty file name":           named(report(antwort("1", sum)), ""),
		"a file name with a tab":       named(report(antwort("1", sum)), "a&#9;b.pdf"),
		"a file name with a bidi mark": named(report(antwort("1", sum)), "Bescheid\u202efdp.exe"),
		"a file name too long":         named(report(antwort("1", sum)), strings.Repeat("a", 256)),
		"a file name of blanks":        named(report(antwort("1", sum)), "  "),
	} {
		if _, err := ParseReport(root(doc)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	question := func(attr string) string {
		return `<Statusabfrage ` + ns + `>` + head + `<Vorgang` + attr + `><Absender>amt24</Absender><NachrichtID>m</NachrichtID></Vorgang></Statusabfrage>`
	}
	// In all, an answer lists at most MaxAnswerReplies (as one is written).
	vorgang := func(i, n int) string {
		return `<Vorgang><Absender>amt24</Absender><NachrichtID>m-` + strconv.Itoa(i) + `</NachrichtID><Zustand>accepted</Zustand>` +
			strings.Repeat(antwort("1", sum), n) + `</Vorgang>`
	}
	many := func(total int) string {
		var b strings.Builder
		for i := 0; total > 0; i++ {
			b.WriteString(vorgang(i, min(total, MaxReplies)))
			total -= MaxReplies
		}
		return `<Statusauskunft ` + ns + `>` + head + b.String() + `</Statusauskunft>`
	}
	if _, err := ParseReport(root(many(MaxAnswerReplies))); err != nil {
		t.Fatalf("an answer of MaxAnswerReplies replies: %v (the control)", err)
	}
	if _, err := ParseReport(root(many(MaxAnswerReplies + 1))); !errors.Is(err, ErrMalformed) {
		t.Errorf("an answer of more than MaxAnswerReplies replies: %v, want ErrMalformed", err)
	}
	if q, err := ParseQuery(root(question(` Antworten="100"`))); err != nil || q.Replies[Ref{"amt24", "m"}] != 100 {
		t.Fatalf("Antworten=100: %+v %v (the control)", q, err)
	}
	if q, err := ParseQuery(root(question(""))); err != nil || q.Replies != nil {
		t.Fatalf("a question of a build before replies: %+v %v, want no replies asked", q, err)
	}
	for _, attr := range []string{` Antworten="101"`, ` Antworten="-1"`, ` Antworten="x"`, ` Antworten=""`} {
		if _, err := ParseQuery(root(question(attr))); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", attr, err)
		}
	}
}
