package doccheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// promPkg is the Prometheus client, whose option structs and NewDesc name every
// metric the gateway registers.
const promPkg = "github.com/prometheus/client_golang/prometheus"

// metricKind says which series a registered metric shows under on /metrics.
type metricKind int

const (
	// plainMetric: a gauge, a counter (named with its _total already: the
	// gateway serves the text format, promhttp.HandlerOpts{} in api/api.go, so
	// neither OpenMetrics' _created series nor a family name without _total
	// appears) or a const metric of a collector (NewDesc).
	plainMetric metricKind = iota
	histogramMetric
	summaryMetric
)

// seriesSuffixes are what the client library adds to a metric's name per kind.
var seriesSuffixes = map[metricKind][]string{histogramMetric: {"_bucket", "_sum", "_count"}, summaryMetric: {"_sum", "_count"}}

// optsKinds are the option structs of promPkg whose Name is a metric's.
var optsKinds = map[string]metricKind{"GaugeOpts": plainMetric, "CounterOpts": plainMetric, "UntypedOpts": plainMetric,
	"Opts": plainMetric, "HistogramOpts": histogramMetric, "SummaryOpts": summaryMetric}

// codeNames are the amtsbote_… names the Go code defines.
type codeNames struct {
	metrics map[string]metricKind
	buckets map[string]bool // JetStream key-value buckets: const FooBucket = "amtsbote_…"
	// problems are what the scan could not place: a metric name it cannot
	// evaluate, or an "amtsbote_…" literal that is neither a metric it found
	// registered nor a bucket (a metric registered another way, which the docs
	// check would then call unregistered, or miss).
	problems []string
}

// amtsboteLiteral is a whole string literal that is an amtsbote_… name.
var amtsboteLiteral = regexp.MustCompile(`^amtsbote_[a-z0-9_]+$`)

// scanNames reads the metric and bucket names from Go files, by package folder.
// Why the source and not a running gateway's /metrics: a labelled counter or
// histogram has no series before its first observation, the breaker state has
// series only for endpoints in trouble, and the bbolt and the JetStream store
// register different metrics, so no single scrape shows them all. The gateway
// tests scrape as well (gateway.TestStoreMetricsAndBackupPerBackend holds
// /metrics against docs/operations.md and the alert rules); here every page is
// held against every name the code can register. A name built from parts
// (Namespace, Subsystem, a constant, prometheus.BuildFQName) is evaluated; one
// the scan cannot evaluate is a problem, not a silent gap.
func scanNames(fset *token.FileSet, pkgs map[string][]*ast.File) codeNames {
	n := codeNames{metrics: map[string]metricKind{}, buckets: map[string]bool{}}
	type literal struct {
		pos   token.Pos
		value string
	}
	var loose []literal
	used := map[token.Pos]bool{} // literals that are (part of) a name placed
	for _, dir := range slices.Sorted(maps.Keys(pkgs)) {
		files := pkgs[dir]
		consts := map[string]ast.Expr{}
		for _, f := range files {
			for _, decl := range f.Decls {
				if g, ok := decl.(*ast.GenDecl); ok && g.Tok == token.CONST {
					for _, spec := range g.Specs {
						vs := spec.(*ast.ValueSpec)
						for i, name := range vs.Names {
							if i < len(vs.Values) {
								consts[name.Name] = vs.Values[i]
							}
						}
					}
				}
			}
		}
		for _, f := range files {
			prom := map[string]bool{} // the file's names for promPkg
			for _, imp := range f.Imports {
				if p, _ := strconv.Unquote(imp.Path.Value); p == promPkg {
					local := "prometheus"
					if imp.Name != nil {
						local = imp.Name.Name
					}
					prom[local] = true
				}
			}
			isProm := func(e ast.Expr) (string, bool) {
				if sel, ok := e.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && prom[x.Name] {
						return sel.Sel.Name, true
					}
				}
				return "", false
			}
			var eval func(e ast.Expr, depth int) (string, bool)
			eval = func(e ast.Expr, depth int) (string, bool) {
				if depth > 10 {
					return "", false
				}
				switch e := e.(type) {
				case *ast.BasicLit:
					s, err := strconv.Unquote(e.Value)
					if e.Kind != token.STRING || err != nil {
						return "", false
					}
					used[e.Pos()] = true
					return s, true
				case *ast.ParenExpr:
					return eval(e.X, depth+1)
				case *ast.BinaryExpr:
					x, ok1 := eval(e.X, depth+1)
					y, ok2 := eval(e.Y, depth+1)
					return x + y, ok1 && ok2 && e.Op == token.ADD
				case *ast.Ident:
					if c, ok := consts[e.Name]; ok {
						return eval(c, depth+1)
					}
				case *ast.CallExpr:
					if name, ok := isProm(e.Fun); ok && name == "BuildFQName" && len(e.Args) == 3 {
						var parts []string
						for _, a := range e.Args {
							s, ok := eval(a, depth+1)
							if !ok {
								return "", false
							}
							parts = append(parts, s)
						}
						return fqName(parts[0], parts[1], parts[2]), true
					}
				}
				return "", false
			}
			problem := func(pos token.Pos, format string, args ...any) {
				p := fset.Position(pos)
				rel, _ := filepath.Rel(root, p.Filename)
				n.problems = append(n.problems, fmt.Sprintf("%s:%d: ", filepath.ToSlash(rel), p.Line)+fmt.Sprintf(format, args...))
			}
			ast.Inspect(f, func(node ast.Node) bool {
				switch x := node.(type) {
				case *ast.CompositeLit:
					name, ok := isProm(x.Type)
					kind, isOpts := optsKinds[name]
					if !ok || !isOpts {
						return true
					}
					parts := map[string]string{}
					for _, el := range x.Elts {
						kv, ok := el.(*ast.KeyValueExpr)
						if !ok {
							problem(el.Pos(), "prometheus.%s written without field names: teach scanNames", name)
							return true
						}
						key, _ := kv.Key.(*ast.Ident)
						if key == nil || key.Name != "Namespace" && key.Name != "Subsystem" && key.Name != "Name" {
							continue
						}
						s, ok := eval(kv.Value, 0)
						if !ok {
							problem(kv.Value.Pos(), "prometheus.%s's %s is nothing the scan can evaluate: teach scanNames", name, key.Name)
							return true
						}
						parts[key.Name] = s
					}
					if full := fqName(parts["Namespace"], parts["Subsystem"], parts["Name"]); strings.HasPrefix(full, "amtsbote_") {
						n.metrics[full] = kind
					}
				case *ast.CallExpr:
					if name, ok := isProm(x.Fun); ok && name == "NewDesc" && len(x.Args) > 0 {
						s, ok := eval(x.Args[0], 0)
						if !ok {
							problem(x.Args[0].Pos(), "prometheus.NewDesc's name is nothing the scan can evaluate: teach scanNames")
						} else if strings.HasPrefix(s, "amtsbote_") {
							n.metrics[s] = plainMetric
						}
					}
				case *ast.ValueSpec:
					for i, id := range x.Names {
						if strings.HasSuffix(id.Name, "Bucket") && i < len(x.Values) {
							if s, ok := eval(x.Values[i], 0); ok && strings.HasPrefix(s, "amtsbote_") {
								n.buckets[s] = true
							}
						}
					}
				case *ast.BasicLit:
					if s, err := strconv.Unquote(x.Value); x.Kind == token.STRING && err == nil && amtsboteLiteral.MatchString(s) {
						loose = append(loose, literal{x.Pos(), s})
					}
				}
				return true
			})
		}
	}
	// A literal that went into no name names a metric or a bucket (a test
	// helper reading /metrics, the load test's histograms), or is a problem.
	for _, l := range loose {
		if _, ok := n.metrics[l.value]; !ok && !used[l.pos] && !n.buckets[l.value] {
			p := fset.Position(l.pos)
			rel, _ := filepath.Rel(root, p.Filename)
			n.problems = append(n.problems, fmt.Sprintf("%s:%d: %q is neither a metric the scan found registered nor a bucket: "+
				"a metric registered in a way scanNames does not read?", filepath.ToSlash(rel), p.Line, l.value))
		}
	}
	return n
}

// fqName joins the parts of a metric's name as prometheus.BuildFQName does.
func fqName(namespace, subsystem, name string) string {
	if name == "" {
		return ""
	}
	var parts []string
	for _, p := range []string{namespace, subsystem, name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "_")
}

// parseModule parses the module's Go files outside tests, by package folder.
func parseModule(t *testing.T) (*token.FileSet, map[string][]*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	pkgs := map[string][]*ast.File{}
	err := walkRepo(func(path string) bool {
		return strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go")
	}, func(path string) error {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkgs[filepath.Dir(path)] = append(pkgs[filepath.Dir(path)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fset, pkgs
}

// metricMention is an amtsbote_… name in a page: a metric with or without one
// of the suffixes its series have, a bucket, or a prefix ("amtsbote_delivery_*").
var metricMention = regexp.MustCompile(`amtsbote_[a-z0-9_]+\*?`)

// unknownMetrics returns the names in text that are no series of a registered
// metric, no bucket and no prefix of one, as "line N: name"; a name of
// formerNames is not one of them, and goes into used.
func unknownMetrics(text string, n codeNames, used map[string]bool) []string {
	series := map[string]bool{}
	for name, kind := range n.metrics {
		series[name] = true
		for _, s := range seriesSuffixes[kind] {
			series[name+s] = true
		}
	}
	return unknownMentions(text, metricMention,
		func(name string) bool { return series[name] || n.buckets[name] },
		func(prefix string) bool {
			for s := range series {
				if strings.HasPrefix(s, prefix) {
					return true
				}
			}
			return false
		}, used)
}

// TestMetricNamesExist: every amtsbote_… name that README.md, docs/ and deploy/
// give (the metrics list, the alert rules and their tests, a query in a page)
// is a series of a metric the code registers — a histogram also by its _bucket,
// _sum and _count — or a key-value bucket the code names, or, written as a
// prefix ("amtsbote_delivery_*"), the start of one. An operator copies these
// into dashboards and alerts; a metric renamed in the code and not on the page
// leaves a panel empty and an alert that never fires, without a word.
func TestMetricNamesExist(t *testing.T) {
	// Self-check of the scan on planted code: names from parts, constants (the
	// prefix constant is no loose literal), a collector's NewDesc and a bucket
	// are found; a name it cannot evaluate, options without field names and a
	// literal it cannot place are reported.
	const plantedGo = `package p
import prom "github.com/prometheus/client_golang/prometheus"
const ns, sub = "amtsbote", "store"
const SomeBucket = "amtsbote_things"
const pre = "amtsbote_line_"
var (
	a = prom.NewHistogram(prom.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "wait_seconds"})
	b = prom.NewCounter(prom.CounterOpts{Name: "amtsbote_" + "runs_total"})
	c = prom.NewDesc(prom.BuildFQName(ns, "", "disk_bytes"), "", nil, nil)
	d = prom.NewGauge(prom.GaugeOpts{Name: name()})
	f = prom.NewGauge(prom.GaugeOpts{Name: pre + "depth"})
	e = map[string]string{"x": "amtsbote_nowhere", "y": "amtsbote_runs_total"}
	g = prom.NewGauge(prom.GaugeOpts{ns, sub, "depth"})
)`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(root, "p", "p.go"), plantedGo, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	planted := scanNames(fset, map[string][]*ast.File{"p": {f}})
	wantMetrics := map[string]metricKind{"amtsbote_store_wait_seconds": histogramMetric, "amtsbote_runs_total": plainMetric, "amtsbote_disk_bytes": plainMetric,
		"amtsbote_line_depth": plainMetric}
	wantProblems := []string{
		"p/p.go:10: prometheus.GaugeOpts's Name is nothing the scan can evaluate: teach scanNames",
		"p/p.go:13: prometheus.GaugeOpts written without field names: teach scanNames",
		`p/p.go:12: "amtsbote_nowhere" is neither a metric the scan found registered nor a bucket: a metric registered in a way scanNames does not read?`,
	}
	if !maps.Equal(planted.metrics, wantMetrics) || !planted.buckets["amtsbote_things"] || len(planted.buckets) != 1 || !slices.Equal(planted.problems, wantProblems) {
		t.Fatalf("self-check: planted code scanned as %v, buckets %v, problems %q", planted.metrics, planted.buckets, planted.problems)
	}
	// Self-check of the page reading: a histogram's series, a prefix and a
	// bucket are known; a misspelt name, a counter's family name without its
	// _total, a _bucket of a counter and a prefix nothing has are reported; a
	// formerNames entry is let through and marked used.
	formerNames["amtsbote_old_name"] = "planted"
	used := map[string]bool{}
	got := unknownMetrics("`amtsbote_store_wait_seconds_bucket{le=\"0.1\"}` and amtsbote_store_wait_seconds_count,\n"+
		"amtsbote_store_*, `amtsbote_things`, amtsbote_runs_total and amtsbote_old_name\n"+
		"amtsbote_run_total amtsbote_runs amtsbote_runs_total_bucket amtsbote_queue_* KV_amtsbote_things", planted, used)
	delete(formerNames, "amtsbote_old_name")
	want := []string{"line 3: amtsbote_run_total", "line 3: amtsbote_runs", "line 3: amtsbote_runs_total_bucket", "line 3: amtsbote_queue_*"}
	if !slices.Equal(got, want) || !used["amtsbote_old_name"] {
		t.Fatalf("self-check: unknownMetrics reported %q (former name used: %v), want %q", got, used["amtsbote_old_name"], want)
	}

	names := scanNames(parseModule(t))
	for _, p := range names.problems {
		t.Error(p)
	}
	if len(names.metrics) < 40 || len(names.buckets) < 2 || names.metrics["amtsbote_http_request_seconds"] != histogramMetric {
		t.Fatalf("self-check: the scan found %d metrics and %d buckets in the code (%v): it no longer reads how they are registered",
			len(names.metrics), len(names.buckets), names.metrics)
	}
	mentions := checkMentions(t, operatorTexts(t), metricMention, func(text string, used map[string]bool) []string {
		return unknownMetrics(text, names, used)
	}, "no metric the code registers (nor a bucket it names)", 200)
	if !t.Failed() {
		t.Logf("%d amtsbote_… names in README.md, docs/ and deploy/, each a metric (of %d the code registers) or a bucket", mentions, len(names.metrics))
	}
}
