package routing

import (
	"bytes"
	"errors"
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
