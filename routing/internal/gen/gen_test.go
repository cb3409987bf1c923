package gen

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func codeList(rows ...[3]string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><gc:CodeList xmlns:gc="http://docs.oasis-open.org/codelist/ns/genericode/1.0/"><SimpleCodeList>`)
	for _, r := range rows {
		b.WriteString(`<Row><Value ColumnRef="SCHLUESSEL"><SimpleValue>` + r[0] + `</SimpleValue></Value><Value ColumnRef="Bezeichnung"><SimpleValue>` + r[1] + `</SimpleValue></Value>`)
		if r[2] == "" {
			b.WriteString(`<Value ColumnRef="Hinweis"/>`)
		} else {
			b.WriteString(`<Value ColumnRef="Hinweis"><SimpleValue>` + r[2] + `</SimpleValue></Value>`)
		}
		b.WriteString(`</Row>`)
	}
	b.WriteString(`</SimpleCodeList></gc:CodeList>`)
	return b.String()
}

// writeShared lays out a tiny ../shared/data with the same file names as the real one.
func writeShared(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"codelists/Regionalschluessel_2026-04-30.xml": codeList(
			[3]string{"146120000000", "Dresden, Stadt", ""},
			[3]string{"145220275275", "Jahnatal", ""},
			[3]string{"145225102060", "Burgstädt, Stadt", ""},
			[3]string{"145210035035", "Aue-Bad Schlema, Stadt", ""},
			[3]string{"145210036036", "Wiesen-Aue", ""},
			[3]string{"021010101101", "Hamburg-Altstadt, OT 101", "Stadt-/Ortsteil bzw. Stadtbezirk"},
			// Districts of a city: the name alone and after the city's; one named like a
			// Kreis and no municipality only after the city's.
			[3]string{"146120001001", "Neustadt, OT 1", "Stadt-/Ortsteil bzw. Stadtbezirk"},
			[3]string{"146120002002", "Mittelsachsen, OT 2", "Stadt-/Ortsteil bzw. Stadtbezirk"}),
		"codelists/AGS_2026-04-30.xml":        codeList([3]string{"14612000", "Dresden, Stadt", ""}, [3]string{"14522275", "Jahnatal", ""}),
		"codelists/Kreis_2026-01-31.xml":      codeList([3]string{"14612", "Dresden, Stadt", ""}, [3]string{"14522", "Mittelsachsen", ""}, [3]string{"14521", "Erzgebirgskreis", ""}, [3]string{"99999", "Alt", "Stadt-/Ortsteil bzw. Stadtbezirk"}),
		"codelists/Bundesland_2010-04-01.xml": codeList([3]string{"14", "Sachsen", ""}),
		"gv/AuszugGV4QAktuell.csv": "\ufeffsatzart,textkennzeichen,land,rb,kreis,vb,gemeinde,gemeindename,flaeche,bevoelkerung\n" +
			"50,50,14,6,12,0000,,\"Dresden, Stadt\",,\n" +
			"60,61,14,6,12,0000,000,\"Dresden, Stadt\", 328.48, 556 227\n" +
			"40,44,14,5,22,,,Mittelsachsen,,\n" +
			"60,64,14,5,22,0450,450,Ostrau, 51.40, 3 400\n" +
			"60,64,14,5,22,0620,620,Zschaitz-Ottewig, 20.10, 1 100\n" +
			"60,63,14,5,22,5999,060,\"Burgstädt, Stadt\", 20.10, 10 643\n" + // an older Gemeindeverband key: found by AGS
			"40,44,14,5,21,,,Erzgebirgskreis,,\n" +
			"60,63,14,5,21,0035,035,\"Aue-Bad Schlema, Stadt\", 20.10, 20 000\n" +
			"60,64,14,5,21,0036,036,Wiesen-Aue, 20.10, 1 000\n",
		"plz/zuordnung_plz_ort_landkreis.csv": "osm_id,ags,ort,plz,landkreis,bundesland\n" +
			"1,14612000,Dresden,01067,,Sachsen\n" +
			"2,14522450,Ostrau,04749,Landkreis Mittelsachsen,Sachsen\n" +
			"3,14522999,Verschwunden,04999,Landkreis Mittelsachsen,Sachsen\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRun(t *testing.T) {
	shared := writeShared(t)
	out := t.TempDir()
	var log bytes.Buffer
	res, err := Run(context.Background(), Config{SharedData: shared, OutDir: out, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if res.Municipalities != 5 || res.Postcodes != 2 {
		t.Errorf("result %+v", res)
	}
	f, err := os.Open(res.File)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	text := string(body)
	for _, want := range []string{
		"A\t146120000000\t14612000\tDresden, Stadt\t556227\tkreisfreie Stadt\n",
		"A\t145220275275\t14522275\tJahnatal\t4500\tGemeinde\n", // population of Ostrau and Zschaitz-Ottewig
		"A\t145220275\t\tJahnatal\t\tEinheitsgemeinde\n",        // Einheitsgemeinde names its own Gemeindeverband
		"A\t145225102060\t14522060\tBurgstädt, Stadt\t10643\tStadt\n",
		"A\t14522\t\tMittelsachsen\t\tLandkreis\n",
		"A\t14612\t\tDresden, Stadt\t\tkreisfreie Stadt\n",
		"A\t14\t\tSachsen\t\tLand\n",
		"P\t01067\t146120000000\n",
		"P\t04749\t145220275275\n",  // Ostrau's postcode moved to Jahnatal
		"N\t145220275275\tOstrau\n", // and its name finds Jahnatal
		"N\t145220275275\tZschaitz-Ottewig\n",
		"N\t146120000000\tDresden-Mittelsachsen\n",
		"N\t146120000000\tDresden-Neustadt\n",
		"N\t146120000000\tNeustadt\n",
		"N\t145210035035\tAue\n", // the towns in a double name
		"N\t145210035035\tBad Schlema\n",
		"OpenStreetMap contributors, ODbL",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	for _, unwanted := range []string{"Hamburg-Altstadt", "99999", "04999", "N\t146120000000\tMittelsachsen\n", "N\t145210036036\t"} {
		if strings.Contains(text, unwanted) {
			t.Errorf("output has %q", unwanted)
		}
	}
	if !strings.Contains(log.String(), "14522999") {
		t.Errorf("dropped postcode not reported: %s", log.String())
	}
	// Same input, same bytes: the committed file only changes when the data does.
	first, _ := os.ReadFile(res.File)
	if _, err := Run(context.Background(), Config{SharedData: shared, OutDir: out}); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(res.File)
	if !bytes.Equal(first, second) {
		t.Error("output is not reproducible")
	}
}

func TestRunMissingSource(t *testing.T) {
	if _, err := Run(context.Background(), Config{SharedData: t.TempDir(), OutDir: t.TempDir()}); err == nil {
		t.Fatal("no error for missing sources")
	}
}
