package routing

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// Every parser of outside input must return a value or an error, never panic; an
// error must be a DataError so the caller can show file and line.

func FuzzParseYAML(f *testing.F) {
	f.Add([]byte("services:\n  - key: \"99050012104000\"\n    name: X\n"))
	f.Add([]byte("responsibilities:\n  - {leistung: \"1\", gebiet: \"14\", stelle: x}\n"))
	f.Add([]byte("generate:\n  - {ebene: gemeinde, land: \"14\"}\n"))
	f.Add([]byte("- just\n- a list\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("postcodes: {\"01067\": [\"146120000000\"]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := ParseYAML("f.yaml", bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalidData) {
				t.Fatalf("error is not ErrInvalidData: %v", err)
			}
			return
		}
		_, _ = Build(src) // validation of arbitrary records must not panic either
	})
}

func FuzzParseXZuFi(f *testing.F) {
	f.Add([]byte(`<schreibe><leistung><leistungsschluessel>99050012104000</leistungsschluessel><bezeichnung>X</bezeichnung></leistung></schreibe>`))
	f.Add([]byte(`<schreibe><zustaendigkeit><leistungID>a</leistungID></zustaendigkeit></schreibe>`))
	f.Add([]byte(`<schreibe><organisationseinheit><id>o</id><name>O</name><zustellkanal><art>mailbox</art><reifegrad>x</reifegrad></zustellkanal></organisationseinheit></schreibe>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>`))
	f.Add([]byte(`not xml`))
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := ParseXZuFi("f.xml", bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalidData) {
				t.Fatalf("error is not ErrInvalidData: %v", err)
			}
			return
		}
		_, _ = Build(src)
	})
}

func FuzzParsePlaces(f *testing.F) {
	f.Add([]byte("A\t14\t\tSachsen\t\nA\t146120000000\t14612000\tDresden, Stadt\t1\nP\t01067\t146120000000\n"))
	f.Add([]byte("P\t01067\t999\n"))
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := ParsePlaces("f.tsv", bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalidData) {
				t.Fatalf("error is not ErrInvalidData: %v", err)
			}
			return
		}
		_, _ = Build(src)
	})
}

// FuzzQueries feeds arbitrary user input to everything a request reaches.
func FuzzQueries(f *testing.F) {
	d, err := Builtin()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"01067", "Dresden", "dresden, stadt", "0", "146120000000", "14612000", "14", "01067 Dresden", "ß", "Mängel", "\xff\xfe", strings.Repeat("ä", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		_, _ = d.Resolve(keyGewerbe, q)
		_, _ = d.Resolve(q, arsDresden)
		_, _ = d.FindService(q)
		for _, h := range d.SearchPlaces(q, 5) {
			if h.Area == nil {
				t.Fatal("nil area")
			}
		}
		if len(d.SearchServices(q, 5)) > 5 {
			t.Fatal("limit")
		}
		_ = fold(q)
	})
}

// FuzzPlaceQuery feeds arbitrary text to the place query parser and the resolver that
// uses it: a parse is well-formed (keys are digits of a key's length, a postcode has 5
// digits and a name), Place and Places agree, and errors are the package's sentinels.
func FuzzPlaceQuery(f *testing.F) {
	d, err := Builtin()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"Bautzen", "Landkreis Bautzen", "LK Görlitz", "Kamenz", "Weisswasser", "Halle", "Frankfurt a.M.",
		"Halle an der Saale", "Neustadt Sachsen", "01877 Bischofswerda", "Bischofswerda (01877)", "D-01067 Dresden",
		"14 6 25 0020 020", "14-625-020", "14 6 25", "ARS 146250020020", "AGS: 14625020", "PLZ 01067", "ARS 1",
		"urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs:146120000000", "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:",
		"Stadt", "Land Sachsen", "Regierungsbezirk", "a.d.", "(", "X (", "/ /", "01067 ", " (01067)", "St. Ingbert", "Burgstädt",
		"a\u0308", "ß", "\xff", strings.Repeat("9", 200), strings.Repeat("ä ", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := parsePlaceQuery(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("parse error %v is not ErrInvalidQuery", err)
			}
		} else {
			switch q.kind {
			case qKey:
				if !isDigits(q.digits) || !slices.Contains([]int{2, 3, 5, 9, 12}, len(q.digits)) {
					t.Fatalf("key %q", q.digits)
				}
			case qAGS:
				if !isDigits(q.digits) || len(q.digits) != 8 {
					t.Fatalf("AGS %q", q.digits)
				}
			case qPostcode:
				if !isDigits(q.digits) || len(q.digits) != 5 {
					t.Fatalf("postcode %q", q.digits)
				}
			case qPostcodeName:
				if !isDigits(q.digits) || len(q.digits) != 5 || strings.TrimSpace(q.name) == "" {
					t.Fatalf("postcode and name %q %q", q.digits, q.name)
				}
			case qName:
				if strings.TrimSpace(q.name) == "" {
					t.Fatal("empty name")
				}
			}
		}
		cands, perr := d.Places(s)
		a, err := d.Place(s)
		var amb *AmbiguousPlaceError
		switch {
		case perr != nil:
			if !errors.Is(perr, ErrUnknownPlace) && !errors.Is(perr, ErrInvalidQuery) {
				t.Fatalf("Places error %v", perr)
			}
			// Place may still take a key by its fast path; otherwise it fails alike.
			if err == nil && len(s) != 12 && len(s) != 8 {
				t.Fatalf("Place found %v where Places failed: %v", a, perr)
			}
		case len(cands) == 0:
			t.Fatal("no candidates and no error")
		case len(cands) == 1:
			if err != nil || a != cands[0] {
				t.Fatalf("Place = %v, %v; Places = %v", a, err, cands)
			}
		default:
			if !errors.As(err, &amb) || len(amb.Candidates) != len(cands) {
				t.Fatalf("Place = %v, %v; Places = %d candidates", a, err, len(cands))
			}
		}
		if q.kind == qPostcode && perr == nil {
			for _, c := range cands {
				if !slices.Contains(c.Postcodes, q.digits) {
					t.Fatalf("%s lacks postcode %s", c.Name, q.digits)
				}
			}
		}
		if r, err := d.Resolve(keyWohngeld, s); err == nil && (r.Area == nil || len(r.Channels) == 0) {
			t.Fatalf("route %+v", r)
		}
	})
}
