package routing

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestPlaceQueries runs the held-out list routing/testdata/placequeries.tsv, generated
// from the official lists by routing/internal/placequeries with its own reading of the
// names (every bilingual name, every name shared with a Kreis, every name shared across
// Länder, umlaut, case and hyphen forms, postcode and name, keys in several
// notations). Each query must resolve to exactly the listed area, or be ambiguous with
// exactly the listed candidates in that order; the Kreis of the same name must be the
// listed one. Name queries must also come first in SearchPlaces, so search and
// resolution agree.
func TestPlaceQueries(t *testing.T) {
	d := builtinT(t)
	f, err := os.Open(repoFile(t, "routing/testdata/placequeries.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n, failed := 0, 0
	categories := map[string]int{}
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		c := strings.Split(text, "\t")
		if len(c) != 5 {
			t.Fatalf("placequeries.tsv:%d: %d fields", line, len(c))
		}
		cat, q, expect, want, kreis := c[0], c[1], c[2], strings.Split(c[3], ","), c[4]
		n++
		categories[cat]++
		fail := func(format string, args ...any) {
			failed++
			if failed <= 40 {
				t.Errorf("placequeries.tsv:%d %s %q: "+format, append([]any{line, cat, q}, args...)...)
			}
		}
		a, err := d.Place(q)
		switch expect {
		case "one":
			if err != nil {
				fail("%v, want %s", err, want[0])
				continue
			}
			if a.ARS != want[0] {
				fail("got %s %s, want %s", a.ARS, a.Name, want[0])
				continue
			}
			got := "-"
			if a.alsoKreis != nil {
				got = a.alsoKreis.ARS
			}
			if got != kreis {
				fail("Kreis of the same name %s, want %s", got, kreis)
			}
		case "ambiguous":
			var amb *AmbiguousPlaceError
			if !errors.As(err, &amb) {
				fail("got %v %v, want ambiguous %v", a, err, want)
				continue
			}
			var got []string
			for _, c := range amb.Candidates {
				got = append(got, c.ARS)
			}
			if strings.Join(got, ",") != c[3] {
				fail("candidates %v, want %v", got, want)
			}
		default:
			t.Fatalf("placequeries.tsv:%d: expect %q", line, expect)
		}
		if strings.ContainsAny(q, "0123456789") {
			continue // postcodes and keys: search lists postcodes by prefix, not names
		}
		// Search offers first what resolution takes.
		hits := d.SearchPlaces(q, 10)
		for i := 0; i < len(want) && i < 10; i++ {
			if i >= len(hits) || hits[i].Area.ARS != want[i] {
				fail("search disagrees at %d: %v, want %v", i, hitARS(hits), want)
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 300 {
		t.Errorf("only %d queries, want at least 300", n)
	}
	for _, c := range []string{"bilingual", "kreis", "shared", "umlaut", "postcode", "key", "issue"} {
		if categories[c] == 0 {
			t.Errorf("no %s queries", c)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d queries failed", failed, n)
	}
	t.Logf("%d place queries %v", n, categories)
}

func hitARS(hits []PlaceHit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.Area.ARS
	}
	return out
}

// The official 12-digit keys of the Bezirke and Ortsteile of Berlin, Hamburg and
// Bremen (the Regionalschlüssel list's "Stadt-/Ortsteil" rows) find their city, as
// their names do: a portal that sent Spandau's ARS got "unknown place" while
// "Spandau" routed to Berlin. A key the list does not have stays unknown.
func TestCityStateDistrictKeysFindTheirCity(t *testing.T) {
	d := builtinT(t)
	for _, tc := range []struct{ key, name, city string }{
		{"110050005005", "Spandau", "110000000000"},
		{"021040109109", "St. Pauli", "020000000000"},
		{"040110123123", "Bremen", "040110000000"},
		{"ARS 11 0 05 0005 005", "Spandau", "110000000000"},
	} {
		byName, err := d.Resolve(keyGewerbe, tc.name)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		byKey, err := d.Resolve(keyGewerbe, tc.key)
		if err != nil || byKey.Area.Key != tc.city || byKey.Area != byName.Area {
			t.Errorf("key %s: %s, %v; its name %q finds %s", tc.key, routeTo(byKey), err, tc.name, byName.Area.Key)
		}
		if a, ok := d.Area(strings.TrimPrefix(strings.ReplaceAll(tc.key, " ", ""), "ARS")); !ok || a.Key != tc.city {
			t.Errorf("Area(%s): %v, %v; want %s", tc.key, a, ok, tc.city)
		}
	}
	for _, key := range []string{"110050005099", "021990999999"} {
		if _, err := d.Resolve(keyGewerbe, key); !errors.Is(err, ErrUnknownPlace) {
			t.Errorf("key %s, not in the code list: %v; want unknown place", key, err)
		}
	}
}
