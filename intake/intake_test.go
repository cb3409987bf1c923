package intake

import (
	"fmt"
	"testing"

	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/submission"
)

type usable map[string]bool

func (u usable) Usable(office, channel string) bool { return u[office+"/"+channel] }

// TestTargetsFollowTheDirectoryLimitedToUsableChannels: the plan keeps the
// directory's order of preference and only channels the gateway can deliver on; no
// address from the directory is stored (the gateway's configuration supplies it at
// each attempt).
func TestTargetsFollowTheDirectoryLimitedToUsableChannels(t *testing.T) {
	route := &routing.Route{Channels: []routing.Channel{
		{Kind: "xta", Level: 4, Endpoint: "https://xta.example/from-directory"},
		{Kind: "webhook", Level: 3, Endpoint: "https://fv.example/from-directory"},
		{Kind: "mailbox", Level: 1, Endpoint: "postfach"},
	}}
	tests := []struct {
		name   string
		usable usable
		want   string
	}{
		{"nothing usable", usable{}, "[]"},
		{"webhook only", usable{"o/webhook": true}, "[{webhook}]"},
		{"another office's channel does not count", usable{"p/webhook": true}, "[]"},
		{"order follows the directory", usable{"o/mailbox": true, "o/webhook": true}, "[{webhook} {mailbox}]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pipeline{Channels: tc.usable}
			if got := fmt.Sprint(p.targets("o", route)); got != tc.want {
				t.Fatalf("targets %s, want %s", got, tc.want)
			}
		})
	}
}

// TestSameApplicationOfAnOlderRecord: a record written before the content digest
// was kept answers every repeat as its build did (200 with the first receipt): a
// retry signed anew has other bytes, and a 409 would have the portal send the
// application again under a new NachrichtID (a review, 2026-12-05). A record with
// the digest is compared by it alone.
func TestSameApplicationOfAnOlderRecord(t *testing.T) {
	old := &submission.Submission{PackageSHA256: "bytes of the first"}
	if !sameApplication(old, "SHA-256:aa") {
		t.Fatal("a repeat of an older record is refused")
	}
	interim := &submission.Submission{PackageSHA256: "bytes of the first", ContentDigest: "SHA-256:aa"}
	if !sameApplication(interim, applicationDigestPrefix+"bb") {
		t.Fatal("a repeat of a record with the afternoon's signature digest is refused (a review: the same bytes got 409)")
	}
	now := &submission.Submission{PackageSHA256: "other bytes", ContentDigest: applicationDigestPrefix + "aa"}
	if !sameApplication(now, applicationDigestPrefix+"aa") || sameApplication(now, applicationDigestPrefix+"bb") {
		t.Fatal("a record with an application digest is not compared by it")
	}
}

// TestApplicationDigestLeavesOutWhatARetryMakesAnew: the root's ID, NachrichtID,
// Erstellt and Absender are left out, with or without a namespace prefix; the
// service and everything after it count.
func TestApplicationDigestLeavesOutWhatARetryMakesAnew(t *testing.T) {
	doc := func(id, erstellt, fach string) []byte {
		return []byte(`<p:Antragspaket xmlns:p="urn:amtsbote:antragspaket:1" ID="` + id + `"><p:Kopf><p:NachrichtID>m1</p:NachrichtID><p:Erstellt>` + erstellt +
			`</p:Erstellt><p:Absender>amt24</p:Absender><p:Leistung><p:Schluessel>99</p:Schluessel></p:Leistung></p:Kopf><p:Fachdaten>` + fach + `</p:Fachdaten></p:Antragspaket>`)
	}
	first := ApplicationDigest(doc("paket-1", "2026-12-05T10:00:00Z", "Laterne defekt"))
	if first == "" || ApplicationDigest(doc("paket-2", "2026-12-05T10:03:00Z", "Laterne defekt")) != first {
		t.Fatal("a package built anew (ID, Erstellt) is another application")
	}
	if ApplicationDigest(doc("paket-1", "2026-12-05T10:00:00Z", "Papierkorb voll")) == first {
		t.Fatal("other Fachdaten are the same application")
	}
	if ApplicationDigest([]byte("<Antragspaket></Antragspaket>")) != "" {
		t.Fatal("a document without Leistung has a digest")
	}
	// Found by structure (a review, 2026-12-05): a namespace declaration on
	// Leistung, or a URI holding "Leistung>" in the root's start tag, made a byte
	// search start at the end tag (the service left out) or in the root.
	withService := func(root, leistung, key, erstellt string) string {
		return ApplicationDigest([]byte(`<p:Antragspaket xmlns:p="urn:amtsbote:antragspaket:1"` + root + ` ID="x"><p:Kopf><p:NachrichtID>m1</p:NachrichtID><p:Erstellt>` + erstellt +
			`</p:Erstellt><p:Absender>amt24</p:Absender><p:Leistung` + leistung + `><p:Schluessel>` + key + `</p:Schluessel></p:Leistung></p:Kopf><p:Fachdaten>f</p:Fachdaten></p:Antragspaket>`))
	}
	decl := ` xmlns:x="urn:portal:x"`
	if withService("", decl, "99050012104000", "t1") == withService("", decl, "99102013104000", "t1") {
		t.Fatal("with a declaration on Leistung, another service is the same application")
	}
	uri := ` xmlns:z="urn:x-portal:Leistung>v2"`
	if withService(uri, "", "99050012104000", "t1") != withService(uri, "", "99050012104000", "t2") {
		t.Fatal("with a URI holding Leistung> on the root, a package built anew is another application")
	}
	if got := ApplicationDigest([]byte(`<A><Kopf><XLeistung>1</XLeistung><Leistung>2</Leistung></Kopf></A>`)); got != ApplicationDigest([]byte(`<A><Kopf><XLeistung>9</XLeistung><Leistung>2</Leistung></Kopf></A>`)) {
		t.Fatal("an element whose name ends in Leistung was taken for Leistung")
	}
}

// TestKopfKeysReadsOnlyTheKopf: the lookup key of a retry whose signer is
// refused now (acceptedBefore) is read from the root's first child, Kopf, with
// or without a prefix; a NachrichtID elsewhere, or a document whose first child
// is no Kopf, names no record.
func TestKopfKeysReadsOnlyTheKopf(t *testing.T) {
	for _, tc := range []struct{ doc, sender, id string }{
		{`<p:A xmlns:p="urn:x"><p:Kopf><p:NachrichtID> m1 </p:NachrichtID><p:Absender>amt24</p:Absender></p:Kopf><p:F/></p:A>`, "amt24", "m1"},
		{`<A><Kopf><X><NachrichtID>m2</NachrichtID></X><Absender>a&amp;b</Absender></Kopf></A>`, "a&b", ""},
		{`<A><Fachdaten><NachrichtID>m3</NachrichtID></Fachdaten><Kopf><NachrichtID>m1</NachrichtID></Kopf></A>`, "", ""},
		{`<A><Kopf><NachrichtID>m1</NachrichtID>`, "", ""},
	} {
		if s, id := kopfKeys([]byte(tc.doc)); s != tc.sender || id != tc.id {
			t.Errorf("kopfKeys(%s) = %q, %q; want %q, %q", tc.doc, s, id, tc.sender, tc.id)
		}
	}
}
