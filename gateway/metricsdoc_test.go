package gateway

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The operators' list of metrics: docs/operations.md, its "## Observing" section
// (the backup's two gauges are under "Backup and restore").
const metricsDoc = "../docs/operations.md"

var (
	metricName     = regexp.MustCompile(`amtsbote_[a-z_]*[a-z]`)
	documentedVec  = regexp.MustCompile("`(amtsbote_[a-z_]*[a-z])\\{([a-z_,]+)\\}`")
	seriesLine     = regexp.MustCompile(`(?m)^(amtsbote_\w+)\{([^}]*)\} `)
	goMetricString = regexp.MustCompile(`"(amtsbote_[a-z_]*[a-z])"`)
)

// seriesLabels adds the label names of every amtsbote series in a /metrics body
// to labels, by metric (a histogram's _bucket, _sum and _count as the metric,
// without le).
func seriesLabels(body []byte, labels map[string]map[string]bool) {
	for _, m := range seriesLine.FindAllSubmatch(body, -1) {
		name := string(m[1])
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			name = strings.TrimSuffix(name, suffix)
		}
		if labels[name] == nil {
			labels[name] = map[string]bool{}
		}
		for _, pair := range strings.Split(string(m[2]), ",") {
			if k, _, ok := strings.Cut(pair, "="); ok && k != "le" {
				labels[name][k] = true
			}
		}
	}
}

// observingSection is the "## Observing" section of the document.
func observingSection(doc string) string {
	_, rest, ok := strings.Cut(doc, "\n## Observing\n")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// sourceMetricNames are the "amtsbote_…" string literals of the module's Go
// code outside tests: every metric's name is one (among bucket names).
func sourceMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "tools" || strings.HasPrefix(d.Name(), ".") && path != "..") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range goMetricString.FindAllSubmatch(b, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// checkDocumentedMetrics holds docs/operations.md and /metrics together, both
// ways: every amtsbote metric the gateway exposed (on either store) is named in
// the document, every metric its "Observing" list names is one the code
// registers, and a metric listed with its labels ("`…_total{channel,outcome}`")
// has exactly those on the series the gateway exposed. An operator writes
// queries and dashboards from that list; a renamed metric or label left them
// empty without a word.
func checkDocumentedMetrics(t *testing.T, exposed map[string]bool, labels map[string]map[string]bool) {
	if t.Failed() {
		return
	}
	b, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	observing := observingSection(doc)
	if len(metricName.FindAllString(observing, -1)) < 20 {
		t.Fatalf("%s: no \"## Observing\" section with the metrics", metricsDoc)
	}

	named := map[string]bool{}
	for _, n := range metricName.FindAllString(doc, -1) {
		named[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(exposed)) {
		if !named[n] {
			t.Errorf("/metrics has %s, which %s does not name", n, metricsDoc)
		}
	}

	registered := sourceMetricNames(t)
	if !registered["amtsbote_delivery_attempts_total"] {
		t.Fatalf("self-check: the walk of the Go code found no amtsbote_delivery_attempts_total (found %d names)", len(registered))
	}
	for _, n := range slices.Sorted(slices.Values(metricName.FindAllString(observing, -1))) {
		if !registered[n] && !exposed[n] {
			t.Errorf("%s, \"Observing\", names %s, which no code registers", metricsDoc, n)
		}
	}

	for _, m := range documentedVec.FindAllStringSubmatch(doc, -1) {
		name, want := m[1], strings.Split(m[2], ",")
		got, ok := labels[name]
		if !ok {
			continue // no series in this test (a CRL, a queue check): the name is checked above
		}
		slices.Sort(want)
		if have := slices.Sorted(maps.Keys(got)); !slices.Equal(have, want) {
			t.Errorf("%s lists %s with the labels %v; the gateway's series have %v", metricsDoc, name, want, have)
		}
	}
}
