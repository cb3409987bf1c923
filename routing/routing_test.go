package routing

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

const (
	keyGewerbe   = "99050012104000"
	keyWohnsitz  = "99115005104000"
	keyWohngeld  = "99107023037000"
	keyApotheke  = "99004002005000"
	keyMaengel   = "99999001000000" // only Dresden has an office for it
	arsDresden   = "146120000000"
	arsJahnatal  = "145220275275"
	arsFreiberg  = "145220180180"
	dresdenOffID = "dresden-allgemeine-verwaltung"
)

func builtinT(t testing.TB) *Directory {
	t.Helper()
	d, err := Builtin()
	if err != nil {
		t.Fatalf("Builtin: %v", err)
	}
	return d
}

// repoFile finds a file relative to the repository root (the folder with go.mod).
func repoFile(t testing.TB, rel string) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Dir(self)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, rel)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above %s", self)
		}
		dir = parent
	}
}

func TestBuiltinPlaces(t *testing.T) {
	d := builtinT(t)
	c := d.Counts()
	if c.Municipalities < 10900 || c.Postcodes < 8000 {
		t.Fatalf("counts too small for all of Germany: %+v", c)
	}
	saxony := 0
	for _, a := range d.areas {
		if a.Level == LevelGemeinde && a.Land() == "14" {
			saxony++
		}
	}
	if saxony != 418 {
		t.Errorf("Saxon municipalities = %d, want 418 (2026 list)", saxony)
	}
	for _, k := range []string{"14511", "14521", "14522", "14523", "14524", "14612", "14625", "14626", "14627", "14628", "14713", "14729", "14730"} {
		if a, ok := d.Area(k); !ok || a.Level != LevelKreis {
			t.Errorf("Kreis %s missing", k)
		}
	}
	j, ok := d.Area(arsJahnatal)
	if !ok || j.Name != "Jahnatal" || j.AGS != "14522275" {
		t.Fatalf("Jahnatal: %+v %v", j, ok)
	}
	if j.Parent == nil || j.Parent.Key != "145220275" {
		t.Errorf("Jahnatal's Gemeindeverband: %+v", j.Parent)
	}
	// The merged municipalities are gone as areas; their names find Jahnatal. The
	// city states' districts find their city, or are asked about where a
	// municipality bears the name too.
	for q, want := range map[string]string{"Spandau": "110000000000", "Berlin-Spandau": "110000000000",
		"Hamburg-Harburg": "020000000000", "St. Pauli": "020000000000", "Vegesack": "040110000000"} {
		if a, err := d.Place(q); err != nil || a.ARS != want {
			t.Errorf("district %s: %v %v, want %s", q, a, err, want)
		}
	}
	if _, err := d.Place("Harburg"); !errors.Is(err, ErrAmbiguousPlace) {
		t.Errorf("Harburg (Hamburg's Bezirk, and Harburg (Schwaben)): %v, want ambiguous", err)
	}
	if a, err := d.Place("Osterholz"); err != nil || a.Key != "03356" {
		t.Errorf("Osterholz, a Kreis and a district of Bremen: %v %v, want the Kreis", a, err)
	}
	for _, gone := range []string{"Ostrau", "Zschaitz-Ottewig"} {
		if a, err := d.Place(gone); err != nil || a.ARS != arsJahnatal {
			t.Errorf("predecessor %s: %v %v, want Jahnatal", gone, a, err)
		}
	}
	// The postcode of former Ostrau now leads to Jahnatal.
	as, err := d.Places("04749")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range as {
		found = found || a.Key == arsJahnatal
	}
	if !found {
		t.Errorf("04749 does not reach Jahnatal: %v", as)
	}
}

func TestResolve(t *testing.T) {
	d := builtinT(t)
	tests := []struct {
		name, key, place string
		office           string // office id, or "peer:LL"
		matched          string // ARS key the responsibility was found at
	}{
		// The record for the kreisfreie Stadt (146120000000 in saxony.yaml) is held
		// under its Kreis key (cityKey), the same ARS.
		{"Dresden office by postcode", keyGewerbe, "01067", dresdenOffID, "14612"},
		{"Dresden office by ARS", keyGewerbe, arsDresden, dresdenOffID, "14612"},
		{"Dresden office by AGS", keyGewerbe, "14612000", dresdenOffID, "14612"},
		{"Dresden office by name", keyGewerbe, "Dresden", dresdenOffID, "14612"},
		{"Dresden office by official name", keyGewerbe, "dresden, stadt", dresdenOffID, "14612"},
		{"postcode and name", keyGewerbe, "01067 Dresden", dresdenOffID, "14612"},
		{"municipal service elsewhere", keyWohnsitz, arsFreiberg, "gemeinde-" + arsFreiberg, arsFreiberg},
		{"Jahnatal exists", keyWohnsitz, arsJahnatal, "gemeinde-" + arsJahnatal, arsJahnatal},
		{"climb to Kreis", keyWohngeld, arsFreiberg, "kreis-14522", "14522"},
		{"kreisfreie Stadt does Kreis tasks itself", keyWohngeld, arsDresden, "gemeinde-" + arsDresden, "14612"},
		{"climb to Land", keyApotheke, arsFreiberg, "landesdirektion-sachsen", "14"},
		{"Kreis as place climbs from the Kreis", keyWohngeld, "145220000000", "kreis-14522", "14522"},
		{"other state by postcode", keyGewerbe, "70173", "peer:08", "08"},
		{"other state by ARS", keyWohngeld, "091620000000", "peer:09", "09"},
		{"Berlin", keyGewerbe, "10115", "peer:11", "11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := d.Resolve(tt.key, tt.place)
			if err != nil {
				t.Fatalf("Resolve(%s, %s): %v", tt.key, tt.place, err)
			}
			got := ""
			if r.Peer != nil {
				got = "peer:" + r.Peer.Land
				if r.Office != nil || len(r.Channels) != 1 || r.Channels[0].Kind != KindPeer {
					t.Errorf("peer route: %+v", r)
				}
			} else {
				got = r.Office.ID
			}
			if got != tt.office {
				t.Errorf("office = %s, want %s", got, tt.office)
			}
			if r.MatchedArea == nil || r.MatchedArea.Key != tt.matched || r.MatchedArea.ARS != (tt.matched + "000000000000")[:12] {
				t.Errorf("matched at %+v, want %s", r.MatchedArea, tt.matched)
			}
			if len(r.Channels) == 0 {
				t.Fatal("no channels")
			}
			last := r.Channels[len(r.Channels)-1]
			if r.Peer == nil && last.Kind != KindMailbox {
				t.Errorf("mailbox must be the last channel: %+v", r.Channels)
			}
			for i := 1; i < len(r.Channels)-1; i++ {
				if r.Channels[i].Level > r.Channels[i-1].Level {
					t.Errorf("channels not ordered by maturity: %+v", r.Channels)
				}
			}
		})
	}
}

func TestResolveDresdenOffice(t *testing.T) {
	d := builtinT(t)
	r, err := d.Resolve(keyGewerbe, "Dresden")
	if err != nil {
		t.Fatal(err)
	}
	o := r.Office
	if o.Name != "Stadt Dresden, Abt. Allgemeine Verwaltung/Grundsatz" || o.Street.Street != "Junghansstraße 2" ||
		o.Street.Postcode != "01277" || o.Postal.Postfach != "12 00 20" || o.Postal.Postcode != "01001" || o.Sample {
		t.Errorf("Dresden office: %+v", o)
	}
	want := []Channel{{KindWebhook, 3, "https://fachverfahren.dresden.example/amtsbote/webhook"}, {KindMailbox, 1, dresdenOffID}}
	if len(r.Channels) != 2 || r.Channels[0] != want[0] || r.Channels[1] != want[1] {
		t.Errorf("channels = %+v", r.Channels)
	}
}

func TestResolveErrors(t *testing.T) {
	d := builtinT(t)
	tests := []struct {
		name, key, place string
		want             error
	}{
		{"malformed key", "123", arsDresden, ErrInvalidQuery},
		{"unknown service", "99999999999999", arsDresden, ErrUnknownService},
		{"unknown ARS", keyGewerbe, "149990000000", ErrUnknownPlace},
		{"unknown postcode", keyGewerbe, "00000", ErrUnknownPlace},
		{"unknown name", keyGewerbe, "Atlantis", ErrUnknownPlace},
		{"empty place", keyGewerbe, "  ", ErrInvalidQuery},
		{"odd number", keyGewerbe, "1234567", ErrInvalidQuery},
		{"ambiguous name", keyGewerbe, "Neuenkirchen", ErrAmbiguousPlace},
		{"ambiguous postcode", keyGewerbe, "01561", ErrAmbiguousPlace},
		// A Kreis for a municipal service: which municipality? (TestCoarsePlace)
		{"Kreis-level place for a municipal service", keyWohnsitz, "145220000000", ErrAmbiguousPlace},
		{"no office anywhere in the Kreis", keyMaengel, "145220000000", ErrNoResponsibleOffice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Resolve(tt.key, tt.place)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAmbiguousListsCandidates(t *testing.T) {
	d := builtinT(t)
	_, err := d.Resolve(keyGewerbe, "01561")
	var amb *AmbiguousPlaceError
	if !errors.As(err, &amb) {
		t.Fatalf("err = %v", err)
	}
	if len(amb.Candidates) < 2 {
		t.Fatalf("candidates = %v", amb.Candidates)
	}
	for _, c := range amb.Candidates {
		if c.Level != LevelGemeinde || !contains(c.Postcodes, "01561") {
			t.Errorf("candidate %s does not have 01561", c.Name)
		}
		// Choosing one of the candidates resolves.
		if _, err := d.Resolve(keyGewerbe, c.ARS); err != nil {
			t.Errorf("candidate %s: %v", c.ARS, err)
		}
	}
	if !strings.Contains(err.Error(), amb.Candidates[0].Name) {
		t.Errorf("message does not name the candidates: %v", err)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestFold(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Mängel", "mangel"},
		{"Maengel", "mangel"},
		{"MANGEL", "mangel"},
		{"Straße", "strasse"},
		{"Dresden, Stadt", "dresden stadt"},
		{"  Görlitz  ", "gorlitz"},
		{"Sächsische Schweiz-Osterzgebirge", "sachsische schweiz osterzgebirge"},
		{"Budyšin", "budysin"},
		{"Běła Woda", "bela woda"},
		{"Chóśebuz", "chosebuz"},
		{"Ra\u0308cknitz", "racknitz"}, // decomposed umlaut
		{"WEISSWASSER", "weisswasser"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := fold(tt.in); got != tt.want {
			t.Errorf("fold(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// A prefix of a word folds to a prefix of the folded word (search as you type).
	for _, w := range []string{"Müllrose", "Querfurt", "Gößnitz", "Aachen"} {
		full := fold(w)
		rs := []rune(w)
		for i := 1; i <= len(rs); i++ {
			if p := fold(string(rs[:i])); !strings.HasPrefix(full, p) {
				t.Errorf("fold(%q) = %q is not a prefix of %q", string(rs[:i]), p, full)
			}
		}
	}
}

func TestSearchPlaces(t *testing.T) {
	d := builtinT(t)
	tests := []struct {
		q, first string
	}{
		{"dresden", "Dresden, Stadt"},
		{"DRESDEN", "Dresden, Stadt"},
		{"Dresd", "Dresden, Stadt"},
		{"goerlitz", "Görlitz, Stadt, Hochschulstadt"},
		{"görlitz", "Görlitz, Stadt, Hochschulstadt"},
		{"leipzig", "Leipzig, Stadt"},
		{"jahna", "Jahnatal"},
		{"muenchen", "München, Landeshauptstadt"},
		{"Gross", ""}, // many; only checks no panic and a limit
	}
	for _, tt := range tests {
		hits := d.SearchPlaces(tt.q, 5)
		if len(hits) > 5 {
			t.Errorf("%q: %d hits over limit", tt.q, len(hits))
		}
		if tt.first == "" {
			continue
		}
		if len(hits) == 0 || hits[0].Area.Name != tt.first {
			t.Errorf("SearchPlaces(%q) first = %v, want %s", tt.q, hits, tt.first)
		}
	}
	hits := d.SearchPlaces("0106", 20)
	if len(hits) == 0 {
		t.Fatal("postcode prefix found nothing")
	}
	for _, h := range hits {
		if !strings.HasPrefix(h.Postcode, "0106") {
			t.Errorf("postcode hit %+v", h)
		}
	}
	if hits := d.SearchPlaces("01067", 5); len(hits) != 1 || hits[0].Area.Key != arsDresden {
		t.Errorf("01067: %+v", hits)
	}
	// Same-named places are told apart by their Kreis.
	labels := map[string]bool{}
	for _, h := range d.SearchPlaces("neuenkirchen", 10) {
		if labels[h.Label] {
			t.Errorf("two hits with the label %q", h.Label)
		}
		labels[h.Label] = true
	}
	for _, q := range []string{"", "   ", "???", strings.Repeat("a", 300), "zzzzzz"} {
		if hits := d.SearchPlaces(q, 5); len(hits) != 0 {
			t.Errorf("SearchPlaces(%q) = %v", q, hits)
		}
	}
}

func TestSearchServices(t *testing.T) {
	d := builtinT(t)
	tests := []struct{ q, want string }{
		{"Gewerbe anmelden", keyGewerbe},
		{"gewerbeanmeldung", keyGewerbe},
		{"Perso", "99008001012000"},
		{"wohngeld", keyWohngeld},
		{"Fuehrungszeugnis", "99049001001000"},
		{"Hund anmelden", "99102013104000"},
		{"hund abmelden", "99102013070000"},
		{"9905001210", keyGewerbe},
		{"Heiraten", "99059001104000"},
	}
	for _, tt := range tests {
		hits := d.SearchServices(tt.q, 3)
		if len(hits) == 0 || hits[0].Service.Key != tt.want {
			t.Errorf("SearchServices(%q) = %+v, want %s first", tt.q, hits, tt.want)
		}
	}
	if hits := d.SearchServices("a", 2); len(hits) > 2 {
		t.Errorf("limit ignored: %d", len(hits))
	}
	s, err := d.FindService("Gewerbe anmelden")
	if err != nil || s.Key != keyGewerbe {
		t.Errorf("FindService: %v %v", s, err)
	}
	if _, err := d.FindService("beantragen"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("FindService(beantragen) = %v, want ambiguous (ErrUnknownService)", err)
	}
	var amb *AmbiguousServiceError
	if _, err := d.FindService("beantragen"); !errors.As(err, &amb) || len(amb.Candidates) < 2 {
		t.Errorf("want AmbiguousServiceError, got %v", err)
	}
}

func TestServiceKeysAreSourced(t *testing.T) {
	d := builtinT(t)
	if n := len(d.Services()); n < 25 {
		t.Errorf("only %d services", n)
	}
	for _, s := range d.Services() {
		if !strings.HasPrefix(s.Key, "99") || len(s.Key) != 14 {
			t.Errorf("%s: not a LeiKa key", s.Key)
		}
		if strings.TrimSpace(s.Source) == "" {
			t.Errorf("%s %s: no source for the key", s.Key, s.Name)
		}
	}
	for _, o := range []string{"kreis-14522", "gemeinde-" + arsJahnatal, "landesdirektion-sachsen"} {
		off, ok := d.Office(o)
		if !ok || !off.Sample {
			t.Errorf("office %s must exist and be marked sample: %+v", o, off)
		}
	}
	for _, p := range d.Peers() {
		if !p.Sample || !strings.HasPrefix(p.BaseURL, "https://gateway.") {
			t.Errorf("peer %+v must be a marked sample", p)
		}
	}
	if len(d.Peers()) != 15 {
		t.Errorf("peers = %d, want 15", len(d.Peers()))
	}
}

func TestImportErrorsNameFileAndLine(t *testing.T) {
	base := builtinT(t)
	dir := t.TempDir()
	tests := []struct {
		name, file, body string
		wantLine         int
		wantMsg          string
	}{
		{"unknown office", "a.yaml", "responsibilities:\n  - {leistung: \"99050012104000\", gebiet: \"14612\", stelle: dresden-allgemeine-verwaltung}\n  - {leistung: \"99050012104000\", gebiet: \"14522\", stelle: nope}\n", 3, "unknown office"},
		{"unknown field", "b.yaml", "services:\n  - key: \"99050012104000\"\n    nmae: x\n", 3, "nmae"},
		{"bad key", "c.yaml", "services:\n  - key: \"123\"\n    name: X\n", 2, "14 digits"},
		{"bad channel", "d.yaml", "offices:\n  - id: x\n    name: X\n    kanaele: [{kind: fax}]\n", 2, "unknown channel kind"},
		{"unknown area", "e.yaml", "responsibilities:\n  - {leistung: \"99050012104000\", gebiet: \"14999\", stelle: dresden-allgemeine-verwaltung}\n", 2, "unknown area"},
		{"yaml syntax", "f.yaml", "services: [\n", 0, ""},
		{"xml not well-formed", "g.xml", "<schreibe>\n<leistung>\n</schreibe>\n", 3, "not well-formed"},
		{"xml unknown leistung id", "h.xml", "<schreibe>\n<zustaendigkeit>\n<leistungID>L9</leistungID>\n</zustaendigkeit>\n</schreibe>\n", 2, "leistungID"},
		{"xml office without channel", "i.xml", "<schreibe>\n  <organisationseinheit><id>o1</id><name>O</name></organisationseinheit>\n</schreibe>\n", 2, "no delivery channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.file)
			if err := os.WriteFile(p, []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := BuildWithFiles(base, p)
			if !errors.Is(err, ErrInvalidData) {
				t.Fatalf("err = %v, want ErrInvalidData", err)
			}
			if !strings.Contains(err.Error(), tt.file) {
				t.Errorf("error does not name the file: %v", err)
			}
			if tt.wantLine > 0 && !strings.Contains(err.Error(), tt.file+":"+itoa(tt.wantLine)) {
				t.Errorf("error does not name line %d: %v", tt.wantLine, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
	if _, err := BuildWithFiles(base, filepath.Join(dir, "missing.yaml")); !errors.Is(err, ErrInvalidData) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestImportExamples(t *testing.T) {
	base := builtinT(t)
	d, err := BuildWithFiles(base, repoFile(t, "testdata/directory/overlay.yaml"), repoFile(t, "testdata/directory/schreibe.xml"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Resolve(keyGewerbe, "09599 Freiberg")
	if err != nil || r.Office.ID != "freiberg-gewerbeamt" || r.Channels[0].Kind != KindXTA || r.Channels[0].Level != 4 {
		t.Errorf("overlay not applied: %+v %v", r, err)
	}
	r, err = d.Resolve(keyGewerbe, "04109")
	if err != nil || r.Office.ID != "leipzig-gewerbe" || r.Office.Contact.Email != "gewerbe@leipzig.example" {
		t.Errorf("XZuFi not applied: %+v %v", r, err)
	}
	// Other municipalities keep their generated office; the base is untouched.
	if r, _ := base.Resolve(keyGewerbe, "09599 Freiberg"); r.Office.ID != "gemeinde-"+arsFreiberg {
		t.Errorf("base changed by overlay: %s", r.Office.ID)
	}
	if _, err := BuildWithFiles(base, repoFile(t, "testdata/directory/bad-unknown-office.yaml")); err == nil || !strings.Contains(err.Error(), "bad-unknown-office.yaml:4") {
		t.Errorf("bad example: %v", err)
	}
}

func TestStoreReloadIsAtomic(t *testing.T) {
	base := builtinT(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "overlay.yaml")
	data, err := os.ReadFile(repoFile(t, "testdata/directory/overlay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := NewStore(base)
	if err := s.ReloadFiles(good); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"freiberg-gewerbeamt": true, "gemeinde-" + arsFreiberg: true}

	// Readers resolve continuously while the file flips between good and broken and
	// the store reloads: every answer comes from one whole snapshot.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				d := s.Current()
				r, err := d.Resolve(keyGewerbe, arsFreiberg)
				if err != nil || !want[r.Office.ID] {
					bad.Add(1)
				}
				if _, ok := d.Office(r.Office.ID); !ok {
					bad.Add(1)
				}
			}
		}()
	}
	broken := []byte("responsibilities:\n  - {leistung: \"99050012104000\", gebiet: \"14522\", stelle: nope}\n")
	for i := 0; i < 4; i++ {
		if err := os.WriteFile(good, broken, 0o644); err != nil {
			t.Fatal(err)
		}
		before := s.Current()
		err := s.Reload()
		if err == nil || !strings.Contains(err.Error(), "overlay.yaml:2") {
			t.Errorf("broken reload: %v", err)
		}
		if s.Current() != before {
			t.Error("a failed reload replaced the snapshot")
		}
		if st := s.Status(); st.LastError == "" {
			t.Error("status does not report the failure")
		}
		if err := os.WriteFile(good, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(); err != nil {
			t.Errorf("good reload: %v", err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Errorf("%d reads saw an inconsistent directory", n)
	}
	if r, _ := s.Current().Resolve(keyGewerbe, arsFreiberg); r.Office.ID != "freiberg-gewerbeamt" {
		t.Errorf("final snapshot: %s", r.Office.ID)
	}
}

func TestParsePlacesErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"A\t14\n", "fields"},
		{"X\t1\n", "unknown record"},
		{"A\t1x\t\tName\t\n", "not a number"},
		{"P\t123\t14\n", "postcode line"},
		{"A\t14\t\tSachsen\tmany\n", "population"},
		{"N\t146120000000\tNeustadt\n", "no municipality above it"},
		{"N\t146120000000\n", "other-name line"},
	}
	for _, tt := range tests {
		_, err := ParsePlaces("t.tsv", strings.NewReader(tt.in))
		if !errors.Is(err, ErrInvalidData) || !strings.Contains(err.Error(), "t.tsv:1") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePlaces(%q) = %v", tt.in, err)
		}
	}
}

// TestSearchServicesMaengel uses a test-only service (the key is a fixture, not a LeiKa
// key) to show the example: "Mängel" finds the Mängelmelder by a word inside
// its name, whatever the spelling of the umlaut.
func TestSearchServicesMaengel(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.yaml")
	body := "services:\n  - key: \"00000000000001\"\n    name: \"Meldung von Mängeln im Stadt- oder Gemeindegebiet\"\n    synonyms: [Mängelmelder, Schlagloch melden]\n    quelle: test fixture\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := BuildWithFiles(builtinT(t), p)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"Mängel", "maengel", "MANGEL", "schlagloch", "mängeln im stadt"} {
		hits := d.SearchServices(q, 3)
		if len(hits) == 0 || hits[0].Service.Name != "Meldung von Mängeln im Stadt- oder Gemeindegebiet" {
			t.Errorf("SearchServices(%q) = %+v", q, hits)
		}
	}
}

func TestWatchReloadsOnSignal(t *testing.T) {
	base := builtinT(t)
	p := filepath.Join(t.TempDir(), "o.yaml")
	write := func(office string) {
		t.Helper()
		body := "responsibilities:\n  - {leistung: \"99115005104000\", gebiet: \"14612\", stelle: " + office + "}\n"
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("landesdirektion-sachsen")
	s := NewStore(base)
	if err := s.ReloadFiles(p); err != nil {
		t.Fatal(err)
	}
	write("dresden-allgemeine-verwaltung")
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal)
	done := make(chan struct{})
	go func() { s.Watch(ctx, signals, slog.New(slog.NewTextHandler(io.Discard, nil))); close(done) }()
	signals <- syscall.SIGHUP // unbuffered: returns once Watch has taken it
	signals <- syscall.SIGHUP // and this one once the first reload has finished
	cancel()
	<-done
	r, err := s.Current().Resolve(keyWohnsitz, "14612000")
	if err != nil || r.Office.ID != dresdenOffID {
		t.Fatalf("after SIGHUP: %+v %v", r, err)
	}
}

// TestFindServiceSharedSynonymIsAmbiguous: "Sterbeurkunde" is a synonym of two
// services (the copy of a death certificate and the registration of a death).
// FindService took the one whose name sorts first and routed the citizen's request
// for a Sterbeurkunde as a Sterbefallbeurkundung; a term that two services bear
// equally must be asked, not guessed.
func TestFindServiceSharedSynonymIsAmbiguous(t *testing.T) {
	d := builtinT(t)
	var amb *AmbiguousServiceError
	_, err := d.FindService("Sterbeurkunde")
	if !errors.As(err, &amb) {
		t.Fatalf("FindService(Sterbeurkunde) = %v, want *AmbiguousServiceError", err)
	}
	keys := map[string]bool{}
	for _, c := range amb.Candidates {
		keys[c.Key] = true
	}
	if !keys["99101011261000"] || !keys["99101004012000"] {
		t.Errorf("candidates %v, want both services that have the synonym", keys)
	}
	// A name that equals the query still wins over another service's synonym, and a
	// synonym only one service has still identifies it.
	for q, want := range map[string]string{"Sterbefallbeurkundung": "99101011261000", "Sterberegister Auszug": "", "Gewerbeschein": keyGewerbe} {
		s, err := d.FindService(q)
		if err != nil || want != "" && s.Key != want {
			t.Errorf("FindService(%q) = %v, %v; want %s", q, s, err, want)
		}
	}
}

// TestGenerateRuleErrors: a generate rule made sample offices without checking its
// Land or its channels. Without "land" (or with a typo like "4") it either matched
// every municipality of Germany, so places of other states went to generated
// sample mailboxes instead of their peers, or matched none and generated nothing;
// a channel kind the gateway does not know ("fax") gave every generated office an
// unusable channel. Each must be an error naming file and line, as for an office.
func TestGenerateRuleErrors(t *testing.T) {
	base := builtinT(t)
	dir := t.TempDir()
	for _, tt := range []struct{ name, body, wantMsg string }{
		{"no land", "generate:\n  - {ebene: gemeinde, leistungen: [\"99050012104000\"]}\n", "land"},
		{"land typo", "generate:\n  - {ebene: gemeinde, land: \"4\", leistungen: [\"99050012104000\"]}\n", "land"},
		{"unknown channel", "generate:\n  - {ebene: kreis, land: \"14\", leistungen: [\"99107023037000\"], kanaele: [{kind: fax}]}\n", "unknown channel kind"},
		{"channel level", "generate:\n  - {ebene: kreis, land: \"14\", leistungen: [\"99107023037000\"], kanaele: [{kind: xta, level: 9}]}\n", "level"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "gen.yaml")
			if err := os.WriteFile(p, []byte("# rules\n"+tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := BuildWithFiles(base, p)
			if !errors.Is(err, ErrInvalidData) || !strings.Contains(err.Error(), "gen.yaml:3") || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want ErrInvalidData at gen.yaml:3 saying %q", err, tt.wantMsg)
			}
		})
	}
}

// TestResponsibleOfficeWinsAcrossLevels: "zustaendig wins over others" held only
// for records of the same area. The resolver climbed from the municipality and took
// the first record of any role, so a municipality that only takes part (rolle
// mitwirkend, e.g. an Annahmestelle for Wohngeld) got the applications for which
// the Landratsamt, recorded at the Kreis, is the responsible office. A participating
// office is the answer only where no responsible one is found on the way up.
func TestResponsibleOfficeWinsAcrossLevels(t *testing.T) {
	base := builtinT(t)
	p := filepath.Join(t.TempDir(), "roles.yaml")
	body := `offices:
  - {id: annahme-bautzen, name: "Annahmestelle Bautzen", kanaele: [{kind: mailbox}]}
  - {id: lra-bautzen, name: "Landratsamt Bautzen, Wohngeldstelle", kanaele: [{kind: mailbox}]}
responsibilities:
  - {leistung: "` + keyWohngeld + `", gebiet: "14625", stelle: lra-bautzen, rolle: zustaendig}
  - {leistung: "` + keyWohngeld + `", gebiet: "146250020020", stelle: annahme-bautzen, rolle: mitwirkend}
  - {leistung: "` + keyMaengel + `", gebiet: "146250020020", stelle: annahme-bautzen, rolle: mitwirkend}
`
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := BuildWithFiles(base, p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Resolve(keyWohngeld, "Bautzen")
	if err != nil || r.Office.ID != "lra-bautzen" || r.Role != "zustaendig" || r.MatchedArea.Key != "14625" {
		t.Errorf("Wohngeld in Bautzen: %+v %v; want the responsible lra-bautzen found at the Kreis", r, err)
	}
	// Without a responsible office anywhere up the chain, the participating one is
	// still the answer (as before).
	r, err = d.Resolve(keyMaengel, "Bautzen")
	if err != nil || r.Office.ID != "annahme-bautzen" || r.Role != "mitwirkend" {
		t.Errorf("Mängel in Bautzen: %+v %v; want the participating office", r, err)
	}
	// A generated sample office up the chain is no responsible office to prefer: the
	// operator's own record below it stays the answer.
	body = `offices:
  - {id: annahme-bautzen, name: "Annahmestelle Bautzen", kanaele: [{kind: mailbox}]}
responsibilities:
  - {leistung: "` + keyWohngeld + `", gebiet: "146250020020", stelle: annahme-bautzen, rolle: mitwirkend}
`
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, err = BuildWithFiles(base, p); err != nil {
		t.Fatal(err)
	}
	r, err = d.Resolve(keyWohngeld, "Bautzen")
	if err != nil || r.Office.ID != "annahme-bautzen" {
		t.Errorf("Wohngeld in Bautzen with a generated Landratsamt: %+v %v; want the operator's office", r, err)
	}
}

// TestParseTooLargeXZuFi: a loader reads at most maxFileSize bytes. A YAML file over
// it said so, but an XZuFi export was cut at the limit and reported as "not
// well-formed XML: unexpected EOF" at its last line, sending the operator of a
// large state's export to look for a syntax error that is not there.
func TestParseTooLargeXZuFi(t *testing.T) {
	body := io.MultiReader(strings.NewReader("<schreibe>"), io.LimitReader(spaces{}, maxFileSize))
	_, err := Parse("export.xml", body)
	if !errors.Is(err, ErrInvalidData) || !strings.Contains(err.Error(), "larger than") || !strings.Contains(err.Error(), "export.xml") {
		t.Fatalf("err = %v, want a DataError saying the file is larger than the limit", err)
	}
}

type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}
