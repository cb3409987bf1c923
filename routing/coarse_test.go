package routing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// withOverlay is the built-in directory with one YAML overlay written to a temp file.
func withOverlay(t *testing.T, yaml string) *Directory {
	t.Helper()
	d, err := buildOverlay(t, yaml)
	if err != nil {
		t.Fatalf("BuildWithFiles: %v", err)
	}
	return d
}

// buildOverlay builds the built-in directory with yaml as the operator's file
// overlay.yaml, the name its errors give.
func buildOverlay(t *testing.T, yaml string) (*Directory, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "overlay.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return BuildWithFiles(builtinT(t), p)
}

// municipalitiesIn counts the municipalities whose ARS starts with prefix.
func municipalitiesIn(d *Directory, prefix string) int {
	n := 0
	for k, a := range d.areas {
		if a.Level == LevelGemeinde && strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// A Kreis or Land named for a municipal service cannot be routed: the citizen must say
// which municipality. The error lists all of them (largest first), and each resolves.
func TestCoarsePlaceAsksForMunicipality(t *testing.T) {
	d := builtinT(t)
	for _, tt := range []struct{ place, prefix, first string }{
		{"Landkreis Bautzen", "14625", "146250020020"},
		{"145220000000", "14522", "145220180180"},
		{"Land Sachsen", "14", "147130000000"},
	} {
		t.Run(tt.place, func(t *testing.T) {
			_, err := d.Resolve(keyWohnsitz, tt.place)
			var amb *AmbiguousPlaceError
			if !errors.As(err, &amb) || !errors.Is(err, ErrAmbiguousPlace) {
				t.Fatalf("err = %v, want an AmbiguousPlaceError", err)
			}
			if want := municipalitiesIn(d, tt.prefix); len(amb.Candidates) != want {
				t.Errorf("%d candidates, want the %d municipalities of %s", len(amb.Candidates), want, tt.prefix)
			}
			if amb.Candidates[0].ARS != tt.first {
				t.Errorf("first candidate %s, want the largest %s", amb.Candidates[0].ARS, tt.first)
			}
			for _, c := range amb.Candidates[:5] {
				if rt, err := d.ResolveArea(wohnsitzT(t, d), c); err != nil || rt.Office == nil {
					t.Errorf("candidate %s: %v", c.ARS, err)
				}
			}
			if len(err.Error()) > 2000 {
				t.Errorf("message of %d bytes; it should name the first candidates only", len(err.Error()))
			}
		})
	}
	// The area itself decides where its municipalities agree: a Kreis-level service.
	rt, err := d.Resolve(keyWohngeld, "Landkreis Bautzen")
	if err != nil || rt.Office == nil || rt.Office.ID != "kreis-14625" {
		t.Fatalf("Wohngeld in Landkreis Bautzen: %+v, %v", rt, err)
	}
}

func wohnsitzT(t *testing.T, d *Directory) *Service {
	t.Helper()
	s, ok := d.Service(keyWohnsitz)
	if !ok {
		t.Fatal("no Wohnsitz service")
	}
	return s
}

// A town that does a Kreis task itself (a Große Kreisstadt) makes its Kreis ambiguous
// for that task: a package naming only the Kreis must not go to the Landratsamt.
func TestCoarsePlaceWithOwnOfficeBelow(t *testing.T) {
	d := withOverlay(t, `
offices:
  - id: hoyerswerda-wohngeld
    name: "Stadt Hoyerswerda, Wohngeldstelle"
    kanaele: [{kind: mailbox}]
responsibilities:
  - {leistung: "`+keyWohngeld+`", gebiet: "146250240240", stelle: hoyerswerda-wohngeld}
`)
	if rt, err := d.Resolve(keyWohngeld, "Hoyerswerda"); err != nil || rt.Office.ID != "hoyerswerda-wohngeld" {
		t.Fatalf("Hoyerswerda: %+v, %v", rt, err)
	}
	_, err := d.Resolve(keyWohngeld, "Landkreis Bautzen")
	var amb *AmbiguousPlaceError
	if !errors.As(err, &amb) {
		t.Fatalf("Landkreis Bautzen: err = %v, want ambiguous (Hoyerswerda has its own office)", err)
	}
	// Other Kreise are unchanged.
	if rt, err := d.Resolve(keyWohngeld, "Landkreis Görlitz"); err != nil || rt.Office.ID != "kreis-14626" {
		t.Fatalf("Landkreis Görlitz: %+v, %v", rt, err)
	}
}

// The Kreis of a kreisfreie Stadt is the city: nothing to choose.
func TestKreisOfKreisfreieStadt(t *testing.T) {
	d := builtinT(t)
	for _, place := range []string{"ARS 14612", "14 6 12"} {
		rt, err := d.Resolve(keyWohnsitz, place)
		if err != nil || rt.Office == nil || rt.Office.ID != "gemeinde-"+arsDresden {
			t.Fatalf("%s: %+v, %v", place, rt, err)
		}
	}
}

// A gateway of another state (homeLands ["09"]) must not accept a Saxon place into the
// built-in sample offices: Saxony is another state's there, and its places go to
// Saxony's peer (a sample one where the operator's files name none; intake then
// asks the configuration for a peer gateway, see
// TestBuiltinHomeLandLeftOutGoesToItsPeer).
func TestSampleOfficesOnlyInHomeLands(t *testing.T) {
	d := withOverlay(t, `homeLands: ["09"]`)
	for _, place := range []string{"Leipzig", "Landkreis Bautzen", "Jahnatal"} {
		for _, key := range []string{keyWohnsitz, keyWohngeld, keyApotheke} {
			rt, err := d.Resolve(key, place)
			if err != nil || rt.Office != nil || rt.Peer == nil || rt.Peer.Land != "14" {
				t.Errorf("%s at %s: %s, %v; want Saxony's peer, no office", key, place, routeTo(rt), err)
			}
		}
	}
	// With a peer for Saxony the peer decides, as before.
	d = withOverlay(t, `
homeLands: ["09"]
peers:
  - {land: "14", name: Sachsen, gatewayId: gateway-sn, baseUrl: "https://gateway-sn.example"}
`)
	if rt, err := d.Resolve(keyWohnsitz, "Leipzig"); err != nil || rt.Peer == nil || rt.Peer.Land != "14" {
		t.Errorf("Leipzig with a Saxon peer: %+v, %v", rt, err)
	}
}

// Once an operator's file names the home lands, sample offices are no answer there
// either: a Saxon gateway that loaded its real data answered 201 for "Gewerbe
// anmelden, Döbeln" into the generated office gemeinde-145220080080, a mailbox no
// user belongs to. Without such a file (the demo) the sample offices still answer.
func TestSampleOfficesNoAnswerOnceOperatorNamesHomeLands(t *testing.T) {
	const doebeln = "145220080080"
	d := builtinT(t)
	if rt, err := d.Resolve(keyGewerbe, doebeln); err != nil || rt.Office == nil || !rt.Office.Sample {
		t.Fatalf("built-in data, Döbeln: %s, %v; want the generated sample office", routeTo(rt), err)
	}
	d = withOverlay(t, `
homeLands: ["14"]
offices:
  - {id: freiberg-gewerbeamt, name: "Stadt Freiberg, Gewerbeamt", kanaele: [{kind: mailbox}]}
responsibilities:
  - {leistung: "`+keyGewerbe+`", gebiet: "`+arsFreiberg+`", stelle: freiberg-gewerbeamt}
`)
	for _, tc := range []struct{ key, place string }{
		{keyGewerbe, doebeln},      // generated Gemeinde office
		{keyGewerbe, "Döbeln"},     // the same by name
		{keyWohngeld, "Leipzig"},   // generated Kreis office of a kreisfreie Stadt
		{keyApotheke, arsFreiberg}, // the sample Landesdirektion, at the Land
	} {
		if rt, err := d.Resolve(tc.key, tc.place); !errors.Is(err, ErrNoResponsibleOffice) {
			t.Errorf("%s at %s with the operator's homeLands [14]: %s, %v; want no responsible office", tc.key, tc.place, routeTo(rt), err)
		}
	}
	if rt, err := d.Resolve(keyGewerbe, arsFreiberg); err != nil || rt.Office.ID != "freiberg-gewerbeamt" {
		t.Errorf("Freiberg: %s, %v; want the operator's office", routeTo(rt), err)
	}
	// A real record of the built-in data (the Amt24 example office) still counts.
	if rt, err := d.Resolve(keyGewerbe, arsDresden); err != nil || rt.Office.ID != dresdenOffID {
		t.Errorf("Dresden: %s, %v; want %s", routeTo(rt), err, dresdenOffID)
	}
}

// TestNamesXMLCannotHoldAreRefused: an office, service or area name goes into
// the signed receipts; one with a character XML cannot hold (here a YAML "\v")
// made every receipt of the office unreadable. Loading refuses it, naming the file.
func TestNamesXMLCannotHoldAreRefused(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"office", "offices:\n  - {id: amt-x, name: \"Amt\\vX\", kanaele: [{kind: mailbox, endpoint: amt-x}]}\n"},
		{"service", "services:\n  - {key: \"99000000000123\", name: \"Antrag\\u0001\"}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := BuildWithFiles(builtinT(t), p)
			var de *DataError
			if !errors.As(err, &de) || !strings.Contains(de.Msg, "a character XML cannot hold") {
				t.Fatalf("err = %v, want a DataError about the character", err)
			}
		})
	}
}

// A homeLands entry that is no Land is an error with file and line, and a reload with
// it keeps the old directory.
func TestHomeLandsMustBeLaender(t *testing.T) {
	p := filepath.Join(t.TempDir(), "home.yaml")
	if err := os.WriteFile(p, []byte("# Bremen\nhomeLands: [\"14\", \"4\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := builtinT(t)
	st := NewStore(base)
	err := st.ReloadFiles(p)
	var de *DataError
	if !errors.As(err, &de) || de.File != p || de.Line != 2 || !strings.Contains(de.Msg, `"4"`) {
		t.Fatalf("err = %v (%+v), want %s:2 naming \"4\"", err, de, p)
	}
	if st.Current() != base {
		t.Fatal("a bad homeLands replaced the directory")
	}
}

// The postal abbreviations of a qualifier name the place that bears it, not every
// same-named place in a Kreis or Land that starts with the same letters.
func TestQualifierAbbreviationPrefersOwnName(t *testing.T) {
	d := builtinT(t)
	for place, want := range map[string]string{
		"Neustadt/Sa.":     "146280260260", // not also Neustadt/Vogtl. (in Sachsen) and Neustadt an der Orla (Saale-Orla-Kreis)
		"Neustadt i. Sa.":  "146280260260",
		"Neustadt (Sachs)": "146280260260",
		"Neustadt Sa":      "146280260260",
		"Halle Westfalen":  "057540012012",
	} {
		a, err := d.Place(place)
		if err != nil || a.ARS != want {
			t.Errorf("%s: %v, %v; want %s", place, a, err, want)
		}
	}
	// Words that only the Land has still narrow to the places in that Land.
	_, err := d.Place("Lichtenberg Sachsen")
	var amb *AmbiguousPlaceError
	if !errors.As(err, &amb) || len(amb.Candidates) != 2 {
		t.Fatalf("Lichtenberg Sachsen: %v, want the two Saxon Lichtenbergs", err)
	}
}

// An operator's record outside the home lands with the role mitwirkend (an
// Annahmestelle that only takes part) does not win over the peer: the responsible
// office is in the peer's state. Before, Apotheke in Altenburg went to the Saxon
// Annahmestelle although a real Thuringian peer was configured.
func TestOperatorMitwirkendRecordOutsideHomeLandsLeavesPeer(t *testing.T) {
	d := withOverlay(t, `
homeLands: ["14"]
offices:
  - {id: annahme-sn, name: "Annahmestelle Sachsen", kanaele: [{kind: mailbox}]}
responsibilities:
  - {leistung: "`+keyApotheke+`", gebiet: "16077", stelle: annahme-sn, rolle: mitwirkend}
peers:
  - {land: "16", name: Thüringen, gatewayId: gateway-th-real, baseUrl: "https://gateway.th.example"}
`)
	for _, place := range []string{"Altenburg", "Landkreis Altenburger Land"} {
		rt, err := d.Resolve(keyApotheke, place)
		if err != nil || rt.Peer == nil || rt.Peer.GatewayID != "gateway-th-real" {
			t.Errorf("Apotheke in %s: %s, %v; want the Thuringian peer", place, routeTo(rt), err)
		}
	}
}

// An operator's real record for a place in another state wins over that state's peer:
// by a state treaty one state's office serves a neighbour's area. Before, with
// homeLands set the peer answered first, even the built-in sample peer, and the
// record loaded without a word and was never used. Records of the built-in data
// still do not win over a configured peer (the Saxon data at another state's gateway).
func TestOperatorRecordOutsideHomeLandsWinsOverPeer(t *testing.T) {
	const body = `
homeLands: ["14"]
offices:
  - {id: lds-real, name: "Landesdirektion Sachsen", kanaele: [{kind: mailbox}]}
responsibilities:
  - {leistung: "` + keyApotheke + `", gebiet: "16077", stelle: lds-real}
  - {leistung: "` + keyWohngeld + `", gebiet: "160770028028", stelle: lds-real}
`
	const realPeer = `peers:
  - {land: "16", name: Thüringen, gatewayId: gateway-th-real, baseUrl: "https://gateway.th.example"}
`
	for _, peers := range []string{"", realPeer} {
		d := withOverlay(t, body+peers)
		peer := "gateway-th"
		if peers != "" {
			peer = "gateway-th-real"
		}
		for _, tc := range []struct{ key, place, want string }{
			{keyApotheke, "Altenburg", "lds-real"}, // in Kreis 16077
			{keyApotheke, "Landkreis Altenburger Land", "lds-real"},
			{keyApotheke, "Erfurt", "peer " + peer},    // Thüringen, not covered
			{keyWohngeld, "Lucka", "lds-real"},         // the municipality's record
			{keyWohngeld, "Altenburg", "peer " + peer}, // another municipality
			{keyGewerbe, "Altenburg", "peer " + peer},  // a service the record is not for
		} {
			rt, err := d.Resolve(tc.key, tc.place)
			got := routeTo(rt)
			if rt != nil && rt.Office != nil {
				got = rt.Office.ID
			}
			if err != nil || got != tc.want {
				t.Errorf("peers %q: %s at %s -> %s, %v; want %s", peers, tc.key, tc.place, got, err, tc.want)
			}
		}
		// A Kreis where only one municipality has the operator's office is too coarse.
		if _, err := d.Resolve(keyWohngeld, "ARS 16077"); !errors.Is(err, ErrAmbiguousPlace) {
			t.Errorf("peers %q: Wohngeld in Kreis 16077: %v; want the municipalities to choose from", peers, err)
		}
	}
	// The built-in data's real record (the Amt24 office in Dresden) does not win over
	// a Bavarian gateway's peer for Saxony.
	d := withOverlay(t, `
homeLands: ["09"]
peers:
  - {land: "14", name: Sachsen, gatewayId: gateway-sn, baseUrl: "https://gateway-sn.example"}
`)
	if rt, err := d.Resolve(keyGewerbe, arsDresden); err != nil || rt.Peer == nil || rt.Peer.GatewayID != "gateway-sn" {
		t.Errorf("Gewerbe in Dresden at a Bavarian gateway: %s, %v; want the Saxon peer", routeTo(rt), err)
	}
}

// A postcode several municipalities share is routed when every one of them has the
// same office for the service: Wohngeld at 01877 (five municipalities of Landkreis
// Bautzen, all with the Landratsamt) was refused as ambiguous, so the citizen had to
// pick a municipality that changed nothing. The route names the Kreis, not a guessed
// municipality. A municipal service there still asks.
func TestSharedPostcodeWithOneOfficeIsRouted(t *testing.T) {
	d := builtinT(t)
	cands, err := d.Places("01877")
	if err != nil || len(cands) < 2 {
		t.Fatalf("01877: %d candidates, %v", len(cands), err)
	}
	rt, err := d.Resolve(keyWohngeld, "01877")
	if err != nil {
		t.Fatalf("Wohngeld at 01877: %v", err)
	}
	for _, c := range cands {
		one, err := d.ResolveArea(wohngeldT(t, d), c)
		if err != nil || one.Office != rt.Office {
			t.Errorf("%s: %s, %v; the shared postcode went to %s", c.Name, routeTo(one), err, routeTo(rt))
		}
	}
	if rt.Area == nil || rt.Area.Key != "14625" {
		t.Errorf("Wohngeld at 01877: area %+v, want Kreis 14625 (Landkreis Bautzen)", rt.Area)
	}
	if _, err := d.Resolve(keyWohnsitz, "01877"); !errors.Is(err, ErrAmbiguousPlace) {
		t.Errorf("Wohnsitz anmelden at 01877: %v; want the municipalities to choose from", err)
	}
}

func wohngeldT(t *testing.T, d *Directory) *Service {
	t.Helper()
	s, ok := d.Service(keyWohngeld)
	if !ok {
		t.Fatal("no Wohngeld")
	}
	return s
}

// A shared postcode in another state stays ambiguous even when every candidate goes to
// that state's peer: "to the peer" only means this directory has no office there. The
// Bavarian gateway gives Oberhaching, Grünwald and Straßlach (82064) each its own
// Einwohnermeldeamt, so a package forwarded for "Landkreis München" was refused there
// after intake had acknowledged it. The candidates are the citizen's choice.
func TestSharedForeignPostcodeStaysAmbiguous(t *testing.T) {
	d := builtinT(t)
	cands, err := d.Places("82064")
	if err != nil || len(cands) < 2 {
		t.Fatalf("82064: %d candidates, %v", len(cands), err)
	}
	for _, c := range cands {
		if rt, err := d.ResolveArea(wohnsitzT(t, d), c); err != nil || rt.Peer == nil {
			t.Fatalf("%s: %s, %v; want the Bavarian peer", c.Name, routeTo(rt), err)
		}
	}
	rt, err := d.Resolve(keyWohnsitz, "82064")
	var amb *AmbiguousPlaceError
	if !errors.As(err, &amb) || len(amb.Candidates) != len(cands) {
		t.Errorf("Wohnsitz anmelden at 82064: %s, %v; want the %d municipalities to choose from", routeTo(rt), err, len(cands))
	}
	// 82131 lies in two Kreise; merged it became Oberbayern, which a peer serving
	// only one of the Kreise does not take: no-responsible-office without candidates.
	if rt, err := d.Resolve(keyWohnsitz, "82131"); !errors.Is(err, ErrAmbiguousPlace) {
		t.Errorf("Wohnsitz anmelden at 82131: %s, %v; want the municipalities to choose from", routeTo(rt), err)
	}
}

// An operator's record that restates the built-in office and role for one Kreis
// changes no answer: Apotheke in "ARS 14" stays with the Landesdirektion. The operator
// flag made the two records two assignments, and sameBelow compared those, so the Land
// became ambiguous over 400 municipalities that all have the same office.
func TestOperatorRecordRestatingBuiltinOfficeKeepsLandRouted(t *testing.T) {
	d := builtinT(t)
	before, err := d.Resolve(keyApotheke, "ARS 14")
	if err != nil || before.Office == nil {
		t.Fatalf("built-in: Apotheke in Sachsen: %s, %v", routeTo(before), err)
	}
	d = withOverlay(t, `responsibilities:
  - {leistung: "`+keyApotheke+`", gebiet: "14625", stelle: `+before.Office.ID+`}
`)
	rt, err := d.Resolve(keyApotheke, "ARS 14")
	if err != nil || rt.Office == nil || rt.Office.ID != before.Office.ID || rt.Role != before.Role {
		t.Errorf("with the operator's record for Kreis 14625: Apotheke in Sachsen -> %s, %v; want %s", routeTo(rt), err, routeTo(before))
	}
}

// A gateway whose operator names other home lands (homeLands ["09"], Bavaria) takes
// the built-in directory's own state, Saxony, for another state's: its places go to
// Saxony's peer, and the built-in Saxon records are no answer there, real or
// sample. Before, the built-in data had no peer for its own state, so a Saxon place
// at a Bavarian gateway found no peer: the built-in record of the Amt24 office
// answered Gewerbe anmelden in Dresden (a 201 into a mailbox of the Bavarian
// gateway that no Saxon office reads), and every other Saxon place was refused
// although the configuration had a peer gateway for Saxony.
func TestBuiltinHomeLandLeftOutGoesToItsPeer(t *testing.T) {
	d := withOverlay(t, `homeLands: ["09"]`)
	p, ok := d.Peer("14")
	if !ok || !p.Sample || p.Name != "Sachsen" {
		t.Fatalf("peer for Saxony: %+v %v; want a sample peer named Sachsen", p, ok)
	}
	for _, tc := range []struct{ key, place string }{
		{keyGewerbe, arsDresden}, // the built-in real record of the Amt24 office
		{keyGewerbe, "Dresden"},
		{keyGewerbe, "ARS 14612"},
		{"99999001000000", "01067"},
		{keyWohnsitz, "Leipzig"}, // generated sample offices
		{keyWohngeld, "Landkreis Bautzen"},
		{keyApotheke, arsFreiberg}, // the sample Landesdirektion, at the Land
	} {
		rt, err := d.Resolve(tc.key, tc.place)
		if err != nil || rt.Office != nil || rt.Peer != p {
			t.Errorf("%s at %s: %s, %v; want Saxony's peer", tc.key, tc.place, routeTo(rt), err)
		}
	}
	// The operator's own records for a Saxon place still win over that sample
	// peer, as over any sample peer (rule 8): a responsible office, and one that
	// only takes part.
	d = withOverlay(t, `
homeLands: ["09"]
offices:
  - {id: by-treaty, name: "Bayerisches Amt (Staatsvertrag)", kanaele: [{kind: mailbox}]}
responsibilities:
  - {leistung: "`+keyGewerbe+`", gebiet: "14612", stelle: by-treaty}
  - {leistung: "`+keyWohnsitz+`", gebiet: "147130000000", stelle: by-treaty, rolle: mitwirkend}
`)
	for _, tc := range []struct{ key, place string }{{keyGewerbe, "Dresden"}, {keyWohnsitz, "Leipzig"}} {
		if rt, err := d.Resolve(tc.key, tc.place); err != nil || rt.Office == nil || rt.Office.ID != "by-treaty" {
			t.Errorf("%s at %s: %s, %v; want the operator's by-treaty", tc.key, tc.place, routeTo(rt), err)
		}
	}
	if rt, err := d.Resolve(keyWohnsitz, "Chemnitz"); err != nil || rt.Peer == nil || rt.Peer.Land != "14" {
		t.Errorf("Wohnsitz in Chemnitz: %s, %v; want Saxony's peer", routeTo(rt), err)
	}
	// An operator's peer for Saxony is the one; a Saxon gateway keeps Saxony home.
	d = withOverlay(t, `
homeLands: ["09"]
peers:
  - {land: "14", name: Sachsen, gatewayId: gateway-sn-real, baseUrl: "https://gateway-sn.example"}
`)
	if rt, err := d.Resolve(keyGewerbe, "Dresden"); err != nil || rt.Peer == nil || rt.Peer.GatewayID != "gateway-sn-real" {
		t.Errorf("with the operator's peer: %s, %v", routeTo(rt), err)
	}
	d = withOverlay(t, `homeLands: ["14", "09"]`)
	if _, ok := d.Peer("14"); ok {
		t.Error("a peer for Saxony where Saxony is a home land")
	}
	if rt, err := d.Resolve(keyGewerbe, "Dresden"); err != nil || rt.Office == nil || rt.Office.ID != dresdenOffID {
		t.Errorf("Saxony at home: %s, %v; want %s", routeTo(rt), err, dresdenOffID)
	}
}

// A LeiKa key this directory does not know, at a place in a state it is not
// authoritative for, goes to that state's peer: the peer's directory is the one
// that must know the service (Länder have service keys and catalogue entries of
// their own), and refuses it if it does not. Rule 1 refused it before the place was
// looked at. A key unknown here at a home-land place, or at a place that is not one
// (unknown, malformed, or several places of which one is here), stays
// ErrUnknownService; a malformed key stays ErrInvalidQuery, before the place.
func TestUnknownServiceAtAnotherStatesPlaceGoesToItsPeer(t *testing.T) {
	const unknown = "99123456789012"
	d := builtinT(t)
	if _, ok := d.Service(unknown); ok {
		t.Fatalf("%s is in the built-in directory", unknown)
	}
	for _, place := range []string{"091620000000", "München", "80331", "ARS 09162", "Landkreis München", "Land Bayern"} {
		rt, err := d.Resolve(unknown, place)
		if err != nil || rt.Peer == nil || rt.Peer.Land != "09" || rt.Office != nil || !rt.ServiceUnknown ||
			rt.Service == nil || rt.Service.Key != unknown || len(rt.Channels) != 1 || rt.Channels[0].Kind != KindPeer {
			t.Errorf("%s at %q: %+v, %v; want the Bavarian peer, service unknown here", unknown, place, rt, err)
			continue
		}
		if rt2, err := d.ResolveAreaKey(unknown, rt.Area); err != nil || rt2.Peer != rt.Peer || !rt2.ServiceUnknown {
			t.Errorf("ResolveAreaKey at %s: %+v, %v", rt.Area.Key, rt2, err)
		}
	}
	// Places in other states only: the citizen chooses, as for a known service.
	for _, place := range []string{"Frankfurt", "Halle", "82064"} {
		if _, err := d.Resolve(unknown, place); !errors.Is(err, ErrAmbiguousPlace) {
			t.Errorf("%s at %q: %v; want the places to choose from", unknown, place, err)
		}
	}
	for _, place := range []string{"146120000000", "Dresden", "01067", "ARS 14612", "Land Sachsen",
		"Eppendorf", "Lichtenberg", // a Saxon place among the candidates
		"Atlantis", "123", ""} {
		if rt, err := d.Resolve(unknown, place); !errors.Is(err, ErrUnknownService) {
			t.Errorf("%s at %q: %s, %v; want ErrUnknownService", unknown, place, routeTo(rt), err)
		}
	}
	dresden, _ := d.Area(arsDresden)
	if _, err := d.ResolveAreaKey(unknown, dresden); !errors.Is(err, ErrUnknownService) {
		t.Errorf("ResolveAreaKey at Dresden: %v; want ErrUnknownService", err)
	}
	for _, key := range []string{"9912345", "991234567890123", "99x23456789012"} {
		if _, err := d.Resolve(key, "München"); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%q at München: %v; want ErrInvalidQuery", key, err)
		}
	}
	// A known service is routed as before.
	if rt, err := d.Resolve(keyGewerbe, "München"); err != nil || rt.Peer == nil || rt.ServiceUnknown || rt.Service.Name == "" {
		t.Errorf("Gewerbe at München: %+v, %v", rt, err)
	}
	// At a Bavarian gateway Bavaria is home and Saxony another state.
	d = withOverlay(t, `homeLands: ["09"]`)
	if rt, err := d.Resolve(unknown, "München"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("%s at München, Bavaria at home: %s, %v; want ErrUnknownService", unknown, routeTo(rt), err)
	}
	if rt, err := d.Resolve(unknown, "Leipzig"); err != nil || rt.Peer == nil || rt.Peer.Land != "14" || !rt.ServiceUnknown {
		t.Errorf("%s at Leipzig, Saxony another state: %s, %v; want Saxony's peer", unknown, routeTo(rt), err)
	}
}

// A Kreis of another state where only some municipalities have records of their
// own is too coarse also at a gateway whose operator set no homeLands: those
// municipalities keep their records, the others go to the peer, and the Kreis
// asks which municipality. Before, the check ran only in the homeLands path, and
// "ARS 16077" sent Wohngeld for Lucka, which has its own office, to Thuringia's
// peer with the rest of the Kreis.
func TestCoarseForeignKreisWithoutHomeLands(t *testing.T) {
	d := withOverlay(t, `
offices:
  - {id: lucka-amt, name: "Stadt Lucka", kanaele: [{kind: mailbox}]}
responsibilities:
  - {leistung: "`+keyWohngeld+`", gebiet: "160770028028", stelle: lucka-amt}
`)
	if rt, err := d.Resolve(keyWohngeld, "Lucka"); err != nil || rt.Office == nil || rt.Office.ID != "lucka-amt" {
		t.Errorf("Wohngeld in Lucka: %s, %v; want its own office", routeTo(rt), err)
	}
	if rt, err := d.Resolve(keyWohngeld, "Altenburg"); err != nil || rt.Peer == nil {
		t.Errorf("Wohngeld in Altenburg: %s, %v; want Thuringia's peer", routeTo(rt), err)
	}
	for _, tc := range []struct{ place, prefix string }{
		{"ARS 16077", "16077"}, {"Landkreis Altenburger Land", "16077"}, {"160770000000", "16077"}, {"Land Thüringen", "16"},
	} {
		rt, err := d.Resolve(keyWohngeld, tc.place)
		var amb *AmbiguousPlaceError
		if !errors.As(err, &amb) {
			t.Errorf("Wohngeld in %q: %s, %v; want the municipalities to choose from", tc.place, routeTo(rt), err)
			continue
		}
		if want := municipalitiesIn(d, tc.prefix); len(amb.Candidates) != want {
			t.Errorf("Wohngeld in %q: %d candidates, want all %d municipalities", tc.place, len(amb.Candidates), want)
		}
	}
	// A Kreis none of whose municipalities has a record still goes to the peer.
	if rt, err := d.Resolve(keyWohngeld, "ARS 16076"); err != nil || rt.Peer == nil {
		t.Errorf("Wohngeld in Kreis 16076: %s, %v; want Thuringia's peer", routeTo(rt), err)
	}
}
