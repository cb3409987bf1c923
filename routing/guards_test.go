package routing

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tests written in the mutation audit of 2026-12-06: each guards a rule that a
// planted defect broke without any other test of this package noticing.

// A postcode shared by several municipalities is routed without asking only when
// every one has the same office *and role* (rule 6): an office that is
// responsible in one and only takes applications in another (an Annahmestelle)
// is no single answer, and merging them would give the whole postcode the first
// candidate's role.
func TestSharedPostcodeSameOfficeOtherRoleStaysAmbiguous(t *testing.T) {
	const svc = "99999999999001"
	cands, err := builtinT(t).Places("01877")
	if err != nil || len(cands) < 2 {
		t.Fatalf("01877: %d candidates, %v", len(cands), err)
	}
	overlay := func(lastRole string) *Directory {
		var b strings.Builder
		b.WriteString("services:\n  - {key: \"" + svc + "\", name: Prüfleistung}\n")
		b.WriteString("offices:\n  - {id: bz-pruef, name: Prüfstelle, kanaele: [{kind: mailbox}]}\n")
		b.WriteString("responsibilities:\n")
		for i, c := range cands {
			role := "zustaendig"
			if i == len(cands)-1 {
				role = lastRole
			}
			b.WriteString("  - {leistung: \"" + svc + "\", gebiet: \"" + c.Key + "\", stelle: bz-pruef, rolle: " + role + "}\n")
		}
		return withOverlay(t, b.String())
	}
	// The same office and role everywhere: one route, for the Kreis around them.
	if rt, err := overlay("zustaendig").Resolve(svc, "01877"); err != nil || rt.Office == nil || rt.Office.ID != "bz-pruef" || rt.Area.Key != "14625" {
		t.Fatalf("one office and role at 01877: %s, %v; want bz-pruef for Kreis 14625", routeTo(rt), err)
	}
	d := overlay("mitwirkend")
	rt, err := d.Resolve(svc, "01877")
	if !errors.Is(err, ErrAmbiguousPlace) {
		t.Fatalf("zustaendig in some, mitwirkend in %s: %s, %v; want the municipalities to choose from",
			cands[len(cands)-1].Name, routeTo(rt), err)
	}
}

// An unknown LeiKa key at a name of places in other states is the citizen's
// choice only where a package could go to one of them (ResolveWith's taken,
// intake's decision); where no configured peer gateway serves any, every choice
// would end in unknown-service, so that is the answer (rule 1).
func TestUnknownServiceAtSeveralForeignPlacesAsksOnlyWhereOneIsTaken(t *testing.T) {
	const unknown = "99123456789012"
	d := builtinT(t)
	none := func(*Route) error { return errors.New("no peer gateway serves the place") }
	if rt, err := d.ResolveWith(unknown, "Frankfurt", none); !errors.Is(err, ErrUnknownService) || errors.Is(err, ErrAmbiguousPlace) {
		t.Errorf("Frankfurt, no peer gateway: %s, %v; want ErrUnknownService", routeTo(rt), err)
	}
	hesse := func(rt *Route) error {
		if rt.Area.Land() == "06" {
			return nil
		}
		return errors.New("no peer gateway serves the place")
	}
	if rt, err := d.ResolveWith(unknown, "Frankfurt", hesse); !errors.Is(err, ErrAmbiguousPlace) {
		t.Errorf("Frankfurt, a peer gateway for Hesse: %s, %v; want the places to choose from", routeTo(rt), err)
	}
}

// A postcode the table has, with a name none of its municipalities bears, is an
// unknown place: the fallback to the name's municipalities in the postcode's
// region is for postcodes the table lacks (a Postfach's, "01001 Dresden"), not a
// guess that "01877 Dresden" (01877 is Bischofswerda's) meant Dresden.
func TestKnownPostcodeWithAnotherPlacesNameIsNotGuessed(t *testing.T) {
	d := builtinT(t)
	if a, err := d.Place("01877 Dresden"); !errors.Is(err, ErrUnknownPlace) {
		t.Errorf("01877 Dresden: %v, %v; want ErrUnknownPlace", a, err)
	}
	if a, err := d.Place("01001 Dresden"); err != nil || a.Key != arsDresden {
		t.Errorf("01001 Dresden (a Postfach postcode): %v, %v; want Dresden", a, err)
	}
}

// Search input longer than 200 bytes matches nothing (docs/directory.md: rather
// than costing time), also where it would match after trimming.
func TestSearchIgnoresOverlongInput(t *testing.T) {
	d := builtinT(t)
	pad := strings.Repeat(" ", 200)
	if hits := d.SearchServices("Gewerbe anmelden"+pad, 10); len(hits) != 0 {
		t.Errorf("SearchServices of %d bytes: %d hits, want none", len("Gewerbe anmelden"+pad), len(hits))
	}
	if hits := d.SearchPlaces("Dresden"+pad, 10); len(hits) != 0 {
		t.Errorf("SearchPlaces of %d bytes: %d hits, want none", len("Dresden"+pad), len(hits))
	}
	if len(d.SearchServices("Gewerbe anmelden", 10)) == 0 || len(d.SearchPlaces("Dresden", 10)) == 0 {
		t.Error("the short queries find nothing; the test proves nothing")
	}
}

// A reload whose commit (the gateway's trust store) fails swaps nothing: the old
// directory stays current and Status says why. A later good reload clears the
// error, so the admin endpoint does not report a failure that is over.
func TestReloadWithFailingCommitKeepsTheOldDirectory(t *testing.T) {
	base := builtinT(t)
	p := filepath.Join(t.TempDir(), "overlay.yaml")
	data, err := os.ReadFile(repoFile(t, "testdata/directory/overlay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewStore(base)
	err = s.ReloadFilesWith(func() error { return errors.New("trust store: broken PEM") }, p)
	if err == nil || !strings.Contains(err.Error(), "broken PEM") {
		t.Fatalf("ReloadFilesWith, failing commit: %v", err)
	}
	if s.Current() != base {
		t.Error("a reload whose commit failed made its directory current")
	}
	if st := s.Status(); !strings.Contains(st.LastError, "broken PEM") || len(st.Files) != 0 {
		t.Errorf("status after the failed reload: %+v", st)
	}
	if err := s.ReloadFiles(p); err != nil {
		t.Fatal(err)
	}
	if s.Current() == base {
		t.Error("the good reload did not swap")
	}
	if st := s.Status(); st.LastError != "" || len(st.Files) != 1 {
		t.Errorf("status after a good reload: %+v; want no error and the file", st)
	}
}

// The Gemeindeverband key of a kreisfreie Stadt (146120000) is the city as its
// Kreis key is (docs/directory.md, Operator files): in one file, two offices for
// the two keys contradict each other.
func TestGemeindeverbandKeyOfKreisfreieStadtIsTheCity(t *testing.T) {
	_, err := withOverlays(t, `
offices:
  - {id: dd-gewerbe, name: "Landeshauptstadt Dresden, Gewerbeamt", kanaele: [{kind: mailbox}]}
  - {id: dd-other, name: "Landeshauptstadt Dresden, Bürgeramt", kanaele: [{kind: mailbox}]}
responsibilities:
  - {leistung: "`+keyGewerbe+`", gebiet: "14612", stelle: dd-gewerbe}
  - {leistung: "`+keyGewerbe+`", gebiet: "146120000", stelle: dd-other}
`)
	var de *DataError
	if !errors.As(err, &de) || de.Line != 7 || !strings.Contains(de.Msg, "line 6") {
		t.Errorf("two offices for Dresden's Kreis and Gemeindeverband keys in one file: %v; want the contradiction named at lines 7 and 6", err)
	}
}

// An operator's office is refused with its file and line where the gateway could
// not use it: an id with '/', '?', '#' or a space (it is a path segment of the
// pull API and the mailbox), a channel level outside 1..4 (the maturity levels),
// a parent that no file defines.
func TestOfficeErrorsAreRefused(t *testing.T) {
	for _, tc := range []struct{ office, want string }{
		{`{id: "dd/gewerbe", name: X, kanaele: [{kind: mailbox}]}`, `office id "dd/gewerbe"`},
		{`{id: "dd gewerbe", name: X, kanaele: [{kind: mailbox}]}`, `office id "dd gewerbe"`},
		{`{id: dd-gewerbe, name: X, kanaele: [{kind: webhook, level: 5, endpoint: "https://x.example"}]}`, "channel webhook level 5 out of range 1..4"},
		{`{id: dd-gewerbe, name: X, parent: nowhere, kanaele: [{kind: mailbox}]}`, `unknown parent "nowhere"`},
	} {
		_, err := withOverlays(t, "offices:\n  - "+tc.office+"\n")
		var de *DataError
		if !errors.As(err, &de) || de.Line != 2 || !strings.Contains(de.Msg, tc.want) {
			t.Errorf("office %s: %v; want %q at line 2", tc.office, err, tc.want)
		}
	}
}

// TestLoadFileThatIsMissingSaysSoOnce: a directory file named in the
// configuration that is not there stopped the start with "FILE: open: open
// FILE: no such file or directory" — the path twice, "open" twice. Now once,
// and the cause is still found by errors.Is.
func TestLoadFileThatIsMissingSaysSoOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zustaendigkeiten.yaml")
	_, err := LoadFile(path)
	if want := path + ": cannot open: no such file or directory"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrInvalidData) {
		t.Errorf("%v: not found as fs.ErrNotExist and ErrInvalidData", err)
	}
}
