package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/fsnotify/fsnotify"
)

func newAdapter(t testing.TB) *Adapter {
	t.Helper()
	a, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func officeFolder(t testing.TB) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "office")
	mustMkdir(t, d)
	prepareOffice(t, d)
	return d
}

type att struct {
	name string
	body []byte
}

// realDelivery carries a real Antragspaket (the Amt24 example, applicant Iris Hübner)
// with fixed ids, so a child process builds the very same delivery.
func realDelivery(dir, id, sub string, atts ...att) adapters.Delivery {
	p := paket.ExampleWith("99000000000000", "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f", time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC))
	pkg := p.Marshal()
	d := adapters.Delivery{
		ID: id, SubmissionID: sub, MessageID: p.Kopf.NachrichtID, Sender: "amt24",
		LeikaKey: "99000000000000", ServiceName: paket.ExampleServiceName,
		OfficeID: "sn-14612000-ordnungsamt", OfficeName: "Ordnungsamt Dresden",
		Target: adapters.Target{Channel: Channel, Endpoint: dir}, Attempt: 1,
		CreatedAt:     time.Date(2026, 11, 28, 23, 30, 0, 0, time.UTC), // 29.11. in Germany
		PackageSHA256: sha(pkg), PackageSize: int64(len(pkg)), Package: adaptertest.Opener(pkg),
	}
	if atts == nil {
		atts = []att{{"Lageplan.pdf", []byte("%PDF-1.4 lageplan")}, {"Foto Papierkorb.jpg", []byte("jpeg bytes")}}
	}
	for i, a := range atts {
		d.Attachments = append(d.Attachments, adapters.Attachment{
			ID: fmt.Sprintf("anlage-%d", i+1), FileName: a.name, MimeType: "application/octet-stream",
			Size: int64(len(a.body)), SHA256: sha(a.body), Open: adaptertest.Opener(a.body)})
	}
	return d
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// cases lists the case folders (not temporary folders, not the ledger) of dir.
func cases(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func temps(t testing.TB, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// checkCase decodes the case folder from disk and compares it with d.
func checkCase(t *testing.T, dir, name string, d adapters.Delivery) {
	t.Helper()
	g, _ := decodeCase(filepath.Join(dir, name))
	if g.Problem != "" {
		t.Fatalf("case %s: %s", name, g.Problem)
	}
	if g.DeliveryID != d.ID || g.SubmissionID != d.SubmissionID {
		t.Errorf("case %s: ids %s/%s", name, g.DeliveryID, g.SubmissionID)
	}
	want, _ := adaptertest.ReadAll(context.Background(), d.Package)
	if !bytes.Equal(g.Package, want) {
		t.Errorf("case %s: package differs", name)
	}
	for _, a := range d.Attachments {
		b, _ := adaptertest.ReadAll(context.Background(), a.Open)
		if !bytes.Equal(g.Attachments[a.ID], b) {
			t.Errorf("case %s: attachment %s differs", name, a.ID)
		}
	}
}

func TestCaseFolderContents(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-1", "4c1f0e52-0000-4000-8000-000000000001")
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	wantName := "20261129-4c1f0e52-0000-4000-8000-000000000001"
	if !c.Pending || c.Reference != wantName || c.Receiver != "transfer folder "+dir || c.At.IsZero() {
		t.Errorf("confirmation %+v", c)
	}
	if got := cases(t, dir); len(got) != 1 || got[0] != wantName {
		t.Fatalf("cases %v", got)
	}
	checkCase(t, dir, wantName, d)
	var ix Index
	b, _ := os.ReadFile(filepath.Join(dir, wantName, IndexJSONFile))
	if err := json.Unmarshal(b, &ix); err != nil {
		t.Fatal(err)
	}
	if ix.Office.ID != d.OfficeID || ix.Service.LeikaKey != d.LeikaKey || ix.Sender != "amt24" ||
		ix.Place != "Dresden" || !ix.ReceivedAt.Equal(d.CreatedAt) || ix.MessageID != d.MessageID {
		t.Errorf("index %+v", ix)
	}
	// The summary is a real PDF with the applicant in it, umlauts included.
	text := pdftotext(t, filepath.Join(dir, wantName, SummaryFile))
	for _, w := range []string{"Hübner", "Mängeln", "Priorität", paket.ExampleComplaint, "maengelanzeige-v1.0-"} {
		if !strings.Contains(text, w) {
			t.Errorf("summary lacks %q:\n%s", w, text)
		}
	}
	if len(temps(t, dir)) != 0 {
		t.Errorf("temporary folders left: %v", temps(t, dir))
	}
}

func pdftotext(t *testing.T, p string) string {
	t.Helper()
	out, err := exec.Command("pdftotext", "-enc", "UTF-8", p, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext (Debian: poppler-utils) is required: %v\n%s", err, out)
	}
	return string(out)
}

func TestImportConfirms(t *testing.T) {
	for _, by := range []string{"move", "delete", "marker"} {
		t.Run(by, func(t *testing.T) {
			dir := officeFolder(t)
			now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
			a, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			r := &folderReceiver{dir: dir, importDir: filepath.Join(t.TempDir(), "imported"), importBy: by, seen: map[string]*seenCase{}}
			mustMkdir(t, r.importDir)
			d := realDelivery(dir, "dlv-"+by, "4c1f0e52-0000-4000-8000-00000000000"+fmt.Sprint(len(by)))
			handed := handOverQuietly(t, a, d)
			now = now.Add(time.Hour)
			r.Confirm(t, d.ID)
			if by == "marker" { // written between the hand-over and now, by this test's clock
				mt := now.Add(-20 * time.Minute)
				if err := os.Chtimes(filepath.Join(dir, handed.Reference+MarkerSuffix), mt, mt); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-a.Changes():
			case <-time.After(10 * time.Second):
				t.Error("no change signalled within 10s for an import on a local folder")
			}
			c, ok, err := a.Confirmed(t.Context(), d)
			if err != nil || !ok {
				t.Fatalf("not confirmed after the import: %v %v", ok, err)
			}
			if c.Receiver != "import of "+dir || c.Reference == "" || c.Pending {
				t.Errorf("confirmation %+v", c)
			}
			if by == "marker" {
				mi, err := os.Stat(filepath.Join(dir, c.Reference+MarkerSuffix))
				if err != nil || !c.At.Equal(mi.ModTime()) {
					t.Errorf("At %v, want the marker's mtime (%v)", c.At, err)
				}
			} else if !c.At.Equal(now) {
				t.Errorf("At %v, want the time of noticing %v", c.At, now)
			}
			// Asked again later, the answer names the same time.
			now = now.Add(time.Hour)
			if c2, ok, _ := a.Confirmed(t.Context(), d); !ok || !c2.At.Equal(c.At) {
				t.Errorf("second answer %+v %v, first %+v", c2, ok, c)
			}
			// A repeated Deliver after the import creates no second case.
			d.Attempt = 2
			c3, err := a.Deliver(t.Context(), d)
			if err != nil || c3.Reference != c.Reference {
				t.Fatalf("repeat after import: %+v %v", c3, err)
			}
			want := 0
			if by == "marker" {
				want = 1
			}
			if n := len(cases(t, dir)); n != want {
				t.Errorf("%d case folders after a repeated delivery, want %d", n, want)
			}
		})
	}
}

// TestMarkerTimeClamped: the marker's modification time is the office's (an SMB
// server with a wrong clock, a copy tool keeping times) and goes into the signed
// Zustellbestaetigung. A marker dated before the hand-over or after the moment the
// gateway noticed it must not make the receipt say so: the time is bounded to the
// hand-over and now, a warning names the case folder, and every later answer names
// the same time.
func TestMarkerTimeClamped(t *testing.T) {
	handover := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		marker time.Time
		want   time.Time // relative to handover, noticed one hour later
		warn   bool
	}{
		{"1970", time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC), handover, true},
		{"2031", time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC), handover.Add(time.Hour), true},
		{"in between", handover.Add(10 * time.Minute), handover.Add(10 * time.Minute), false},
		{"a coarse clock's second early", handover.Add(-time.Second), handover, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := officeFolder(t)
			now := handover
			var logs bytes.Buffer
			a, err := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return now }, NoWatch: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			d := realDelivery(dir, "dlv-marker", "4c1f0e52-0000-4000-8000-000000000030")
			c, err := a.Deliver(t.Context(), d)
			if err != nil {
				t.Fatal(err)
			}
			marker := filepath.Join(dir, c.Reference+MarkerSuffix)
			if err := os.WriteFile(marker, nil, 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(marker, tc.marker, tc.marker); err != nil {
				t.Fatal(err)
			}
			now = handover.Add(time.Hour)
			got, ok, err := a.Confirmed(t.Context(), d)
			if err != nil || !ok {
				t.Fatalf("not confirmed: %v %v", ok, err)
			}
			if !got.At.Equal(tc.want) {
				t.Errorf("At %v for a marker dated %v, want %v", got.At, tc.marker, tc.want)
			}
			warned := strings.Contains(logs.String(), "level=WARN")
			if warned != tc.warn {
				t.Errorf("warning logged: %v, want %v:\n%s", warned, tc.warn, logs.String())
			}
			if warned && !strings.Contains(logs.String(), "case="+c.Reference) {
				t.Errorf("the warning does not name the case folder:\n%s", logs.String())
			}
			for _, at := range d.Attachments {
				if strings.Contains(logs.String(), at.FileName) {
					t.Errorf("log carries the attachment name %q", at.FileName)
				}
			}
			// Later answers name the same time, even after the marker is touched again.
			now = now.Add(time.Hour)
			later := now.Add(time.Minute)
			if err := os.Chtimes(marker, later, later); err != nil {
				t.Fatal(err)
			}
			if c2, ok, _ := a.Confirmed(t.Context(), d); !ok || !c2.At.Equal(got.At) {
				t.Errorf("second answer %v %v, first %v", c2.At, ok, got.At)
			}
		})
	}
}

func TestRepeatedDeliverOneCase(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-rep", "4c1f0e52-0000-4000-8000-00000000000a")
	var ref string
	for i := 1; i <= 3; i++ {
		d.Attempt = i
		c, err := a.Deliver(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		if ref == "" {
			ref = c.Reference
		} else if c.Reference != ref {
			t.Errorf("attempt %d: reference %q, want %q", i, c.Reference, ref)
		}
	}
	// A fresh adapter (a restarted gateway) knows it too: the ledger is on disk.
	if _, err := newAdapter(t).Deliver(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if got := cases(t, dir); len(got) != 1 {
		t.Fatalf("cases %v", got)
	}
	// Another delivery of the same submission (an operator's redelivery with a new id)
	// is a second case, under a suffixed name.
	d2 := realDelivery(dir, "dlv-rep-2", d.SubmissionID)
	c, err := a.Deliver(t.Context(), d2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Reference != ref+"-2" {
		t.Errorf("second case %q", c.Reference)
	}
	checkCase(t, dir, c.Reference, d2)
}

func TestHostileFileNames(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	long := strings.Repeat("ä", 300) + ".pdf"
	names := []string{
		"../../etc/passwd", "CON", "con.tar.gz", "a:b", "x\x00y\x01\x1f\x7f.pdf", long,
		"Anlage.pdf", "Anlage.pdf", "ANLAGE.PDF", "trailing. . ", "", ".hidden", `<>|?*".txt`,
		"..", "/", `C:\Windows\system32\evil.dll`, "LPT1.txt", "nul", "COM¹", "bidi\u202etxt.exe",
	}
	var atts []att
	for i, n := range names {
		atts = append(atts, att{n, []byte(fmt.Sprintf("attachment %d", i))})
	}
	d := realDelivery(dir, "dlv-hostile", "4c1f0e52-0000-4000-8000-00000000000b", atts...)
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	checkCase(t, dir, c.Reference, d)
	ents, err := os.ReadDir(filepath.Join(dir, c.Reference, AttachmentsDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(names) {
		t.Fatalf("%d files for %d attachments", len(ents), len(names))
	}
	lower := map[string]bool{}
	for _, e := range ents {
		n := e.Name()
		if lower[strings.ToLower(n)] {
			t.Errorf("%q clashes (case-insensitively)", n)
		}
		lower[strings.ToLower(n)] = true
		if len(n) > MaxNameBytes || strings.ContainsAny(n, `<>:"/\|?*`) || strings.HasPrefix(n, ".") ||
			strings.HasSuffix(n, ".") || strings.HasSuffix(n, " ") || reservedName(n) {
			t.Errorf("unsafe name %q", n)
		}
		for _, r := range n {
			if r < 0x20 || r == 0x7f || r == '\u202e' {
				t.Errorf("control character in %q", n)
			}
		}
	}
	// Nothing escaped the case folder.
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "etc")); !errors.Is(err, os.ErrNotExist) {
		t.Error("something was written outside the office folder")
	}
	got := SafeNames(names)
	for i, want := range map[int]string{
		0: "_.._etc_passwd", 1: "_CON", 2: "_con.tar.gz", 3: "a_b",
		4: "x_y___.pdf", 6: "Anlage.pdf", 7: "Anlage (2).pdf", 8: "ANLAGE (3).PDF", 9: "trailing",
		10: "anlage-11", 11: "hidden", 12: "______.txt", 13: "anlage-14", 14: "anlage-15",
		15: "C__Windows_system32_evil.dll", 16: "_LPT1.txt", 17: "_nul", 18: "_COM¹", 19: "bidi_txt.exe",
	} {
		if got[i] != want {
			t.Errorf("SafeNames[%d] (%q) = %q, want %q", i, names[i], got[i], want)
		}
	}
	if n := got[5]; len(n) > MaxNameBytes || !strings.HasSuffix(n, ".pdf") || !strings.HasPrefix(n, "ää") {
		t.Errorf("long name %q (%d bytes)", n, len(n))
	}
}

// Names a share takes for one file get told apart: a macOS portal sends "Übersicht.pdf"
// decomposed (NFD), which APFS behind SMB and every clerk's eye take for the composed
// one, and NTFS upper-cases "σ" and "ς" (and "ſ" and "s") alike. Lower-casing alone
// kept each pair apart, and the second O_EXCL create failed on every retry.
func TestSafeNamesNormalizationAndCaseFold(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"\u00dcbersicht.pdf", "U\u0308bersicht.pdf"}, []string{"\u00dcbersicht.pdf", "\u00dcbersicht (2).pdf"}},
		{[]string{"U\u0308bersicht.pdf", "\u00fcbersicht.PDF"}, []string{"\u00dcbersicht.pdf", "\u00fcbersicht (2).PDF"}},
		{[]string{"\u03c3.pdf", "\u03c2.pdf"}, []string{"\u03c3.pdf", "\u03c2 (2).pdf"}},
		{[]string{"s.txt", "\u017f.txt"}, []string{"s.txt", "\u017f (2).txt"}},
		// NTFS upper-cases the dotless ı to I, outside I's fold orbit (a review).
		{[]string{"I\u015f\u0131k.pdf", "I\u015fIk.pdf"}, []string{"I\u015f\u0131k.pdf", "I\u015fIk (2).pdf"}},
		{[]string{"Stra\u00dfe.pdf", "Strasse.pdf"}, []string{"Stra\u00dfe.pdf", "Strasse.pdf"}},
	} {
		if got := SafeNames(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SafeNames(%+q) = %+q, want %+q", tc.in, got, tc.want)
		}
	}
}

// The file is written under the NFC name; index.json keeps the name as the portal sent it.
func TestDecomposedFileNameWrittenNFC(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	nfd := "Mu\u0308ller Nachweis.pdf"
	d := realDelivery(dir, "dlv-nfd", "4c1f0e52-0000-4000-8000-000000000040", att{nfd, []byte("nachweis")})
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	checkCase(t, dir, c.Reference, d)
	if _, err := os.Stat(filepath.Join(dir, c.Reference, AttachmentsDir, "M\u00fcller Nachweis.pdf")); err != nil {
		t.Errorf("attachment not written under its NFC name: %v", err)
	}
	var ix Index
	b, _ := os.ReadFile(filepath.Join(dir, c.Reference, IndexJSONFile))
	if err := json.Unmarshal(b, &ix); err != nil {
		t.Fatal(err)
	}
	var originals []string
	for _, f := range ix.Files {
		if f.OriginalName != "" {
			originals = append(originals, f.OriginalName)
		}
	}
	if !slices.Contains(originals, nfd) {
		t.Errorf("index.json original names %+q, want %+q among them", originals, nfd)
	}
}

func TestErrorsClassified(t *testing.T) {
	a := newAdapter(t)
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		endpoint  string
		permanent bool
		reason    string
	}{
		{"relative/path", true, ReasonNotAbsolute},
		{"", true, ReasonNotAbsolute},
		{file, true, ReasonNotFolder},
		{filepath.Join(base, "missing"), false, ReasonMissing},
	} {
		d := realDelivery(tc.endpoint, "dlv-err", "4c1f0e52-0000-4000-8000-00000000000c")
		_, err := a.Deliver(t.Context(), d)
		if err == nil || adapters.IsPermanent(err) != tc.permanent || adapters.PublicReason(err) != tc.reason {
			t.Errorf("%q: err %v (permanent %v, reason %q), want permanent %v reason %q", tc.endpoint, err,
				adapters.IsPermanent(err), adapters.PublicReason(err), tc.permanent, tc.reason)
		}
		if _, ok, _ := a.Confirmed(t.Context(), d); ok {
			t.Errorf("%q: confirmed a delivery that failed", tc.endpoint)
		}
	}
}

func TestCheckTarget(t *testing.T) {
	a := newAdapter(t)
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"", "srv/amtsbote", filepath.Join(base, "missing"), file} {
		err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: ep})
		var te *adapters.TargetError
		if !errors.As(err, &te) || te.Field != "endpoint" {
			t.Errorf("%q: %v, want a TargetError on endpoint", ep, err)
		}
	}
	if err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: officeFolder(t)}); err != nil {
		t.Errorf("good folder: %v", err)
	}
	// A read-only folder (root ignores permission bits, so a read-only mount).
	// The share was prepared (it holds .amtsbote/) and is mounted read-only now.
	ro := filepath.Join(base, "ro")
	mustMkdir(t, ro)
	if !mount(t, ro, "size=64k") {
		t.Fatal("cannot mount a tmpfs: the unwritable case needs root (CI runs as root)")
	}
	if out, err := exec.Command("mount", "-o", "remount,ro", ro).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
	// A new office folder the gateway cannot prepare: the configuration's,
	// refused at the start (TestReadOnlyShareDoesNotStopTheStart has one it
	// prepared before).
	err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: ro})
	var te *adapters.TargetError
	if !errors.As(err, &te) || te.Field != "endpoint" || !strings.Contains(te.Reason, "not writable") {
		t.Errorf("read-only new folder: %v", err)
	}
}

// TestReadOnlyShareDoesNotStopTheStart: an office folder the gateway prepared
// before (it holds .amtsbote/) that is read-only at the start — a file server
// that remounted the share read-only on errors — refused the start, and after
// a restart the whole gateway stayed down, every office and every portal, for
// one office's share (an audit, 2026-12-07; as TestFullShareDoesNotStopTheStart
// found for a full one). It passes with a warning; deliveries into it fail as
// "not writable" and are retried, and go through once it is writable again.
func TestReadOnlyShareDoesNotStopTheStart(t *testing.T) {
	dir := shareOffice(t)
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
	a, logs := loggingAdapter(t)
	if err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: dir}); err != nil {
		t.Fatalf("a read-only share refused at the start: %v", err)
	}
	if !strings.Contains(logs.String(), "office folder is not writable now") {
		t.Errorf("no warning for the read-only share:\n%s", logs.String())
	}
	d := realDelivery(dir, "dlv-rostart", "4c1f0e52-0000-4000-8000-00000000000d")
	if _, err := a.Deliver(t.Context(), d); err == nil || adapters.IsPermanent(err) || adapters.PublicReason(err) != ReasonNotWritable {
		t.Fatalf("delivery into the read-only share: %v (reason %q), want transient %q", err, adapters.PublicReason(err), ReasonNotWritable)
	}
	if out, err := exec.Command("mount", "-o", "remount,rw", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-write: %v %s", err, out)
	}
	d.Attempt = 2
	if _, err := a.Deliver(t.Context(), d); err != nil {
		t.Fatalf("after the share is writable again: %v", err)
	}
}

// TestFullShareDoesNotStopTheStart: a share that is full (or over quota) when the
// gateway starts was a start error for the whole configuration — after a kill -9
// and systemd's restart the gateway stayed down, for every office and portal,
// until the office's import made room (an audit, 2026-12-05). It is transient: the
// check passes with a warning, deliveries into it fail as "full" and are retried,
// and once there is room they go through.
func TestFullShareDoesNotStopTheStart(t *testing.T) {
	dir := shareOffice(t)
	filler := filepath.Join(dir, "import-in-progress.bin")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	a, logs := loggingAdapter(t)
	if err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: dir}); err != nil {
		t.Fatalf("a full share refused at the start: %v", err)
	}
	if !strings.Contains(logs.String(), "office folder is full now") {
		t.Errorf("no warning for the full share:\n%s", logs.String())
	}
	d := realDelivery(dir, "dlv-fullstart", "4c1f0e52-0000-4000-8000-00000000001f", att{"antrag.pdf", bytes.Repeat([]byte("x"), 8192)})
	if _, err := a.Deliver(t.Context(), d); err == nil || adapters.IsPermanent(err) || adapters.PublicReason(err) != ReasonFull {
		t.Fatalf("delivery into the full share: %v (reason %q), want transient %q", err, adapters.PublicReason(err), ReasonFull)
	}
	if err := os.Remove(filler); err != nil { // the import took its file
		t.Fatal(err)
	}
	if _, err := a.Deliver(t.Context(), d); err != nil {
		t.Fatalf("delivery once the share has room: %v", err)
	}
}

// TestImportGroupPermissions: with the documented setup (office folder in the
// import's group, setgid, chmod 2770), an import that runs as another user in that
// group can read every case and write the marker; with the gateway's umask at 0007
// (or a default ACL on the office folder) it can also move a case folder to its
// archive and delete one, the two other confirmations docs/transfer.md offers. The
// import runs as a child process under uid 65534 and the group, so the kernel's
// permission checks are the real ones.
func TestImportGroupPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to run the import as another user (make test and CI run as root)")
	}
	const importGID = 4242
	for _, tc := range []struct {
		umask      int
		acl        bool // a default ACL on the office folder gives the group rwx
		moveDelete bool
	}{{0o027, false, false}, {0o007, false, true}, {0o027, true, true}} {
		t.Run(fmt.Sprintf("umask %04o acl %v", tc.umask, tc.acl), func(t *testing.T) {
			old := syscall.Umask(tc.umask)
			t.Cleanup(func() { syscall.Umask(old) })
			base := t.TempDir()
			for _, p := range []string{filepath.Dir(base), base} { // let the import in
				if err := os.Chmod(p, 0o711); err != nil {
					t.Fatal(err)
				}
			}
			office, archive := filepath.Join(base, "office"), filepath.Join(base, "archive")
			for _, p := range []string{office, archive} {
				mustMkdir(t, p)
				if err := os.Chown(p, 0, importGID); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, 0o770|os.ModeSetgid); err != nil {
					t.Fatal(err)
				}
			}
			if tc.acl {
				// setfacl -m g:4242:rwx -d -m g:4242:rwx office
				for _, name := range []string{"system.posix_acl_access", "system.posix_acl_default"} {
					if err := syscall.Setxattr(office, name, groupACL(importGID), 0); err != nil {
						t.Fatalf("no POSIX ACLs on the test's file system (docs/transfer.md relies on them): %v", err)
					}
				}
			}
			prepareOffice(t, office)
			a := newAdapter(t)
			var refs []string
			var ds []adapters.Delivery
			for i := range 4 {
				d := realDelivery(office, fmt.Sprintf("dlv-perm-%d", i), fmt.Sprintf("4c1f0e52-0000-4000-8000-00000000004%d", i))
				c, err := a.Deliver(t.Context(), d)
				if err != nil {
					t.Fatal(err)
				}
				refs, ds = append(refs, c.Reference), append(ds, d)
			}
			asImport := func(args ...string) error {
				cmd := exec.Command(args[0], args[1:]...)
				cmd.Dir = "/"
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: importGID, Groups: []uint32{}}}
				out, err := cmd.CombinedOutput()
				if err != nil {
					return fmt.Errorf("%v: %v: %s", args, err, out)
				}
				return nil
			}
			c0 := filepath.Join(office, refs[0])
			if err := asImport("cat", filepath.Join(c0, PackageFile), filepath.Join(c0, IndexJSONFile),
				filepath.Join(c0, AttachmentsDir, "Lageplan.pdf")); err != nil {
				t.Fatalf("the import cannot read a case: %v", err)
			}
			if err := asImport("touch", c0+MarkerSuffix); err != nil {
				t.Fatalf("the import cannot write the marker: %v", err)
			}
			if _, ok, err := a.Confirmed(t.Context(), ds[0]); !ok || err != nil {
				t.Fatalf("marker: %v %v", ok, err)
			}
			// A rename within the office folder changes no ".." entry, so it
			// needs write permission on the office folder only, and works
			// whatever the umask: the case folder is gone under its name.
			if err := asImport("mv", filepath.Join(office, refs[3]), filepath.Join(office, ".erledigt-"+refs[3])); err != nil {
				t.Fatalf("the import cannot rename a case folder within the office folder: %v", err)
			}
			if _, ok, err := a.Confirmed(t.Context(), ds[3]); !ok || err != nil {
				t.Fatalf("renamed within the office folder: %v %v", ok, err)
			}
			if !tc.moveDelete {
				return
			}
			if err := asImport("mv", filepath.Join(office, refs[1]), archive+"/"); err != nil {
				t.Fatalf("the import cannot move a case folder to its archive: %v", err)
			}
			if err := asImport("rm", "-r", filepath.Join(office, refs[2])); err != nil {
				t.Fatalf("the import cannot delete a case folder: %v", err)
			}
			for _, d := range ds[1:3] {
				if _, ok, err := a.Confirmed(t.Context(), d); !ok || err != nil {
					t.Errorf("%s: %v %v", d.ID, ok, err)
				}
			}
			// The gateway's records stay out of the import's reach.
			if err := asImport("touch", filepath.Join(office, LedgerDir, "x")); err == nil {
				t.Error("the import can write into " + LedgerDir)
			}
		})
	}
}

// groupACL is the xattr form of the ACL "u::rwx g::r-x g:<gid>:rwx m::rwx o::---".
func groupACL(gid uint32) []byte {
	const undef = 0xffffffff
	b := binary.LittleEndian.AppendUint32(nil, 2) // version
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 7, undef}, {0x04, 5, undef}, {0x08, 7, gid}, {0x10, 7, undef}, {0x20, 0, undef}} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// shareOffice is a prepared office folder on a tmpfs of its own (256 KiB), a
// share the test can fill or remount read-only.
func shareOffice(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "office")
	mustMkdir(t, dir)
	if !mount(t, dir, "size=256k") {
		t.Fatal("cannot mount a tmpfs: a share of its own needs root (CI runs as root)")
	}
	prepareOffice(t, dir)
	return dir
}

// loggingAdapter is an adapter whose log the test reads.
func loggingAdapter(t *testing.T) (*Adapter, *bytes.Buffer) {
	t.Helper()
	logs := new(bytes.Buffer)
	a, err := New(Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, logs
}

// mount mounts a tmpfs on dir (and unmounts it on cleanup); false if that is not
// possible here.
func mount(t *testing.T, dir, opts string) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		return false
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Logf("mount tmpfs: %v: %s", err, out)
		return false
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return true
}

func TestFullDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "office")
	mustMkdir(t, dir)
	if !mount(t, dir, "size=1m") {
		t.Fatal("cannot mount a 1 MiB tmpfs: the full-disk test needs root (CI runs as root)")
	}
	prepareOffice(t, dir)
	a := newAdapter(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16) // 2 MiB > 1 MiB
	d := realDelivery(dir, "dlv-full", "4c1f0e52-0000-4000-8000-00000000000e", att{"small.txt", []byte("s")}, att{"big.bin", big})
	_, err := a.Deliver(t.Context(), d)
	if err == nil {
		t.Fatal("Deliver of 2 MiB into a 1 MiB folder succeeded")
	}
	if adapters.IsPermanent(err) || !errors.Is(err, syscall.ENOSPC) || adapters.PublicReason(err) != ReasonFull {
		t.Fatalf("full disk: %v (permanent %v, reason %q), want transient %q wrapping ENOSPC", err,
			adapters.IsPermanent(err), adapters.PublicReason(err), ReasonFull)
	}
	if strings.Contains(err.Error(), "big.bin") {
		t.Errorf("error carries a file name: %v", err)
	}
	if len(cases(t, dir)) != 0 || len(temps(t, dir)) != 0 {
		t.Errorf("after ENOSPC: cases %v temps %v (the partial write must be removed to free the space)", cases(t, dir), temps(t, dir))
	}
	if _, ok, _ := a.Confirmed(t.Context(), d); ok {
		t.Error("a delivery that hit a full disk counts as confirmed")
	}
	// Small deliveries still fit: the partial write was cleaned up.
	small := realDelivery(dir, "dlv-small", "4c1f0e52-0000-4000-8000-00000000000f")
	if _, err := a.Deliver(t.Context(), small); err != nil {
		t.Fatalf("small delivery after ENOSPC: %v", err)
	}
	// The office frees space (here: the share grows): the same delivery now succeeds,
	// which is what "transient" promised.
	if out, err := exec.Command("mount", "-o", "remount,size=8m", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	d.Attempt = 2
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatalf("after space was freed: %v", err)
	}
	checkCase(t, dir, c.Reference, d)
	if len(cases(t, dir)) != 2 || len(temps(t, dir)) != 0 {
		t.Errorf("cases %v temps %v", cases(t, dir), temps(t, dir))
	}
}

// unmountShare plays an unmounted share: the office folder moves away and the
// bare mount point, an empty folder, is left (or none, should the test remove
// it). remount puts the folder back.
func unmountShare(t *testing.T, dir string) (remount func()) {
	t.Helper()
	moved := dir + "-offline"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	mustMkdir(t, dir)
	return func() {
		t.Helper()
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.Rename(moved, dir); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNoConfirmationWithoutLedger(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-never", "4c1f0e52-0000-4000-8000-000000000010")
	// Never written: no case folder, no ledger — not "imported".
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("never-written delivery: ok=%v err=%v", ok, err)
	}
	// Written; then the share disappears and an empty mount point is left: the case
	// folder is "gone", but so is the ledger, and that is not an import. (It is a
	// transient error of the question, which says so:
	// TestUnmountedShareIsSaidByTheConfirmation.)
	if _, err := a.Deliver(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	remount := unmountShare(t, dir)
	if _, ok, err := a.Confirmed(t.Context(), d); ok || adapters.IsPermanent(err) {
		t.Fatalf("unmounted share counted as import: ok=%v err=%v", ok, err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.Confirmed(t.Context(), d); ok || adapters.IsPermanent(err) {
		t.Fatalf("missing office folder counted as import: ok=%v err=%v", ok, err)
	}
	remount()
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("share back, case still there: ok=%v err=%v", ok, err)
	}
}

// TestUnreadableLedgerIsAReadFailure: a share whose ledger folder cannot be read
// (a stale mount, a folder replaced by a file) failed the confirmation question
// as "writing the case folder failed", sending the operator to look for a write
// where nothing was written. It says "reading the transfer folder failed" now,
// with what it tried to read, and stays transient.
func TestUnreadableLedgerIsAReadFailure(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-unreadable", "4c1f0e52-0000-4000-8000-000000000011")
	if _, err := a.Deliver(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	ledger := filepath.Join(dir, LedgerDir)
	if err := os.Rename(ledger, ledger+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ledger, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, ok, err := a.Confirmed(t.Context(), d)
	var te *Error
	if ok || !errors.As(err, &te) {
		t.Fatalf("unreadable ledger: ok=%v err=%v, want a transfer error", ok, err)
	}
	if te.Reason != ReasonRead || !strings.Contains(err.Error(), "read ledger") || adapters.IsPermanent(err) {
		t.Fatalf("unreadable ledger: %q (reason %q), want a transient %q naming the ledger", err, te.Reason, ReasonRead)
	}
}

// TestUnmountedShareGetsNothing: with the share unmounted, the endpoint is the bare
// mount point, an empty folder of the local disk. A case written there would count as
// handed over and vanish under the share once it is mounted again: never imported,
// never retried, never sent to the office's next channel. The bare mount point lacks
// the ledger folder, so the attempt fails as "transfer folder missing", transiently,
// and writes nothing — not even for a moment: the attempt looks for the ledger
// folder when it starts, before it writes the case. The check just before the
// rename alone would fail the attempt too and remove what it wrote, but only
// after writing the whole case (up to 512 MiB) onto the local disk under the
// share; so the test watches the bare mount point for any entry created, not
// only for what is left. With the share back, the retry delivers.
func TestUnmountedShareGetsNothing(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	before := realDelivery(dir, "dlv-before", "4c1f0e52-0000-4000-8000-000000000020")
	if _, err := a.Deliver(t.Context(), before); err != nil {
		t.Fatal(err)
	}
	share := dir + "-share"
	if err := os.Rename(dir, share); err != nil { // umount
		t.Fatal(err)
	}
	mustMkdir(t, dir)
	untouched := watchUntouched(t, dir)
	d := realDelivery(dir, "dlv-unmounted", "4c1f0e52-0000-4000-8000-000000000021")
	_, err := a.Deliver(t.Context(), d)
	if err == nil || adapters.IsPermanent(err) || adapters.PublicReason(err) != ReasonMissing {
		t.Fatalf("Deliver to the bare mount point: %v (reason %q), want transient %q", err, adapters.PublicReason(err), ReasonMissing)
	}
	untouched("Deliver to the bare mount point")
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("written into the bare mount point: %v", ents)
	}
	// A repeated delivery of a case handed over before answers no hand-over either.
	if _, err := a.Deliver(t.Context(), before); adapters.PublicReason(err) != ReasonMissing {
		t.Fatalf("repeated Deliver to the bare mount point: %v", err)
	}
	untouched("a repeated Deliver to the bare mount point")
	if _, ok, err := a.Confirmed(t.Context(), d); ok || adapters.PublicReason(err) != ReasonMissing || adapters.IsPermanent(err) {
		t.Fatalf("confirmed: %v %v, want not confirmed and a transient %q", ok, err, ReasonMissing)
	}
	untouched("a confirmation question to the bare mount point")
	remountAndRetry(t, a, share, dir, &d) // mount again
	if got := cases(t, dir); len(got) != 2 {
		t.Errorf("cases %v", got)
	}
}

// watchUntouched watches folder dir and returns a check that fails the test if
// an entry was created in dir, or removed from it, since the watch began or the
// last check. The check creates and removes a probe file of its own and reads
// the events up to the probe's removal: inotify reports one watch's events in
// order, so every change made before the check has been read by then — no
// waiting for a time.
func watchUntouched(t *testing.T, dir string) func(what string) {
	t.Helper()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	if err := w.Add(dir); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(dir, "watch-probe")
	return func(what string) {
		t.Helper()
		if err := os.WriteFile(probe, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(probe); err != nil {
			t.Fatal(err)
		}
		for {
			select {
			case ev := <-w.Events:
				if ev.Name != probe {
					t.Errorf("%s: %s in the folder", what, ev)
				} else if ev.Has(fsnotify.Remove) {
					return
				}
			case err := <-w.Errors:
				t.Fatalf("%s: watching the folder: %v", what, err)
			case <-time.After(time.Minute): // liveness guard, not a timing assertion
				t.Fatalf("%s: the probe's removal was never reported", what)
			}
		}
	}
}

// TestLedgerFolderVanished: the share is mounted but someone deleted .amtsbote/ (the
// gateway's records). Deliver does not create it behind the operator's back: the
// attempt fails transiently and writes nothing, and the start-up check, which sees a
// folder with content and no ledger, refuses it until an operator looked.
func TestLedgerFolderVanished(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	first := realDelivery(dir, "dlv-first", "4c1f0e52-0000-4000-8000-000000000022")
	if _, err := a.Deliver(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, LedgerDir)); err != nil {
		t.Fatal(err)
	}
	d := realDelivery(dir, "dlv-second", "4c1f0e52-0000-4000-8000-000000000023")
	_, err := a.Deliver(t.Context(), d)
	if err == nil || adapters.IsPermanent(err) || adapters.PublicReason(err) != ReasonMissing {
		t.Fatalf("Deliver without the ledger folder: %v (reason %q), want transient %q", err, adapters.PublicReason(err), ReasonMissing)
	}
	if got := cases(t, dir); len(got) != 1 || len(temps(t, dir)) != 0 {
		t.Fatalf("cases %v temps %v", got, temps(t, dir))
	}
	if _, err := os.Lstat(filepath.Join(dir, LedgerDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ledger folder recreated by Deliver: %v", err)
	}
	err = a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: dir})
	var te *adapters.TargetError
	if !errors.As(err, &te) || te.Field != "endpoint" || !strings.Contains(te.Reason, "has content but no "+LedgerDir) {
		t.Fatalf("start-up check of a folder with content and no ledger: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, LedgerDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ledger folder recreated by the start-up check: %v", err)
	}
	// The operator looked and creates it: the folder works again.
	mustMkdir(t, filepath.Join(dir, LedgerDir))
	if err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deliver(t.Context(), d); err != nil {
		t.Fatal(err)
	}
}

// TestCheckTargetLedgerFolder: the start-up check creates the ledger folder only in an
// empty folder (a new office folder). A bare mount point that holds something (an
// operator's "not mounted" file) is refused, and so is a ledger that is not a folder.
func TestCheckTargetLedgerFolder(t *testing.T) {
	a := newAdapter(t)
	fresh := filepath.Join(t.TempDir(), "office")
	mustMkdir(t, fresh)
	if err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: fresh}); err != nil {
		t.Fatalf("new office folder: %v", err)
	}
	if st, err := os.Lstat(filepath.Join(fresh, LedgerDir)); err != nil || !st.IsDir() {
		t.Fatalf("no ledger folder in the new office folder: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(fresh, LedgerDir)); len(ents) != 0 {
		t.Errorf("probe left behind: %v", ents)
	}

	bare := filepath.Join(t.TempDir(), "mount-point")
	mustMkdir(t, bare)
	if err := os.WriteFile(filepath.Join(bare, "NOT-MOUNTED"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: bare})
	var te *adapters.TargetError
	if !errors.As(err, &te) || te.Field != "endpoint" || !strings.Contains(te.Reason, "is the share mounted?") {
		t.Fatalf("bare mount point with a file: %v", err)
	}
	if ents, _ := os.ReadDir(bare); len(ents) != 1 {
		t.Fatalf("the check wrote into the bare mount point: %v", ents)
	}
	if _, err := a.Deliver(t.Context(), realDelivery(bare, "dlv-bare", "4c1f0e52-0000-4000-8000-000000000024")); adapters.PublicReason(err) != ReasonMissing {
		t.Fatalf("Deliver to the bare mount point: %v", err)
	}

	odd := filepath.Join(t.TempDir(), "office")
	mustMkdir(t, odd)
	if err := os.WriteFile(filepath.Join(odd, LedgerDir), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: odd}); !errors.As(err, &te) || te.Field != "endpoint" {
		t.Fatalf("%s as a file: %v", LedgerDir, err)
	}
	if _, err := a.Deliver(t.Context(), realDelivery(odd, "dlv-odd", "4c1f0e52-0000-4000-8000-000000000025")); adapters.PublicReason(err) != ReasonMissing {
		t.Fatalf("Deliver with %s as a file: %v", LedgerDir, err)
	}
}

// --- crash tests: the write runs in a child process that is SIGKILLed ---

const crashEnv = "TRANSFER_CRASH_CHILD" // "<before|after>:<office folder>"

// TestCrashChild is the child of the crash tests and does nothing on its own: it
// delivers, stops at the hook (before or after the rename), says so and waits to be
// killed.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		return
	}
	when, dir, _ := strings.Cut(spec, ":")
	a, err := New(Options{NoWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	hang := func(string) {
		if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "child-ready"), nil, 0o600); err != nil {
			panic(err)
		}
		select {} // SIGKILL ends this
	}
	if when == "before" {
		a.beforeRename = hang
	} else {
		a.afterRename = hang
	}
	_, err = a.Deliver(context.Background(), crashDelivery(dir))
	t.Fatalf("the child's Deliver returned (%v) instead of blocking in the hook", err)
}

func crashDelivery(dir string) adapters.Delivery {
	return realDelivery(dir, "dlv-crash", "4c1f0e52-0000-4000-8000-000000000011",
		att{"Lageplan.pdf", bytes.Repeat([]byte("L"), 100_000)}, att{"Foto.jpg", []byte("foto")})
}

// runChildAndKill starts the child, waits until it sits in the hook and kills it with
// SIGKILL.
func runChildAndKill(t *testing.T, when, dir string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+when+":"+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(filepath.Dir(dir), "child-ready")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child never reached the hook:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out.String())
	}
	_ = os.Remove(ready)
	// The killed attempt's lock on the share stays behind; the retry comes
	// after its lease has run out (sharelock.go, TestExpiredLockTakenOver).
	expireLock(t, dir, crashDelivery(dir).ID)
}

func TestCrashBeforeRename(t *testing.T) {
	dir := officeFolder(t)
	runChildAndKill(t, "before", dir)
	d := crashDelivery(dir)

	// The kill left a complete temporary folder and nothing else.
	if tm := temps(t, dir); len(tm) != 1 || tm[0] != TempPrefix+d.ID {
		t.Fatalf("temporary folders after the crash: %v", tm)
	}
	if _, err := os.Stat(filepath.Join(dir, TempPrefix+d.ID, IndexJSONFile)); err != nil {
		t.Fatalf("the child was killed before it finished writing: %v", err)
	}
	if c := cases(t, dir); len(c) != 0 {
		t.Fatalf("case folders after a crash before the rename: %v", c)
	}
	// An import sees no case; the adapter does not claim one was imported either.
	r := &folderReceiver{dir: dir, seen: map[string]*seenCase{}}
	if got := r.Received(); len(got) != 0 {
		t.Fatalf("receiver sees %d cases", len(got))
	}
	a := newAdapter(t)
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("crashed write counted as confirmed: ok=%v err=%v", ok, err)
	}

	// The retry writes exactly one correct case and leaves no temporary folder.
	d.Attempt = 2
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if got := cases(t, dir); len(got) != 1 || got[0] != c.Reference {
		t.Fatalf("cases %v, reference %q", got, c.Reference)
	}
	if tm := temps(t, dir); len(tm) != 0 {
		t.Fatalf("temporary folders left: %v", tm)
	}
	checkCase(t, dir, c.Reference, d)
	if got := r.Received(); len(got) != 1 || got[0].Problem != "" {
		t.Fatalf("receiver: %+v", got)
	}
	if _, ok, _ := a.Confirmed(t.Context(), d); ok {
		t.Fatal("confirmed before the import")
	}
}

func TestCrashAfterRenameBeforeLedger(t *testing.T) {
	dir := officeFolder(t)
	runChildAndKill(t, "after", dir)
	d := crashDelivery(dir)
	got := cases(t, dir)
	if len(got) != 1 {
		t.Fatalf("cases after a crash after the rename: %v", got)
	}
	if p := pendingCase(dir, d.ID); p != got[0] {
		t.Fatalf("ledger after a crash after the rename: pending %q, want a pending record of %s", p, got[0])
	}
	a := newAdapter(t)
	// Deliver never returned, so the broker does not count it as handed over; nor
	// does Confirmed, even when the case folder vanishes.
	if _, ok, _ := a.Confirmed(t.Context(), d); ok {
		t.Fatal("confirmed without a final ledger record")
	}
	d.Attempt = 2
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if c.Reference != got[0] || len(cases(t, dir)) != 1 {
		t.Fatalf("retry made a second case: %q, cases %v", c.Reference, cases(t, dir))
	}
	checkCase(t, dir, c.Reference, d)
	if err := os.RemoveAll(filepath.Join(dir, c.Reference)); err != nil { // the import
		t.Fatal(err)
	}
	if _, ok, err := a.Confirmed(t.Context(), d); !ok || err != nil {
		t.Fatalf("adopted case not confirmed after the import: %v %v", ok, err)
	}
}

// pendingCase reads the case folder a pending ledger record of delivery id names
// ("" without one), from the file as it is on disk.
func pendingCase(dir, id string) string {
	b, err := os.ReadFile(ledgerPath(dir, fileID(id)))
	if err != nil {
		return ""
	}
	var rec struct {
		Case        string `json:"case"`
		PendingCase string `json:"pending_case"`
	}
	if json.Unmarshal(b, &rec) != nil || rec.Case != "" {
		return ""
	}
	return rec.PendingCase
}

// TestCrashAfterRenameImportedBeforeRetry: the gateway dies between renaming the
// case into place and recording the hand-over, and the office's import takes the
// case before the retry. The retry found neither a record nor the case folder and
// wrote the case a second time: the office imported the application twice. The
// pending record written before the rename, with the temporary folder gone, says
// the case was handed over.
func TestCrashAfterRenameImportedBeforeRetry(t *testing.T) {
	dir := officeFolder(t)
	runChildAndKill(t, "after", dir)
	d := crashDelivery(dir)
	got := cases(t, dir)
	if len(got) != 1 {
		t.Fatalf("cases after a crash after the rename: %v", got)
	}
	imported := filepath.Join(filepath.Dir(dir), "imported")
	mustMkdir(t, imported)
	if err := os.Rename(filepath.Join(dir, got[0]), filepath.Join(imported, got[0])); err != nil { // the import
		t.Fatal(err)
	}
	a := newAdapter(t)
	d.Attempt = 2
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cases(t, dir)) + len(cases(t, imported)); n != 1 || c.Reference != got[0] {
		t.Fatalf("the office got %d cases (%v, imported %v), reference %q; want the one written before the crash",
			n, cases(t, dir), cases(t, imported), c.Reference)
	}
	if _, ok, err := a.Confirmed(t.Context(), d); !ok || err != nil {
		t.Fatalf("imported case not confirmed: %v %v", ok, err)
	}
}

// TestPendingRecordIsNoHandOver: a pending ledger record is a hand-over begun
// and not recorded, and Confirmed never counts it as confirmed, whatever its
// case folder shows: never renamed into place (a crash before the rename: the
// folder is "gone" because it never came), renamed and taken by the import, or
// renamed and marked. Only the delivery's next attempt, which tells by the
// temporary folder whether the rename happened, records the hand-over; then the
// import counts. Confirmed asks the record's state for this, by its own field:
// the empty Case of a pending record used to do it unasked — looking at the
// office folder itself, whose marker "<office folder>.ok" confirmed a pending
// record once the check was gone — and a change filling Case earlier would
// have confirmed all three (the first with a Zustellbestaetigung for a case
// the office never had).
func TestPendingRecordIsNoHandOver(t *testing.T) {
	for _, state := range []string{"never-renamed", "renamed-and-imported", "renamed-and-marked"} {
		t.Run(state, func(t *testing.T) {
			dir := officeFolder(t)
			a := newAdapter(t)
			d := realDelivery(dir, "dlv-pending-"+state, "4c1f0e52-0000-4000-8000-000000000060")
			name := caseBase(d)
			// An import run one folder too high marks the office folder itself as
			// read: the marker an empty case name would be looked for by.
			if err := os.WriteFile(dir+MarkerSuffix, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
			if state == "never-renamed" {
				// As a crash between the pending record and the rename leaves it:
				// the temporary folder and the record naming a case folder that
				// is not there.
				mustMkdir(t, filepath.Join(dir, TempPrefix+fileID(d.ID)))
			} else {
				c, err := a.Deliver(t.Context(), d)
				if err != nil {
					t.Fatal(err)
				}
				name = c.Reference
				switch state { // the office's import, before the hand-over was recorded
				case "renamed-and-imported":
					if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
						t.Fatal(err)
					}
				case "renamed-and-marked":
					if err := os.WriteFile(filepath.Join(dir, name+MarkerSuffix), nil, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The record as deliver writes it before the rename; after it, as a
			// crash (or a failed write) before the final record leaves it.
			if err := writeLedger(dir, fileID(d.ID), &ledgerRecord{DeliveryID: d.ID, SubmissionID: d.SubmissionID,
				PendingCase: name, WrittenAt: at}); err != nil {
				t.Fatal(err)
			}
			if p := pendingCase(dir, d.ID); p != name {
				t.Fatalf("pending record names %q, want %q", p, name)
			}
			if c, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
				t.Fatalf("a pending record answered confirmed=%v (%+v, %v): nothing was recorded as handed over", ok, c, err)
			}
			// The next attempt settles it: written afresh, or the hand-over recorded.
			d.Attempt = 2
			c, err := a.Deliver(t.Context(), d)
			if err != nil || c.Reference != name {
				t.Fatalf("the next attempt: %+v, %v; want case %s", c, err, name)
			}
			_, ok, err := a.Confirmed(t.Context(), d)
			if want := state != "never-renamed"; ok != want || err != nil {
				t.Fatalf("after the hand-over was recorded: confirmed=%v (%v), want %v", ok, err, want)
			}
			if state == "never-renamed" {
				checkCase(t, dir, name, d)
			}
		})
	}
}

// TestLedgerWriteFailsAfterRename: the record of the hand-over, written after the
// case folder was renamed into place, fails (the share filled up just then, or
// went away). The retry adopted the case folder if it was still there, but if the
// office's import had taken it in between, it wrote the case a second time and
// the office imported the same application twice. Whichever happened, the office
// must get the case once, and the import must count as its confirmation.
func TestLedgerWriteFailsAfterRename(t *testing.T) {
	for _, fault := range []string{"full", "unmounted"} {
		for _, imported := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/imported=%v", fault, imported), func(t *testing.T) {
				base := t.TempDir()
				if fault == "full" {
					base = filepath.Join(base, "share")
					mustMkdir(t, base)
					if !mount(t, base, "size=1m") {
						t.Fatal("cannot mount a 1 MiB tmpfs: the full-share test needs root (CI runs as root)")
					}
				}
				dir, importDir := filepath.Join(base, "office"), filepath.Join(base, "imported")
				mustMkdir(t, dir)
				mustMkdir(t, importDir)
				prepareOffice(t, dir)
				share := dir + "-share"
				a := newAdapter(t)
				d := realDelivery(dir, "dlv-ledger-fails", "4c1f0e52-0000-4000-8000-000000000040")
				filler := filepath.Join(base, "filler")
				a.afterRename = func(final string) {
					a.afterRename = nil
					root := dir
					switch fault {
					case "full": // the share fills up: the record's few hundred bytes find no room
						err := os.WriteFile(filler, make([]byte, 2<<20), 0o600)
						if !errors.Is(err, syscall.ENOSPC) {
							t.Errorf("filling the share: %v", err)
						}
					case "unmounted":
						if err := os.Rename(dir, share); err != nil {
							t.Error(err)
						}
						mustMkdir(t, dir) // the bare mount point
						root = share
					}
					if imported { // the import, on the file server, takes the case at once
						name := filepath.Base(final)
						if err := os.Rename(filepath.Join(root, name), filepath.Join(importDir, name)); err != nil {
							t.Error(err)
						}
					}
				}
				if _, err := a.Deliver(t.Context(), d); err == nil || adapters.IsPermanent(err) {
					t.Fatalf("Deliver with the ledger write failing: %v, want a transient error", err)
				}
				switch fault {
				case "full":
					if err := os.Remove(filler); err != nil { // the office makes room
						t.Fatal(err)
					}
				case "unmounted":
					if err := os.Remove(dir); err != nil { // mounted again
						t.Fatal(err)
					}
					if err := os.Rename(share, dir); err != nil {
						t.Fatal(err)
					}
					// The attempt's lock could not be removed from the share
					// gone: the retry comes after its lease ran out.
					expireLock(t, dir, d.ID)
				}
				got := append(cases(t, dir), cases(t, importDir)...)
				if len(got) != 1 {
					t.Fatalf("cases after the failed attempt: %v", got)
				}
				first := got[0]
				d.Attempt = 2
				c, err := a.Deliver(t.Context(), d)
				if err != nil {
					t.Fatalf("retry: %v", err)
				}
				inOffice, inImport := cases(t, dir), cases(t, importDir)
				if len(inOffice)+len(inImport) != 1 || c.Reference != first {
					t.Fatalf("the office got the case %d times (folder %v, imported %v), reference %q, want once as %q",
						len(inOffice)+len(inImport), inOffice, inImport, c.Reference, first)
				}
				if len(temps(t, dir)) != 0 {
					t.Errorf("temporary folders left: %v", temps(t, dir))
				}
				_, ok, err := a.Confirmed(t.Context(), d)
				if err != nil || ok != imported {
					t.Fatalf("Confirmed: %v %v, want %v", ok, err, imported)
				}
				// A third attempt finds the final record: still one case.
				d.Attempt = 3
				if c, err := a.Deliver(t.Context(), d); err != nil || c.Reference != first ||
					len(cases(t, dir))+len(cases(t, importDir)) != 1 {
					t.Fatalf("third attempt: %+v %v, cases %v %v", c, err, cases(t, dir), cases(t, importDir))
				}
			})
		}
	}
}

// TestRenameFailsKeepsNoPending: a rename that fails (here: the case folder's name
// taken while the case was written) gives the attempt up. Its pending record must
// go with its temporary folder, the record first: a pending record without the
// temporary folder would make the retry take the case for handed over, and the
// office would never get it.
func TestRenameFailsKeepsNoPending(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-taken", "4c1f0e52-0000-4000-8000-000000000041")
	a.beforeRename = func(tmp string) {
		a.beforeRename = nil
		if pendingCase(dir, d.ID) != caseBase(d) {
			t.Errorf("no pending record before the rename")
		}
		taken := filepath.Join(dir, caseBase(d))
		mustMkdir(t, taken)
		if err := os.WriteFile(filepath.Join(taken, "x"), nil, 0o600); err != nil {
			t.Error(err)
		}
	}
	if _, err := a.Deliver(t.Context(), d); err == nil {
		t.Fatal("Deliver into a name taken while writing succeeded")
	}
	if _, err := os.Lstat(ledgerPath(dir, fileID(d.ID))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ledger record after a failed rename: %v", err)
	}
	if tm := temps(t, dir); len(tm) != 0 {
		t.Fatalf("temporary folders after a failed rename: %v", tm)
	}
	d.Attempt = 2
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if c.Reference != caseBase(d)+"-2" {
		t.Errorf("retry wrote %q", c.Reference)
	}
	checkCase(t, dir, c.Reference, d)
}

// TestCancelledBeforeRenameHandsNothingOver: an attempt whose context is
// cancelled at its point of no return (the broker stops it when a clerk took
// the case over in the web mailbox while the case was written) renames no case
// into the office folder and records no hand-over: the import would otherwise
// take a case the clerk processes. Its pending record and its temporary folder
// go as for any attempt given up before the rename, and a later attempt of the
// same delivery writes the case afresh.
func TestCancelledBeforeRenameHandsNothingOver(t *testing.T) {
	dir := officeFolder(t)
	var logs testenv.Buffer
	a, err := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	d := realDelivery(dir, "dlv-cancelled", "4c1f0e52-0000-4000-8000-000000000042")
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	a.beforeRename = func(string) {
		a.beforeRename = nil
		if pendingCase(dir, d.ID) != caseBase(d) {
			t.Errorf("no pending record before the rename")
		}
		cancel(errors.New("taken over")) // the takeover, while the attempt sits at its point of no return
	}
	if _, err := a.Deliver(ctx, d); !errors.Is(err, context.Canceled) {
		t.Fatalf("Deliver cancelled before the rename: %v, want context.Canceled", err)
	}
	// Its log line says it was stopped, and why, not that the folder failed.
	if l := logs.String(); !strings.Contains(l, "transfer: attempt stopped") || !strings.Contains(l, "cause=\"taken over\"") || strings.Contains(l, "attempt failed") {
		t.Errorf("the log of the stopped attempt:\n%s", l)
	}
	if cs := cases(t, dir); len(cs) != 0 {
		t.Fatalf("case folders after a cancelled attempt: %v", cs)
	}
	if tm := temps(t, dir); len(tm) != 0 {
		t.Fatalf("temporary folders after a cancelled attempt: %v", tm)
	}
	if _, err := os.Lstat(ledgerPath(dir, fileID(d.ID))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ledger record after a cancelled attempt: %v", err)
	}
	d.Attempt = 2
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	checkCase(t, dir, c.Reference, d)
}

func TestStaleTempRemoved(t *testing.T) {
	dir := officeFolder(t)
	// Removed under its delivery's lock (TestStaleTempOfAnAttemptUnderWayStays):
	// an id whose lock is none of those held here ("dlv-gone" shared one with
	// "dlv-pending-busy", the locks being shared by hash, and would stay for a
	// later pass).
	old := filepath.Join(dir, TempPrefix+"dlv-gone-long-ago")
	mustMkdir(t, old)
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, TempPrefix+"dlv-running")
	mustMkdir(t, fresh)
	// Stale, with a pending record (a crash before the rename, never retried here):
	// the folder may go only after the record, which without it would say the case
	// was handed over. The second one's delivery is being worked on: both stay.
	a := newAdapter(t)
	pending := map[string]string{}
	for _, id := range []string{"dlv-pending-gone", "dlv-pending-busy"} {
		p := filepath.Join(dir, TempPrefix+id)
		mustMkdir(t, p)
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
		if err := writeLedger(dir, id, &ledgerRecord{DeliveryID: id, PendingCase: "20261129-" + id, WrittenAt: past}); err != nil {
			t.Fatal(err)
		}
		pending[id] = p
	}
	unlock := a.lock("dlv-pending-busy")
	defer unlock()
	if _, err := a.Deliver(t.Context(), realDelivery(dir, "dlv-x", "4c1f0e52-0000-4000-8000-000000000012")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Error("stale temporary folder kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("a fresh temporary folder (another delivery being written) was removed")
	}
	if _, err := os.Stat(pending["dlv-pending-gone"]); !errors.Is(err, os.ErrNotExist) {
		t.Error("stale temporary folder with a pending record kept")
	}
	if _, err := os.Stat(ledgerPath(dir, "dlv-pending-gone")); !errors.Is(err, os.ErrNotExist) {
		t.Error("pending record of a removed temporary folder kept: a retry would take the case for handed over")
	}
	for _, p := range []string{pending["dlv-pending-busy"], ledgerPath(dir, "dlv-pending-busy")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s of a delivery being worked on removed: %v", filepath.Base(p), err)
		}
	}
}

func TestFileIDAndCaseName(t *testing.T) {
	if fileID("dlv-0b1c2d3e") != "dlv-0b1c2d3e" {
		t.Error("plain id changed")
	}
	for _, id := range []string{"../x", ".hidden", "a/b", "a b", strings.Repeat("x", 101), ""} {
		f := fileID(id)
		if f == id || strings.ContainsAny(f, "/. ") || len(f) > 40 {
			t.Errorf("fileID(%q) = %q", id, f)
		}
	}
	d := adapters.Delivery{ID: "x", SubmissionID: "../../a b", CreatedAt: time.Date(2026, 6, 30, 22, 30, 0, 0, time.UTC)}
	if got := caseBase(d); got != "20260701-______a_b" {
		t.Errorf("caseBase = %q", got)
	}
}

// TestCheckTargetUnmountedShare: an empty office folder that lies under a mount
// point the system mounts (an /etc/fstab line, a systemd .mount unit) while that
// is not mounted is the bare mount point of an unmounted share, not a new office
// folder: the start-up check refuses it and writes nothing there. Before, it made
// the ledger there, and every case went to the local disk, hidden by the share
// once mounted. The tables are files in their real formats (mounting needs
// privileges a test has not); the machine's own tables accept a temporary folder.
func TestCheckTargetUnmountedShare(t *testing.T) {
	a := newAdapter(t)
	if err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: officeFolder(t)}); err != nil {
		t.Fatalf("a new office folder, with this machine's own mount tables: %v", err)
	}

	root := t.TempDir()
	share := filepath.Join(root, "share with space")
	viaUnit := filepath.Join(root, "unit")
	bound := filepath.Join(root, "bound")
	for _, d := range []string{filepath.Join(share, "bauamt"), viaUnit, filepath.Join(bound, "office")} {
		mustMkdir(t, d)
	}
	tables := t.TempDir()
	esc := strings.ReplaceAll(share, " ", `\040`)
	fstab := "# /etc/fstab\nUUID=1234 / ext4 defaults 0 1\n/dev/sdb1 none swap sw 0 0\n" +
		"//fileserver/transfer " + esc + " cifs credentials=/etc/amtsbote/smb,_netdev 0 0\n" +
		"//fileserver/bound " + bound + " cifs _netdev 0 0\n"
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	// bound is not mounted, but a file system is mounted deeper, at bound/office.
	mountinfo = append(mountinfo, []byte("9999 1 0:99 / "+filepath.Join(bound, "office")+" rw - tmpfs tmpfs rw\n")...)
	unit := "[Unit]\nDescription=transfer\n\n[Mount]\nWhat=fileserver:/export/unit\nWhere=" + viaUnit + "\nType=nfs\n"
	units := filepath.Join(tables, "units")
	mustMkdir(t, units)
	for name, data := range map[string]string{"fstab": fstab, "mountinfo": string(mountinfo), "units/x-unit.mount": unit} {
		if err := os.WriteFile(filepath.Join(tables, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defer func(f, m string, u []string) { fstabPath, mountinfoPath, mountUnitsDirs = f, m, u }(fstabPath, mountinfoPath, mountUnitsDirs)
	fstabPath, mountinfoPath, mountUnitsDirs = filepath.Join(tables, "fstab"), filepath.Join(tables, "mountinfo"), []string{units}

	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(share, "bauamt"), "//fileserver/transfer"},
		{viaUnit, "fileserver:/export/unit"},
	} {
		err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: tc.dir})
		var te *adapters.TargetError
		if !errors.As(err, &te) || te.Field != "endpoint" || !strings.Contains(te.Reason, "not mounted now") || !strings.Contains(te.Reason, tc.want) {
			t.Fatalf("%s under an unmounted share: %v", tc.dir, err)
		}
		if ents, _ := os.ReadDir(tc.dir); len(ents) != 0 {
			t.Fatalf("the check wrote into the bare mount point: %v", ents)
		}
	}
	if err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: filepath.Join(bound, "office")}); err != nil {
		t.Fatalf("a folder on a file system mounted below the unmounted one: %v", err)
	}
}

// TestShareUnmountedDuringAttempt: the share goes away after the attempt looked
// for the ledger folder and before it wrote (here while it waits for its
// delivery's lock, which an earlier attempt of the same delivery still holds).
// The attempt wrote its case into the bare mount point all the same, found no
// ledger folder only after the rename and failed: the case stayed on the local
// disk, hidden by the share once mounted again, with the applicant's data in it.
// Nothing may be written into a folder that has no ledger.
func TestShareUnmountedDuringAttempt(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-unmounted-meanwhile", "4c1f0e52-0000-4000-8000-000000000030")
	unlock := a.lock(d.ID) // an earlier attempt of the same delivery is still running
	done := make(chan error, 1)
	go func() {
		_, err := a.Deliver(t.Context(), d)
		done <- err
	}()
	waitForStack(t, "transfer.(*Adapter).lock") // past the check, waiting for the lock
	share := dir + "-share"
	if err := os.Rename(dir, share); err != nil { // umount
		t.Fatal(err)
	}
	mustMkdir(t, dir) // the bare mount point, writable by the gateway
	unlock()
	err := <-done
	if err == nil || adapters.IsPermanent(err) || adapters.PublicReason(err) != ReasonMissing {
		t.Fatalf("Deliver: %v (reason %q), want transient %q", err, adapters.PublicReason(err), ReasonMissing)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("written into the bare mount point: %v", names)
	}
	remountAndRetry(t, a, share, dir, &d) // mounted again, the retry delivers
}

// waitForStack waits until some goroutine's stack holds fn.
func waitForStack(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn) {
			return
		}
	}
	t.Fatalf("no goroutine reached %s", fn)
}

// TestOfficeFilesDoNotHangDelivery: a case folder left in place (confirmed by
// marker) is the office's, and so is what is in it. When an operator redelivers
// the submission, the attempt reads that folder's index.json to tell whether it
// wrote it. The import (or anyone with the office's rights) had made it a named
// pipe: opening it waited for a writer that never came, so the attempt hung for
// good, deaf to its deadline, holding the delivery's lock, a worker and the
// gateway's shutdown. What is not a plain file is not the gateway's index.
func TestOfficeFilesDoNotHangDelivery(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	first := realDelivery(dir, "dlv-fifo-1", "4c1f0e52-0000-4000-8000-000000000031")
	c, err := a.Deliver(t.Context(), first)
	if err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, c.Reference, IndexJSONFile)
	if err := os.Remove(index); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(index, 0o660); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // let a reader still waiting for a writer go
		if f, err := os.OpenFile(index, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	d := realDelivery(dir, "dlv-fifo-2", first.SubmissionID) // the operator's redelivery
	done := make(chan error, 1)
	var got adapters.Confirmation
	go func() {
		var err error
		got, err = a.Deliver(ctx, d)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("redelivery: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the redelivery hangs on the office's named pipe")
	}
	if got.Reference != c.Reference+"-2" {
		t.Errorf("redelivered case %q, want %q", got.Reference, c.Reference+"-2")
	}
	checkCase(t, dir, got.Reference, d)
}

// remountAndRetry puts the share back on its mount point (dir) and delivers d
// again as its second attempt, which must write its case.
func remountAndRetry(t *testing.T, a *Adapter, share, dir string, d *adapters.Delivery) {
	t.Helper()
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(share, dir); err != nil {
		t.Fatal(err)
	}
	d.Attempt = 2
	c, err := a.Deliver(t.Context(), *d)
	if err != nil {
		t.Fatalf("share back: %v", err)
	}
	checkCase(t, dir, c.Reference, *d)
}

// testClock is a clock the test moves while the adapter's background work reads it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestConfirmedLedgerRecordsPruned: every delivery left its record in the office
// folder's .amtsbote/ for ever; years of cases made hundreds of thousands of files
// in one folder on a share, slowing every listing of the adapter and the office's
// import. A record goes once the import's confirmation was noticed more than the
// keep (30 days by default) ago; an unconfirmed, a pending and a recently confirmed
// one stay, and so does one whose old marker was noticed only recently.
func TestConfirmedLedgerRecordsPruned(t *testing.T) {
	dir := officeFolder(t)
	t0 := time.Now()
	clock := &testClock{t: t0}
	var logs testenv.Buffer
	a, err := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: clock.Now, NoWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	day := 24 * time.Hour
	deliver := func(id, sub string) adapters.Delivery {
		t.Helper()
		d := realDelivery(dir, id, sub)
		if _, err := a.Deliver(t.Context(), d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	confirm := func(d adapters.Delivery) {
		t.Helper()
		if _, ok, err := a.Confirmed(t.Context(), d); !ok || err != nil {
			t.Fatalf("%s not confirmed: %v %v", d.ID, ok, err)
		}
	}
	importCase := func(d adapters.Delivery) {
		t.Helper()
		rec, err := readLedger(dir, fileID(d.ID))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(dir, rec.Case)); err != nil {
			t.Fatal(err)
		}
	}
	// Names in the order a pass looks at them: the one to go comes last, so once it
	// is gone, the pass has looked at every other.
	old := deliver("dlv-z-confirmed-long-ago", "4c1f0e52-0000-4000-8000-000000000050")
	unconfirmed := deliver("dlv-d-never-imported", "4c1f0e52-0000-4000-8000-000000000051")
	marked := deliver("dlv-b-marker-noticed-late", "4c1f0e52-0000-4000-8000-000000000052")
	if err := writeLedger(dir, fileID("dlv-c-pending"), &ledgerRecord{DeliveryID: "dlv-c-pending",
		PendingCase: "20261129-4c1f0e52-0000-4000-8000-000000000053", WrittenAt: t0}); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(time.Hour))
	importCase(old)
	confirm(old)
	if _, ok, _ := a.Confirmed(t.Context(), unconfirmed); ok {
		t.Fatal("confirmed before the import")
	}
	// The marker was written at once, the gateway noticed it only 20 days later.
	rec, _ := readLedger(dir, fileID(marked.ID))
	marker := filepath.Join(dir, rec.Case+MarkerSuffix)
	if err := os.WriteFile(marker, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(marker, t0.Add(time.Minute), t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(20 * day))
	confirm(marked)
	clock.Set(t0.Add(25 * day))
	fresh := deliver("dlv-a-confirmed-lately", "4c1f0e52-0000-4000-8000-000000000054")
	importCase(fresh)
	confirm(fresh)

	// 31 days on, the next delivery into the folder starts a pass.
	clock.Set(t0.Add(31 * day))
	deliver("dlv-0-next", "4c1f0e52-0000-4000-8000-000000000055")
	gone := ledgerPath(dir, fileID(old.ID))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(gone); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the record of a case confirmed 31 days ago is still there:\n%s", logs.String())
		}
	}
	for _, id := range []string{unconfirmed.ID, marked.ID, "dlv-c-pending", fresh.ID, "dlv-0-next"} {
		if _, err := os.Stat(ledgerPath(dir, fileID(id))); err != nil {
			t.Errorf("record of %s removed: %v", id, err)
		}
	}
	// The pass logs once it is through, after the record is gone: wait for it.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "removed ledger records"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the pass did not log what it removed:\n%s", logs.String())
			break
		}
	}

	// The pruned delivery comes again (say, from a store restored from an old
	// backup): its case is written anew, and the log says that the office may get
	// it twice.
	old.Attempt = 9
	old.CreatedAt = t0.Add(-time.Hour)
	c, err := a.Deliver(t.Context(), old)
	if err != nil {
		t.Fatal(err)
	}
	checkCase(t, dir, c.Reference, old)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "delivery="+old.ID) {
		t.Errorf("no warning for a delivery whose record may be pruned:\n%s", logs.String())
	}
}

// TestLedgerPrunePassBounded: an office folder with a long history (a gateway
// upgraded after years) is worked through over several passes, each looking at a
// bounded number of entries and going on where the last one ended. Leftovers of
// ledger writes cut off by a crash go too; with a negative keep nothing goes.
func TestLedgerPrunePassBounded(t *testing.T) {
	dir := officeFolder(t)
	confirmedAt := time.Now()
	n := 2*prunePerPass + prunePerPass/2
	for i := range n {
		id := fmt.Sprintf("dlv-%05d", i)
		b, _ := json.Marshal(&ledgerRecord{DeliveryID: id, Case: "20261129-" + id, WrittenAt: confirmedAt,
			ConfirmedAt: confirmedAt, ConfirmNoticedAt: confirmedAt})
		if err := os.WriteFile(ledgerPath(dir, id), b, 0o640); err != nil { // no fsync: thousands of them
			t.Fatal(err)
		}
	}
	now := time.Now().Add(72 * time.Hour)
	leftover := filepath.Join(dir, LedgerDir, TempPrefix+"0a1b2c3d4e5f-dlv-crashed.json")
	if err := os.WriteFile(leftover, []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	past := now.Add(-48 * time.Hour)
	if err := os.Chtimes(leftover, past, past); err != nil {
		t.Fatal(err)
	}
	left := func() int {
		ents, err := os.ReadDir(filepath.Join(dir, LedgerDir))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	// Mtimes are the real clock's; the adapter's is 3 days on, so the records are
	// old enough by their files too.
	clock := func() time.Time { return now }
	never, err := New(Options{Logger: slog.New(slog.DiscardHandler), Now: clock, NoWatch: true, LedgerKeep: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer never.Close()
	never.pruneLedger(dir, now, now)
	if got := left(); got != n+1 {
		t.Fatalf("with a negative keep, %d of %d entries left", got, n+1)
	}
	a, err := New(Options{Logger: slog.New(slog.DiscardHandler), Now: clock, NoWatch: true, LedgerKeep: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	want := n + 1
	for pass := 1; want > 0; pass++ {
		a.pruneLedger(dir, now, now)
		want -= min(prunePerPass, want)
		if got := left(); got != want {
			t.Fatalf("after pass %d: %d entries left, want %d", pass, got, want)
		}
	}
}

// TestShareUnmountedDuringConfirmIsNoImport: the share goes away between the
// ledger's read and the look for the case folder. The bare mount point has no
// case folder, and that was taken for the import's removal: a signed
// Zustellbestaetigung for a case nobody imported.
func TestShareUnmountedDuringConfirmIsNoImport(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-unmount-confirm", "4c1f0e52-0000-4000-8000-000000000031")
	if _, err := a.Deliver(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	var remount func()
	a.beforeCaseCheck = func() { remount = unmountShare(t, dir) }
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("a share unmounted during the question counted as import: ok=%v err=%v", ok, err)
	}
	a.beforeCaseCheck = nil
	remount()
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("share back, case still there: ok=%v err=%v", ok, err)
	}
}

// A package the summary cannot display still gets the mailbox's time format
// (german.Time) in the PDF: it said "CET" where the page says "MEZ".
func TestFallbackViewTimeAsOnTheMailboxPage(t *testing.T) {
	v := fallbackView(adapters.Delivery{MessageID: "m", CreatedAt: time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC)})
	if v.Created != "01.07.2026, 10:00 Uhr MESZ (Eingang)" {
		t.Errorf("Created = %q", v.Created)
	}
}

// TestNachreichungIndexNamesItsCase: the case folder of a Nachreichung names
// the case it belongs to (case_id, the first package's submission_id) in both
// index files, so the office's import files it with the case, and at the top
// of its summary, which is what a clerk at a folder-only office reads; a new
// case's index and summary have none (TestCaseFolderContents' JSON is
// unchanged).
func TestNachreichungIndexNamesItsCase(t *testing.T) {
	dir := officeFolder(t)
	a := newAdapter(t)
	d := realDelivery(dir, "dlv-n", "4c1f0e52-0000-4000-8000-00000000000a")
	d.CaseID = "4c1f0e52-0000-4000-8000-000000000001"
	c, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	var ix Index
	b, _ := os.ReadFile(filepath.Join(dir, c.Reference, IndexJSONFile))
	if err := json.Unmarshal(b, &ix); err != nil || ix.CaseID != d.CaseID {
		t.Errorf("index.json: case_id %q (%v), want %s", ix.CaseID, err, d.CaseID)
	}
	var xix Index
	b, _ = os.ReadFile(filepath.Join(dir, c.Reference, IndexXMLFile))
	if err := xml.Unmarshal(b, &xix); err != nil || xix.CaseID != d.CaseID {
		t.Errorf("index.xml: case_id %q (%v), want %s", xix.CaseID, err, d.CaseID)
	}
	if text := strings.Join(strings.Fields(pdftotext(t, filepath.Join(dir, c.Reference, SummaryFile))), " "); !strings.Contains(text, "Nachreichung zu Eingang "+d.CaseID) {
		t.Errorf("the summary does not name the case:\n%s", text)
	}
	d2 := realDelivery(dir, "dlv-o", "4c1f0e52-0000-4000-8000-00000000000b")
	c2, err := a.Deliver(t.Context(), d2)
	if err != nil {
		t.Fatal(err)
	}
	if text := pdftotext(t, filepath.Join(dir, c2.Reference, SummaryFile)); strings.Contains(text, "Nachreichung") {
		t.Errorf("the summary of a new case speaks of a Nachreichung:\n%s", text)
	}
	for _, f := range []string{IndexJSONFile, IndexXMLFile} {
		if b, _ := os.ReadFile(filepath.Join(dir, c2.Reference, f)); strings.Contains(string(b), "case_id") {
			t.Errorf("%s of a new case names a case_id:\n%s", f, b)
		}
	}
}

// handOverQuietly delivers d, which must not be confirmed yet, waits for its
// folder's watch, which is added in the background (watch), and drains what
// the delivery's own writing signalled: a signal after it is the office's.
func handOverQuietly(t *testing.T, a *Adapter, d adapters.Delivery) adapters.Confirmation {
	t.Helper()
	handed, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.Confirmed(t.Context(), d); ok || err != nil {
		t.Fatalf("confirmed before the import: %v %v", ok, err)
	}
	a.settleWatches()
	for len(a.Changes()) > 0 {
		<-a.Changes()
	}
	return handed
}
