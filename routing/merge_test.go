package routing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An operator's group replaces an earlier record for the same service, area and role
// however the area is written: a group for "140000000000" (Land 14 padded to 12
// digits, the FIT-Connect form) left the built-in sample record for "14" in force,
// and the Apotheke packages of all Saxony went to the sample Landesdirektion.
func TestGroupReplacesRecordForAreaWrittenDifferently(t *testing.T) {
	const office = `
offices:
  - id: lds-real
    name: "Landesdirektion Sachsen (Betrieb)"
    kanaele: [{kind: mailbox, endpoint: lds-real}]
`
	for _, area := range []string{"14", "140000000000", " 140000000000 "} {
		d := withOverlay(t, office+`
gruppen:
  - {stelle: lds-real, gebiete: ["`+area+`"], leistungen: ["`+keyApotheke+`"]}
`)
		r, err := d.Resolve(keyApotheke, "Leipzig")
		if err != nil {
			t.Fatalf("gebiete [%q]: %v", area, err)
		}
		if r.Office.ID != "lds-real" {
			t.Errorf("gruppe gebiete [%q]: Apotheke in Leipzig -> %s (sample %v), want the operator's lds-real", area, r.Office.ID, r.Office.Sample)
		}
	}
	// A single record written padded replaces the built-in one too.
	d := withOverlay(t, office+`
responsibilities:
  - {leistung: "`+keyApotheke+`", gebiet: "140000000000", stelle: lds-real}
`)
	if r, err := d.Resolve(keyApotheke, "Leipzig"); err != nil || r.Office.ID != "lds-real" {
		t.Errorf("record gebiet 140000000000: %+v, %v; want lds-real", r, err)
	}
}

// Two records of one file that give the same service and area to different offices
// are refused at load, naming both lines: before, the later one won silently and the
// packages of Freiberg went to whichever office the typo named. Across files the later
// file still wins.
func TestContradictingRecordsInOneFileAreRefused(t *testing.T) {
	const offices = `offices:
  - {id: amt-a, name: "Amt A", kanaele: [{kind: mailbox}]}
  - {id: amt-b, name: "Amt B", kanaele: [{kind: mailbox}]}
`
	for _, tc := range []struct{ name, body, want string }{
		{"records", offices + `responsibilities:
  - {leistung: "` + keyGewerbe + `", gebiet: "` + arsFreiberg + `", stelle: amt-a}
  - {leistung: "` + keyGewerbe + `", gebiet: "` + arsFreiberg + `", stelle: amt-b}
`, "overlay.yaml:6: service " + keyGewerbe + " in area " + arsFreiberg + " (rolle zustaendig) goes to office amt-b here but to office amt-a at line 5"},
		{"padded area", offices + `responsibilities:
  - {leistung: "` + keyApotheke + `", gebiet: "14", stelle: amt-a}
  - {leistung: "` + keyApotheke + `", gebiet: "140000000000", stelle: amt-b}
`, "overlay.yaml:6: service " + keyApotheke + " in area 14 (rolle zustaendig) goes to office amt-b here but to office amt-a at line 5"},
		{"groups", offices + `gruppen:
  - {stelle: amt-a, gebiete: ["14522"], leistungen: ["` + keyWohngeld + `", "` + keyApotheke + `"]}
  - {stelle: amt-b, gebiete: ["14625", "145220000000"], leistungen: ["` + keyApotheke + `"]}
`, "overlay.yaml:6: service " + keyApotheke + " in area 14522 (rolle zustaendig) goes to office amt-b here but to office amt-a at line 5"},
		{"record and group", offices + `gruppen:
  - {stelle: amt-a, gebiete: ["14522"], leistungen: ["` + keyWohngeld + `"]}
responsibilities:
  - {leistung: "` + keyWohngeld + `", gebiet: "14522", stelle: amt-b}
`, "overlay.yaml:7: service " + keyWohngeld + " in area 14522 (rolle zustaendig) goes to office amt-b here but to office amt-a at line 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "overlay.yaml")
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := BuildWithFiles(builtinT(t), p)
			if !errors.Is(err, ErrInvalidData) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant ErrInvalidData with %q", err, tc.want)
			}
		})
	}
	// The same office twice, another role, or another file: no contradiction.
	d := withOverlay(t, offices+`responsibilities:
  - {leistung: "`+keyGewerbe+`", gebiet: "`+arsFreiberg+`", stelle: amt-a}
  - {leistung: "`+keyGewerbe+`", gebiet: "`+arsFreiberg+`", stelle: amt-a}
  - {leistung: "`+keyGewerbe+`", gebiet: "`+arsFreiberg+`", stelle: amt-b, rolle: mitwirkend}
gruppen:
  - {stelle: amt-a, gebiete: ["`+arsFreiberg+`"], leistungen: ["`+keyGewerbe+`"]}
`)
	if r, err := d.Resolve(keyGewerbe, arsFreiberg); err != nil || r.Office.ID != "amt-a" {
		t.Errorf("Freiberg: %+v, %v; want amt-a", r, err)
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	for p, office := range map[string]string{a: "amt-a", b: "amt-b"} {
		body := offices + `responsibilities:
  - {leistung: "` + keyGewerbe + `", gebiet: "` + arsFreiberg + `", stelle: ` + office + `}
`
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err := BuildWithFiles(builtinT(t), a, b)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := d.Resolve(keyGewerbe, arsFreiberg); err != nil || r.Office.ID != "amt-b" {
		t.Errorf("two files: Freiberg %+v, %v; want the later file's amt-b", r, err)
	}
}
