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
		t.Errorf("record gebiet 140000000000: %s, %v; want lds-real", routeTo(r), err)
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
			_, err := buildOverlay(t, tc.body)
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
		t.Errorf("Freiberg: %s, %v; want amt-a", routeTo(r), err)
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
		t.Errorf("two files: Freiberg %s, %v; want the later file's amt-b", routeTo(r), err)
	}
}

// Several offices for one service and area that are no contradiction load: two
// mitwirkend offices in a YAML file (two Annahmestellen), and an XZuFi export in which
// two Organisationseinheiten are both zustaendig (several Bürgerämter, the normal
// shape of a PVOG export), where the later record wins as before the check. Both
// files were refused, so the gateway did not start or reload.
func TestSeveralOfficesForOneServiceAndAreaLoad(t *testing.T) {
	write := func(name, body string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	y := write("overlay.yaml", `offices:
  - {id: annahme-a, name: "Annahmestelle A", kanaele: [{kind: mailbox}]}
  - {id: annahme-b, name: "Annahmestelle B", kanaele: [{kind: mailbox}]}
responsibilities:
  - {leistung: "`+keyWohngeld+`", gebiet: "`+arsFreiberg+`", stelle: annahme-a, rolle: mitwirkend}
  - {leistung: "`+keyWohngeld+`", gebiet: "`+arsFreiberg+`", stelle: annahme-b, rolle: mitwirkend}
gruppen:
  - {stelle: annahme-a, gebiete: ["14522"], leistungen: ["`+keyApotheke+`"], rolle: mitwirkend}
  - {stelle: annahme-b, gebiete: ["14522"], leistungen: ["`+keyApotheke+`"], rolle: mitwirkend}
`)
	if _, err := BuildWithFiles(builtinT(t), y); err != nil {
		t.Errorf("two mitwirkend offices: %v", err)
	}
	x := write("export.xml", `<?xml version="1.0" encoding="UTF-8"?>
<xzufi:schreibe xmlns:xzufi="http://xoev.de/schemata/xzufi/2_2_0">
  <xzufi:organisationseinheit><xzufi:id>ba-1</xzufi:id><xzufi:name>Bürgeramt 1</xzufi:name>
    <xzufi:zustellkanal><xzufi:art>mailbox</xzufi:art><xzufi:adresse>ba-1</xzufi:adresse></xzufi:zustellkanal></xzufi:organisationseinheit>
  <xzufi:organisationseinheit><xzufi:id>ba-2</xzufi:id><xzufi:name>Bürgeramt 2</xzufi:name>
    <xzufi:zustellkanal><xzufi:art>mailbox</xzufi:art><xzufi:adresse>ba-2</xzufi:adresse></xzufi:zustellkanal></xzufi:organisationseinheit>
  <xzufi:zustaendigkeit><xzufi:leistungsschluessel>`+keyWohnsitz+`</xzufi:leistungsschluessel>
    <xzufi:gebietID>`+arsFreiberg+`</xzufi:gebietID><xzufi:organisationseinheitID>ba-1</xzufi:organisationseinheitID></xzufi:zustaendigkeit>
  <xzufi:zustaendigkeit><xzufi:leistungsschluessel>`+keyWohnsitz+`</xzufi:leistungsschluessel>
    <xzufi:gebietID>`+arsFreiberg+`</xzufi:gebietID><xzufi:organisationseinheitID>ba-2</xzufi:organisationseinheitID></xzufi:zustaendigkeit>
</xzufi:schreibe>`)
	d, err := BuildWithFiles(builtinT(t), x)
	if err != nil {
		t.Fatalf("XZuFi export with two zustaendig offices: %v", err)
	}
	if r, err := d.Resolve(keyWohnsitz, arsFreiberg); err != nil || r.Office == nil || r.Office.ID != "ba-2" {
		t.Errorf("Wohnsitz in Freiberg: %s, %v; want ba-2, the later record", routeTo(r), err)
	}
}

// A role is zustaendig or mitwirkend, however it is written ("zuständig", "Zustaendig",
// with spaces); anything else is refused at load with file and line. Before, a role
// the resolver did not know counted as "not responsible": the operator's record for
// Dresden loaded without a word and Gewerbe anmelden still went to the old office.
func TestRoleSpellingsAndUnknownRoles(t *testing.T) {
	const office = `offices:
  - {id: dd-gewerbeamt, name: "Stadt Dresden, Gewerbeamt", kanaele: [{kind: mailbox}]}
`
	for _, role := range []string{"zustaendig", "zuständig", "Zustaendig", " ZUSTÄNDIG ", "zusta\u0308ndig", ""} {
		for _, form := range []string{
			"responsibilities:\n  - {leistung: \"" + keyGewerbe + "\", gebiet: \"" + arsDresden + "\", stelle: dd-gewerbeamt, rolle: \"" + role + "\"}\n",
			"gruppen:\n  - {stelle: dd-gewerbeamt, gebiete: [\"" + arsDresden + "\"], leistungen: [\"" + keyGewerbe + "\"], rolle: \"" + role + "\"}\n",
		} {
			d := withOverlay(t, office+form)
			r, err := d.Resolve(keyGewerbe, arsDresden)
			if err != nil || r.Office.ID != "dd-gewerbeamt" || r.Role != "zustaendig" {
				t.Errorf("rolle %q in %.16s: %s, %v; want dd-gewerbeamt (zustaendig)", role, form, routeTo(r), err)
			}
		}
	}
	for _, tc := range []struct{ name, body, want string }{
		{"yaml record", office + "responsibilities:\n  - {leistung: \"" + keyGewerbe + "\", gebiet: \"" + arsDresden + "\", stelle: dd-gewerbeamt, rolle: verantwortlich}\n",
			`overlay.yaml:4: responsibility: rolle "verantwortlich": want zustaendig or mitwirkend`},
		{"yaml group", office + "gruppen:\n  - {stelle: dd-gewerbeamt, gebiete: [\"" + arsDresden + "\"], leistungen: [\"" + keyGewerbe + "\"], rolle: Ansprechpunkt}\n",
			`overlay.yaml:4: gruppe: rolle "Ansprechpunkt": want zustaendig or mitwirkend`},
	} {
		p := filepath.Join(t.TempDir(), "overlay.yaml")
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := BuildWithFiles(builtinT(t), p); !errors.Is(err, ErrInvalidData) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// XZuFi: a role as text is read like the YAML's; a role as a code element (rolle/code,
// as PVOG's transfer objects write it) is refused with file and line, since amtsbote
// has no code list to map it. Before, its empty text made every such record
// zustaendig, and a contact point listed after the responsible office replaced it.
func TestXZuFiRoles(t *testing.T) {
	xz := func(rolle1, rolle2 string) string {
		return `<?xml version="1.0" encoding="UTF-8"?>
<xzufi:schreibe xmlns:xzufi="http://xoev.de/schemata/xzufi/2_2_0">
  <xzufi:organisationseinheit><xzufi:id>amt</xzufi:id><xzufi:name>Gewerbeamt</xzufi:name>
    <xzufi:zustellkanal><xzufi:art>mailbox</xzufi:art><xzufi:adresse>amt</xzufi:adresse></xzufi:zustellkanal></xzufi:organisationseinheit>
  <xzufi:organisationseinheit><xzufi:id>info</xzufi:id><xzufi:name>Bürgerbüro</xzufi:name>
    <xzufi:zustellkanal><xzufi:art>mailbox</xzufi:art><xzufi:adresse>info</xzufi:adresse></xzufi:zustellkanal></xzufi:organisationseinheit>
  <xzufi:zustaendigkeit><xzufi:leistungsschluessel>` + keyGewerbe + `</xzufi:leistungsschluessel>
    <xzufi:gebietID>` + arsFreiberg + `</xzufi:gebietID><xzufi:organisationseinheitID>amt</xzufi:organisationseinheitID>
    <xzufi:rolle>` + rolle1 + `</xzufi:rolle></xzufi:zustaendigkeit>
  <xzufi:zustaendigkeit><xzufi:leistungsschluessel>` + keyGewerbe + `</xzufi:leistungsschluessel>
    <xzufi:gebietID>` + arsFreiberg + `</xzufi:gebietID><xzufi:organisationseinheitID>info</xzufi:organisationseinheitID>
    <xzufi:rolle>` + rolle2 + `</xzufi:rolle></xzufi:zustaendigkeit>
</xzufi:schreibe>`
	}
	load := func(body string) (*Directory, error) {
		p := filepath.Join(t.TempDir(), "export.xml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return BuildWithFiles(builtinT(t), p)
	}
	d, err := load(xz(" Zuständig ", "mitwirkend"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := d.Resolve(keyGewerbe, arsFreiberg); err != nil || r.Office.ID != "amt" {
		t.Errorf("text roles: %s, %v; want amt", routeTo(r), err)
	}
	_, err = load(xz("<code>01</code>", "<code>02</code>"))
	if want := `export.xml:7: zustaendigkeit: rolle given as code "01"`; !errors.Is(err, ErrInvalidData) || !strings.Contains(err.Error(), want) {
		t.Errorf("coded roles: err = %v, want %q", err, want)
	}
	_, err = load(xz("zustaendig", "Ansprechpunkt"))
	if want := `export.xml:10: zustaendigkeit: rolle "Ansprechpunkt": want zustaendig or mitwirkend`; !errors.Is(err, ErrInvalidData) || !strings.Contains(err.Error(), want) {
		t.Errorf("unknown role: err = %v, want %q", err, want)
	}
	// The role given by its name element is read like the text; one that maps to no
	// role, or a child the reader does not know, is refused. Before, both read as the
	// empty text, zustaendig: the contact point became the responsible office.
	d, err = load(xz("<name>zuständig</name>", "<name>Mitwirkend</name>"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := d.Resolve(keyGewerbe, arsFreiberg); err != nil || r.Office.ID != "amt" {
		t.Errorf("named roles: %s, %v; want amt", routeTo(r), err)
	}
	for _, tc := range []struct{ rolle, want string }{
		{"<name>Ansprechpunkt</name>", `export.xml:10: zustaendigkeit: rolle "Ansprechpunkt": want zustaendig or mitwirkend`},
		{"<bezeichnung>Ansprechpunkt</bezeichnung>", `export.xml:10: zustaendigkeit: rolle has element <bezeichnung>`},
		{"<name></name>", `export.xml:10: zustaendigkeit: rolle/name is empty`},
	} {
		_, err = load(xz("zustaendig", tc.rolle))
		if !errors.Is(err, ErrInvalidData) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rolle %s: err = %v, want %q", tc.rolle, err, tc.want)
		}
	}
}

// routeTo says where a route goes, for test messages.
func routeTo(r *Route) string {
	switch {
	case r == nil:
		return "no route"
	case r.Peer != nil:
		return "peer " + r.Peer.GatewayID
	case r.Office != nil:
		return r.Office.ID + " (" + r.Role + ") for " + r.Area.Key
	}
	return "nowhere"
}

// withOverlays is the built-in directory with YAML overlays, in order (later files
// win), written to temp files; the error of BuildWithFiles is returned.
func withOverlays(t *testing.T, yamls ...string) (*Directory, error) {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i, y := range yamls {
		p := filepath.Join(dir, "overlay"+string(rune('a'+i))+".yaml")
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return BuildWithFiles(builtinT(t), paths...)
}

// An operator's record for a kreisfreie Stadt under its Kreis key is a record for
// the city (rule 7: the Kreis of a kreisfreie Stadt is the city). A record with
// gebiet "14612" did not replace the built-in Amt24 office, held under the
// municipality key 146120000000: the resolver climbs from the municipality and
// found the built-in record first, so Gewerbe anmelden in Dresden kept going to
// the office the operator had replaced. The keys of the city (municipality,
// Gemeindeverband, Kreis) are one area for records now, whichever is written.
func TestKreisKeyOfKreisfreieStadtReplacesTheCitysRecord(t *testing.T) {
	const office = `
offices:
  - {id: dd-gewerbe, name: "Landeshauptstadt Dresden, Gewerbeamt", kanaele: [{kind: mailbox}]}
  - {id: dd-other, name: "Landeshauptstadt Dresden, Bürgeramt", kanaele: [{kind: mailbox}]}
`
	places := []string{"Dresden", arsDresden, "01067", "14612000", "ARS 14612", "ARS 146120000"}
	for _, gebiet := range []string{"14612", "146120000", "146120000000", "146120000000 "} {
		d, err := withOverlays(t, office+`
responsibilities:
  - {leistung: "`+keyGewerbe+`", gebiet: "`+gebiet+`", stelle: dd-gewerbe}
`)
		if err != nil {
			t.Fatal(err)
		}
		for _, place := range places {
			if rt, err := d.Resolve(keyGewerbe, place); err != nil || rt.Office == nil || rt.Office.ID != "dd-gewerbe" {
				t.Errorf("gebiet %q: Gewerbe at %q -> %s, %v; want the operator's dd-gewerbe", gebiet, place, routeTo(rt), err)
			}
		}
	}
	// A group names the city by its Kreis key too.
	d, err := withOverlays(t, office+`
gruppen:
  - {stelle: dd-gewerbe, gebiete: ["14612"], leistungen: ["`+keyGewerbe+`"]}
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, place := range places {
		if rt, err := d.Resolve(keyGewerbe, place); err != nil || rt.Office == nil || rt.Office.ID != "dd-gewerbe" {
			t.Errorf("group for 14612: Gewerbe at %q -> %s, %v; want the operator's dd-gewerbe", place, routeTo(rt), err)
		}
	}
	// Across files the later one wins, in both orders of the two spellings.
	for _, keys := range [][2]string{{"146120000000", "14612"}, {"14612", "146120000000"}} {
		d, err := withOverlays(t,
			office+`responsibilities: [{leistung: "`+keyGewerbe+`", gebiet: "`+keys[0]+`", stelle: dd-other}]`,
			office+`responsibilities: [{leistung: "`+keyGewerbe+`", gebiet: "`+keys[1]+`", stelle: dd-gewerbe}]`)
		if err != nil {
			t.Fatal(err)
		}
		for _, place := range places {
			if rt, err := d.Resolve(keyGewerbe, place); err != nil || rt.Office == nil || rt.Office.ID != "dd-gewerbe" {
				t.Errorf("%s then %s: Gewerbe at %q -> %s, %v; want the later file's dd-gewerbe", keys[0], keys[1], place, routeTo(rt), err)
			}
		}
	}
	// Within one file the two spellings for different offices contradict each other.
	_, err = withOverlays(t, office+`
responsibilities:
  - {leistung: "`+keyGewerbe+`", gebiet: "14612", stelle: dd-gewerbe}
  - {leistung: "`+keyGewerbe+`", gebiet: "146120000000", stelle: dd-other}
`)
	var de *DataError
	if !errors.As(err, &de) || de.Line != 8 || !strings.Contains(de.Msg, "line 7") {
		t.Errorf("two offices for the city in one file: %v; want the contradiction named at lines 8 and 7", err)
	}
	// Another state's kreisfreie Stadt, at a gateway without the operator's
	// homeLands (the peer answers where no record does): a record under the city's
	// municipality key was not found from its Kreis key, and the package went to
	// the peer.
	for _, gebiet := range []string{"16051", "160510000000"} {
		d, err := withOverlays(t, `
offices:
  - {id: erfurt-wohngeld, name: "Stadt Erfurt, Wohngeldstelle", kanaele: [{kind: mailbox}]}
responsibilities:
  - {leistung: "`+keyWohngeld+`", gebiet: "`+gebiet+`", stelle: erfurt-wohngeld}
`)
		if err != nil {
			t.Fatal(err)
		}
		for _, place := range []string{"Erfurt", "160510000000", "ARS 16051"} {
			if rt, err := d.Resolve(keyWohngeld, place); err != nil || rt.Office == nil || rt.Office.ID != "erfurt-wohngeld" {
				t.Errorf("gebiet %q: Wohngeld at %q -> %s, %v; want erfurt-wohngeld", gebiet, place, routeTo(rt), err)
			}
		}
	}
}

// "This Kreis is a kreisfreie Stadt" has one reading (kreisfreieStaedte): its only
// municipality is kreis+"0000000". It was read two ways, and they disagreed in
// two cases an operator's file can make (the built-in places have neither):
//   - a file that restates the city's area (here with its figure): merging
//     counted the area twice, so the city was no city while its records merged,
//     and two offices for its Kreis and its municipality key in one file loaded,
//     the later silently winning; the response table folded them all the same;
//   - a file that adds a second municipality to the city's Kreis: merging and
//     the table no longer took the Kreis for the city, but the generated sample
//     offices still did, and the new municipality's Kreis tasks (Wohngeld) went
//     to the Stadtverwaltung Dresden sample office instead of the Kreis's.
func TestOneReadingOfKreisfreieStadt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "overlay.yaml")
	body := `areas:
  - {ars: "` + arsDresden + `", name: "Dresden, Stadt", einwohner: 556780}
offices:
  - {id: amt-a, name: "Amt A", kanaele: [{kind: mailbox}]}
  - {id: amt-b, name: "Amt B", kanaele: [{kind: mailbox}]}
responsibilities:
  - {leistung: "` + keyGewerbe + `", gebiet: "14612", stelle: amt-a}
  - {leistung: "` + keyGewerbe + `", gebiet: "` + arsDresden + `", stelle: amt-b}
`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := BuildWithFiles(builtinT(t), p)
	if want := "overlay.yaml:8: service " + keyGewerbe + " in area 14612 (rolle zustaendig) goes to office amt-b here but to office amt-a at line 7"; !errors.Is(err, ErrInvalidData) || !strings.Contains(err.Error(), want) {
		t.Errorf("city's area restated, two offices for its keys: %v\nwant ErrInvalidData with %q", err, want)
	}

	d := withOverlay(t, `areas:
  - {ars: "146120000001", name: "Neudorf", einwohner: 10}
`)
	for _, place := range []string{"146120000001", arsDresden, "ARS 14612"} {
		if rt, err := d.Resolve(keyWohngeld, place); err != nil || rt.Office == nil || rt.Office.ID != "kreis-14612" {
			t.Errorf("Wohngeld at %s in a Kreis of two municipalities: %s, %v; want the Kreis's sample office kreis-14612", place, routeTo(rt), err)
		}
	}
	// The built-in places: the city's Kreis is the city, for the sample offices too.
	if rt, err := builtinT(t).Resolve(keyWohngeld, "ARS 14612"); err != nil || rt.Office == nil || rt.Office.ID != "gemeinde-"+arsDresden {
		t.Errorf("Wohngeld in ARS 14612: %s, %v; want the city's office", routeTo(rt), err)
	}
}
