package routing

import (
	"runtime"
	"sort"
	"testing"
	"time"
)

// Figures from these benchmarks are recorded in docs/directory.md and
// docs/performance.md (the Germany-scale one is in scale_test.go):
//   go test -run '^$' -bench . -benchmem ./routing/

func BenchmarkResolve(b *testing.B) {
	d := builtinT(b)
	cases := []struct{ name, key, place string }{
		{"ARS", keyGewerbe, arsDresden},
		{"ARS-climb-to-Land", keyApotheke, arsFreiberg},
		{"AGS", keyWohnsitz, "14522275"},
		{"postcode", keyGewerbe, "01067"},
		{"name", keyGewerbe, "Dresden"},
		{"name-bilingual", keyWohnsitz, "Kamenz"},
		{"name-umlaut-free", keyWohnsitz, "Weisswasser"},
		{"name-and-Kreis", keyWohnsitz, "Bautzen"},
		{"Landkreis", keyWohngeld, "Landkreis Bautzen"},
		{"postcode-and-name", keyWohnsitz, "01877 Bischofswerda"},
		{"ARS-grouped", keyWohnsitz, "14 6 25 0020 020"},
		{"peer", keyGewerbe, "081110000000"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Resolve(c.key, c.place); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// searchQueries are prefixes people type, short ones (many candidates) included.
var searchQueries = []string{"d", "dr", "dre", "dresden", "leip", "neu", "neuenk", "bad", "sankt", "muenchen", "görl", "01", "010", "0106", "70173", "gross", "schön", "frei", "burg", "a"}

func BenchmarkSearchPlaces(b *testing.B) {
	d := builtinT(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.SearchPlaces(searchQueries[i%len(searchQueries)], 10)
		i++
	}
}

// BenchmarkSearchPlacesP99 reports the 99th percentile latency of single searches over
// all German municipalities and postcodes.
func BenchmarkSearchPlacesP99(b *testing.B) {
	d := builtinT(b)
	lat := make([]time.Duration, 0, 4096)
	i := 0
	for b.Loop() {
		start := time.Now()
		d.SearchPlaces(searchQueries[i%len(searchQueries)], 10)
		lat = append(lat, time.Since(start))
		i++
	}
	sort.Slice(lat, func(a, c int) bool { return lat[a] < lat[c] })
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}

func BenchmarkSearchServices(b *testing.B) {
	d := builtinT(b)
	qs := []string{"gew", "Mängel", "wohn", "perso", "hund", "bau"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.SearchServices(qs[i%len(qs)], 10)
		i++
	}
}

// BenchmarkLoadBuiltin measures building the embedded directory from scratch and
// reports the heap it keeps alive.
func BenchmarkLoadBuiltin(b *testing.B) {
	for b.Loop() {
		d, err := loadBuiltin()
		if err != nil {
			b.Fatal(err)
		}
		runtime.KeepAlive(d)
	}
	b.StopTimer()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	d, err := loadBuiltin()
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-heap")
	runtime.KeepAlive(d)
}
