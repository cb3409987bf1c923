package paket

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/pakete from the builders")

func samplesDir(t testing.TB) string { return filepath.Join(testenv.RepoRoot(t), "testdata", "pakete") }

// invalidSamples are broken on purpose; the HTTP layer's tests can use them. The key is
// the error class Parse or Scan must report.
func invalidSamples(t testing.TB) map[string][]byte {
	ex := ExampleWith(testLeika, testMsgID, testTime)
	good := string(ex.Marshal())

	digest := ExampleWith(testLeika, testMsgID, testTime)
	digest.Anlagen[0].SHA256 = strings.Repeat("0", 63) + "1"

	leika := ExampleWith("98000000000000", testMsgID, testTime)

	unknown := readRoot(t, ex.Marshal())
	child(unknown, "Kopf").CreateElement("Prioritaet").SetText("hoch")

	return map[string][]byte{
		"422-anlage-digest.xml":       digest.Marshal(),
		"422-leika-schluessel.xml":    leika.Marshal(),
		"422-unbekanntes-element.xml": marshalRoot(t, unknown),
		"400-doctype.xml":             []byte(strings.Replace(good, "?>", `?><!DOCTYPE Antragspaket [<!ENTITY x "x">]>`, 1)),
		"413-zu-tief.xml": []byte(strings.Replace(good, "</Fachdaten>",
			`<t:Tief xmlns:t="urn:tief">`+strings.Repeat("<t:e>", 80)+strings.Repeat("</t:e>", 80)+`</t:Tief></Fachdaten>`, 1)),
	}
}

func validSamples() map[string][]byte {
	ex := ExampleWith(testLeika, testMsgID, testTime)
	return map[string][]byte{
		"amt24-beispiel.xml":        ex.Marshal(),
		"amt24-beispiel-anlage.pdf": ex.Anlagen[0].Inhalt,
		"voll-mit-cid-anlage.xml":   full().Marshal(),
		"json-fachdaten.xml":        jsonPaket().Marshal(),
		"gross-10k.xml":             Big(120, 1).Marshal(),
	}
}

// The committed samples are exactly what the builders produce (go test -run Samples
// -update rewrites them), and each one parses, or fails, as its name says.
func TestSamples(t *testing.T) {
	dir := samplesDir(t)
	files := validSamples()
	for name, b := range invalidSamples(t) {
		files[filepath.Join("ungueltig", name)] = b
	}
	if *update {
		if err := os.MkdirAll(filepath.Join(dir, "ungueltig"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%v (run go test ./paket -run TestSamples -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go test ./paket -run TestSamples -update", name)
		}
		if !strings.HasSuffix(name, ".xml") {
			continue
		}
		err = Scan(got, Limits{})
		var p *Paket
		if err == nil {
			p, err = Parse(readRoot(t, got), Limits{})
		}
		switch base := filepath.Base(name); {
		case !strings.Contains(name, "ungueltig"):
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if p.Kopf.Absender != ExampleSender {
				t.Errorf("%s: Absender %q", name, p.Kopf.Absender)
			}
		case strings.HasPrefix(base, "400-"):
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: want ErrMalformed, got %v", name, err)
			}
		case strings.HasPrefix(base, "413-"):
			if !errors.Is(err, ErrLimit) {
				t.Errorf("%s: want ErrLimit, got %v", name, err)
			}
		case strings.Contains(base, "digest"):
			if !errors.Is(err, ErrAttachmentDigest) || !errors.Is(err, ErrInvalidField) {
				t.Errorf("%s: want ErrAttachmentDigest, got %v", name, err)
			}
		case strings.HasPrefix(base, "422-"):
			if !errors.Is(err, ErrInvalidField) || errors.Is(err, ErrAttachmentDigest) {
				t.Errorf("%s: want ErrInvalidField, got %v", name, err)
			}
		default:
			t.Errorf("%s: name says no expected outcome", name)
		}
	}
}
