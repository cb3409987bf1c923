package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/submission"
)

// The Grafana dashboard operators import beside the alert rules
// (docs/operations.md "Dashboard").
const dashboardFile = "../deploy/grafana/amtsbote.json"

// notExportedHere are the series the dashboard reads that the gateway of
// TestDashboardMetricsAreExported does not expose, each with the reason. An
// amtsbote_… name among them must still be registered by the code; an entry
// the dashboard no longer reads, or one the gateway exposes after all, fails
// the test, so the list cannot grow stale and hide a renamed metric.
var notExportedHere = map[string]string{
	"up": "written by Prometheus for each scrape target, not by the gateway",
	// Cluster mode (store.backend jetstream) registers these instead of the
	// bbolt commit series; gateway.TestStoreMetricsAndBackupPerBackend sees them.
	"amtsbote_store_write_conflicts_total":       "JetStream store only (cluster mode)",
	"amtsbote_store_unacknowledged_writes_total": "JetStream store only (cluster mode)",
	"amtsbote_store_recognised_writes_total":     "JetStream store only (cluster mode)",
	"amtsbote_store_stale_listings_total":        "JetStream store only (cluster mode)",
	"amtsbote_store_newer_keys_dropped_total":    "JetStream store only (cluster mode)",
	"amtsbote_mailbox_takeovers_total":           "a labelled counter without series before a clerk's first takeover",
}

// dashDatasource is a panel's or target's data source reference.
type dashDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashTarget struct {
	RefID      string          `json:"refId"`
	Expr       string          `json:"expr"`
	Datasource *dashDatasource `json:"datasource"`
}

type dashPanel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Datasource  *dashDatasource `json:"datasource"`
	GridPos     *struct {
		X int `json:"x"`
		Y int `json:"y"`
		W int `json:"w"`
		H int `json:"h"`
	} `json:"gridPos"`
	Targets   []dashTarget `json:"targets"`
	Collapsed bool         `json:"collapsed"`
	Panels    []dashPanel  `json:"panels"` // a collapsed row's
}

type dashVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"` // a string, or the query editor's object
	Definition string          `json:"definition"`
	Datasource *dashDatasource `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

type dashboard struct {
	UID           string      `json:"uid"`
	Title         string      `json:"title"`
	Description   string      `json:"description"`
	SchemaVersion int         `json:"schemaVersion"`
	Panels        []dashPanel `json:"panels"`
	Templating    struct {
		List []dashVariable `json:"list"`
	} `json:"templating"`
}

// allPanels are the dashboard's panels, a collapsed row's included, rows too.
func (d *dashboard) allPanels() []dashPanel {
	var out []dashPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// dashboardVars stand for the template variables and Grafana's own when an
// expression goes to promtool: values of the kind Grafana puts there (a
// multi-value variable becomes a regular expression).
var dashboardVars = map[string]string{"job": "(amtsbote|amtsbote-cluster)", "instance": "(10.0.0.1:8080|10.0.0.2:8080)",
	"__rate_interval": "1m", "__interval": "30s", "__range": "6h"}

var dashVarRef = regexp.MustCompile(`\$\{?(\w+)\}?`)

// promQLOf is expr as Prometheus gets it from the dashboard.
func promQLOf(expr string) string {
	return dashVarRef.ReplaceAllStringFunc(expr, func(ref string) string {
		if v, ok := dashboardVars[dashVarRef.FindStringSubmatch(ref)[1]]; ok {
			return v
		}
		return ref // left for promtool to refuse
	})
}

// promQLToken is a piece of a PromQL expression: a dashboard variable, a
// number or duration ("0.99", "5m" after offset), a name, a set of label matchers, a range or
// subquery, a string, or any other character.
var promQLToken = regexp.MustCompile(`\$\{?\w+\}?|[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*|\{[^}]*\}|\[[^\]]*\]|"(?:[^"\\]|\\.)*"|\s+|.`)

// promQLKeywords are PromQL's words that are no metric names.
var promQLKeywords = map[string]bool{"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true,
	"ignoring": true, "group_left": true, "group_right": true, "bool": true, "offset": true, "inf": true, "nan": true}

// grouping keywords are followed by a list of label names, no metrics.
var promQLGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promQLSelectors returns the metric names expr selects and, for each, its
// label matchers ("" without). Function and aggregation names (followed by a
// parenthesis), keywords and the label lists of by (…), on (…) and the like
// are none; an aggregation's by or without comes before its parenthesis
// here, as the dashboard writes it. A regular expression, not Prometheus's parser, which this module
// does not import; promtool checks the syntax, and the self-check below the
// way this reads it.
func promQLSelectors(expr string) (names, matchers []string) {
	toks := promQLToken.FindAllString(expr, -1)
	next := func(i int) (int, string) { // the next token that is no space
		for i++; i < len(toks); i++ {
			if strings.TrimSpace(toks[i]) != "" {
				return i, toks[i]
			}
		}
		return i, ""
	}
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		if !regexp.MustCompile(`^[a-zA-Z_:]`).MatchString(tok) {
			continue
		}
		j, after := next(i)
		if promQLGrouping[tok] && after == "(" { // skip the label list
			for i = j; i < len(toks) && toks[i] != ")"; i++ {
			}
			continue
		}
		// A function or an aggregation: "rate(", "sum by (", "max without (".
		if promQLKeywords[tok] || after == "(" || after == "by" || after == "without" {
			continue
		}
		m := ""
		if strings.HasPrefix(after, "{") {
			m, i = after, j
		}
		names = append(names, tok)
		matchers = append(matchers, m)
	}
	return names, matchers
}

// sectionRefOf is a reference to a page's section as the pages write them:
// docs/operations.md "Observing" (internal/doccheck's sectionRef, which reads
// Go and Markdown files, not the dashboard's JSON strings).
var sectionRefOf = regexp.MustCompile(`(docs/[a-z]+\.md),? *(?:section +)?"([^"\n]{3,80})"`)

// alertNamed is an alert's name in a description.
var alertNamed = regexp.MustCompile(`\bAmtsbote[A-Z][A-Za-z0-9]*`)

// headings are the Markdown headings of a page, outside its code blocks.
func headings(page string) []string {
	page = regexp.MustCompile("(?ms)^\\s*```.*?^\\s*```").ReplaceAllString(page, "")
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^#+\s+(.+)$`).FindAllStringSubmatch(page, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

// dashboardProblems holds the dashboard to what Grafana needs to import and
// draw it, and to what the person on call needs of each panel: ids unique
// and placed on the 24-column grid, every panel of the data source variable,
// with PromQL targets whose selectors carry the job and instance variables,
// and a description that says what is normal and names the alert or a
// section of the docs (a section that exists: pages maps a page to its
// headings).
func dashboardProblems(d *dashboard, pages map[string][]string) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		bad("uid %q, title %q, schemaVersion %d: Grafana 10 needs a uid, a title and schemaVersion 36 or later", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]dashVariable{}
	dsVar := ""
	for _, v := range d.Templating.List {
		vars[v.Name] = v
		if v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			dsVar = v.Name
		}
	}
	if dsVar == "" {
		bad("no data source variable of type prometheus")
	}
	wantDS := dashDatasource{Type: "prometheus", UID: "${" + dsVar + "}"}
	for _, name := range []string{"job", "instance"} {
		v, ok := vars[name]
		switch {
		case !ok:
			bad("no variable %s", name)
		case v.Type != "query" || !v.Multi || !v.IncludeAll || v.Datasource == nil || *v.Datasource != wantDS ||
			!strings.Contains(string(v.Query), "label_values(amtsbote_build_info"):
			bad("variable %s: want a query of label_values(amtsbote_build_info…) on %s, several values and All", name, wantDS.UID)
		}
	}
	ids := map[int]string{}
	check := func(p dashPanel, inRow bool) {
		what := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			bad("%s: no id", what)
		} else if other, ok := ids[p.ID]; ok {
			bad("%s: id used by %q too", what, other)
		}
		ids[p.ID] = p.Title
		if g := p.GridPos; g == nil || g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			bad("%s: gridPos %+v is not on the 24-column grid", what, g)
		}
		if p.Type == "row" {
			if inRow || len(p.Targets) > 0 || !p.Collapsed && len(p.Panels) > 0 {
				bad("%s: a row inside a row, with targets, or open with panels inside", what)
			}
			return
		}
		if p.Type == "" || p.Title == "" {
			bad("%s: no type or title", what)
		}
		if p.Datasource == nil || *p.Datasource != wantDS {
			bad("%s: datasource %+v, want %+v", what, p.Datasource, wantDS)
		}
		if len(p.Targets) == 0 {
			bad("%s: no targets", what)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] || strings.TrimSpace(tg.Expr) == "" || tg.Datasource != nil && *tg.Datasource != wantDS {
				bad("%s: target %q without a refId of its own, an expr or the panel's datasource", what, tg.RefID)
			}
			refs[tg.RefID] = true
			for _, m := range dashVarRef.FindAllStringSubmatch(tg.Expr, -1) {
				if _, ok := vars[m[1]]; !ok && !strings.HasPrefix(m[1], "__") {
					bad("%s, %s: variable $%s is not defined", what, tg.RefID, m[1])
				}
			}
			names, matchers := promQLSelectors(tg.Expr)
			for i, n := range names {
				if !strings.Contains(matchers[i], `job=~"$job"`) || !strings.Contains(matchers[i], `instance=~"$instance"`) {
					bad("%s, %s: %s%s does not select by $job and $instance", what, tg.RefID, n, matchers[i])
				}
			}
		}
		desc := p.Description
		if !strings.Contains(strings.ToLower(desc), "normal") {
			bad("%s: the description does not say what is normal", what)
		}
		if !alertNamed.MatchString(desc) && !sectionRefOf.MatchString(desc) {
			bad("%s: the description names neither an alert nor a section of the docs", what)
		}
	}
	for _, p := range d.Panels {
		check(p, false)
		for _, q := range p.Panels {
			check(q, true)
		}
	}
	for _, p := range append(d.allPanels(), dashPanel{Title: "(the dashboard)", Description: d.Description}) {
		for _, m := range sectionRefOf.FindAllStringSubmatch(p.Description, -1) {
			hs, ok := pages[m[1]]
			if !ok {
				bad("%q refers to %s, which does not exist", p.Title, m[1])
			} else if !slices.ContainsFunc(hs, func(h string) bool { return strings.Contains(h, m[2]) }) {
				bad("%q refers to %s, %q: the page has no such section", p.Title, m[1], m[2])
			}
		}
	}
	return out
}

func readDashboard(t *testing.T, b []byte) *dashboard {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d
}

// promtoolPath is Debian's promtool (package prometheus, installed by .ci/run),
// or the one make deploy-check builds into tools/bin. None is a failure: the
// dashboard's queries would go unchecked.
func promtoolPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if built, _ := filepath.Glob("../tools/bin/promtool-*"); len(built) > 0 {
		return built[len(built)-1]
	}
	t.Fatal("promtool is neither on PATH nor built in tools/bin: install Debian's prometheus package (.ci/run) or run make deploy-check once")
	return ""
}

// checkRules runs promtool check rules on one recording rule per expression
// (named after its panel and target) and returns its error with its output.
func checkRules(t *testing.T, promtool string, exprs map[string]string) error {
	t.Helper()
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for _, name := range slices.Sorted(maps.Keys(exprs)) {
		q, _ := json.Marshal(exprs[name]) // a JSON string is a YAML string
		fmt.Fprintf(&b, "      - record: %s\n        expr: %s\n", name, q)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// TestDashboardIsGrafanasAndPromQL: deploy/grafana/amtsbote.json parses, has
// what Grafana needs to import and draw it (ids, grid positions, the data
// source variable, targets with expressions) and what the person on call
// needs (job and instance variables on every selector, a description with
// what is normal and the alert or section), and every expression is PromQL
// promtool takes, the variables replaced as Grafana replaces them. A panel
// whose query does not parse is an empty panel with a small red triangle,
// found at night.
func TestDashboardIsGrafanasAndPromQL(t *testing.T) {
	promtool := promtoolPath(t)
	// Self-checks: the selector reading on a planted expression, the checks on a
	// planted broken dashboard, and promtool refusing a broken expression.
	names, matchers := promQLSelectors(`sum by (instance, le) (rate(a_bucket{job=~"$job", instance=~"$instance", route="/v1"}[5m])) ` +
		`/ on (instance) group_left () b{job=~"$job", instance=~"$instance"} and c offset 5m or vector(0) > bool 1`)
	if !slices.Equal(names, []string{"a_bucket", "b", "c"}) || matchers[2] != "" || !strings.Contains(matchers[0], `route="/v1"`) {
		t.Fatalf("self-check: promQLSelectors read %q with %q", names, matchers)
	}
	// (The page's name is put together, so that internal/doccheck's check of
	// section references does not read the planted one as this file's.)
	page := "docs/" + "operations.md"
	planted := readDashboard(t, fmt.Appendf(nil, `{"uid": "x", "title": "x", "schemaVersion": 39,
		"templating": {"list": [{"name": "ds", "type": "datasource", "query": "prometheus"}]},
		"panels": [
		 {"id": 1, "type": "timeseries", "title": "a", "description": "Normal: 0 (%s \"No such section\").",
		  "datasource": {"type": "prometheus", "uid": "${ds}"}, "gridPos": {"x": 20, "y": 0, "w": 8, "h": 4},
		  "targets": [{"refId": "A", "expr": "rate(m{job=~\"$job\"}[$__rate_interval])"}]},
		 {"id": 1, "type": "stat", "title": "b", "description": "AmtsboteDown.", "datasource": {"type": "prometheus", "uid": "${ds}"},
		  "gridPos": {"x": 0, "y": 0, "w": 4, "h": 4}, "targets": [{"refId": "A", "expr": "up{job=~\"$job\", instance=~\"$instance\"} + $nope"}]}]}`, page))
	got := dashboardProblems(planted, map[string][]string{page: {"Observing"}})
	want := []string{
		"no variable job", "no variable instance",
		`panel 1 "a": gridPos &{X:20 Y:0 W:8 H:4} is not on the 24-column grid`,
		`panel 1 "a", A: variable $job is not defined`,
		`panel 1 "a", A: m{job=~"$job"} does not select by $job and $instance`,
		`panel 1 "b": id used by "a" too`,
		`panel 1 "b", A: variable $job is not defined`,
		`panel 1 "b", A: variable $instance is not defined`,
		`panel 1 "b", A: variable $nope is not defined`,
		`panel 1 "b": the description does not say what is normal`,
		`"a" refers to ` + page + `, "No such section": the page has no such section`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("self-check: dashboardProblems reported\n%q\nwant\n%q", got, want)
	}
	if err := checkRules(t, promtool, map[string]string{"dashboard:broken": "sum(rate(x[5m])"}); err == nil {
		t.Fatalf("self-check: %s took a broken expression", promtool)
	}

	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	d := readDashboard(t, b)
	pages := map[string][]string{}
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range docs {
		page, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		pages["docs/"+filepath.Base(p)] = headings(string(page))
	}
	for _, p := range dashboardProblems(d, pages) {
		t.Error(p)
	}
	exprs := map[string]string{}
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			exprs[fmt.Sprintf("dashboard:panel_%d_%s", p.ID, tg.RefID)] = promQLOf(tg.Expr)
		}
	}
	if len(exprs) < 50 {
		t.Fatalf("self-check: %d expressions in %s: the panels are no longer read", len(exprs), dashboardFile)
	}
	if err := checkRules(t, promtool, exprs); err != nil {
		t.Fatalf("promtool check rules on the dashboard's %d expressions: %v", len(exprs), err)
	}

	// Every alert of the rules applies to some panel, which names it: the page
	// leads to the panel that shows what fired.
	rules, err := os.ReadFile("../deploy/prometheus/amtsbote-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	described := map[string]bool{}
	for _, p := range d.allPanels() {
		for _, a := range alertNamed.FindAllString(p.Description, -1) {
			described[a] = true
		}
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) < 20 {
		t.Fatalf("self-check: %d alerts in the rule file", len(alerts))
	}
	for _, a := range alerts {
		if !described[a[1]] {
			t.Errorf("alert %s is named by no panel's description", a[1])
		}
	}
	if !t.Failed() {
		t.Logf("%d panels and rows, %d expressions checked by promtool, %d alerts each named by a panel", len(d.allPanels()), len(exprs), len(alerts))
	}
}

// TestDashboardMetricsAreExported: every metric the dashboard's expressions
// select is a series of a real gateway after some traffic — a package
// delivered to the web mailbox after its office's webhook answered 410 (so a
// breaker's state has a series), a repeat, a refusal (so the problem
// documents' counter has a series), a peer configured (so the followed
// packages' gauge has), a
// portal callback, a queue check run — a histogram's or summary's by its
// _bucket, _sum or _count, or is one of notExportedHere, with its reason and
// registered by the code. A metric renamed in the code and not in the
// dashboard left a panel empty without a word.
func TestDashboardMetricsAreExported(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	d := readDashboard(t, b)
	used := map[string]bool{}
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			names, _ := promQLSelectors(tg.Expr)
			for _, n := range names {
				used[n] = true
			}
		}
	}
	if len(used) < 40 || !used["amtsbote_submissions_accepted_total"] || !used["amtsbote_http_request_seconds_bucket"] {
		t.Fatalf("self-check: %d metric names read from the dashboard: %v", len(used), slices.Sorted(maps.Keys(used)))
	}

	gone := newHookRecv(t, secretA, http.StatusGone)
	portalHook := newHookRecv(t, secretB, http.StatusNoContent)
	f := start(t, func(c *config.Config) {
		c.Offices[DemoOfficeID] = c.Offices[DemoOfficeID].WithChannel(channel.Webhook, config.Channel{Endpoint: gone.srv.URL, Secret: secretA})
		c.Mailbox.Users = []config.MailboxUser{{Name: "anna", Office: DemoOfficeID, PasswordHash: cheapHash(t, "pruefer-passwort")}}
		p := c.Portals["amt24"]
		p.Callback = &config.PortalCallback{Endpoint: portalHook.srv.URL, Secret: webhook.NewSecret()}
		c.Portals["amt24"] = p
		// A peer for another state: its questions' and replies' counters at 0.
		c.Peers = []config.Peer{{ID: "gw-by", Name: "Bayern", Lands: []string{"09"}, BaseURL: "http://127.0.0.1:1"}}
		c.Delivery.QueueCheck = time.Second
	})
	ctx := context.Background()
	raw, err := f.portal.Sign(f.example())
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.portal.SubmitRaw(ctx, raw)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	if again, err := f.portal.SubmitRaw(ctx, raw); err != nil || again.Status != http.StatusOK {
		t.Fatalf("repeat: %v %+v", err, again)
	}
	if resp, body := post(t, f.g.URL(), "application/xml", []byte("not xml")); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("garbage: %d %s", resp.StatusCode, body)
	}
	waitFor(t, "the package in the web mailbox after the webhook's 410", func() bool {
		s, err := f.g.Broker.Submission(res.SubmissionID)
		return err == nil && s.State == submission.StateHandedOver
	})
	var body string
	waitFor(t, "a disabled breaker, a queue check, the mailbox's delivery and the garbage's problem in /metrics", func() bool {
		body = scrapeMetrics(t, f.g.URL())
		return strings.Contains(body, `amtsbote_endpoint_breaker_state{channel="webhook",office="`+DemoOfficeID+`"} 3`) &&
			strings.Contains(body, `amtsbote_http_problems_total{route="/v1/submissions",type="malformed-request"} 1`) &&
			strings.Contains(body, `amtsbote_queue_checks_total{outcome="ok"}`) &&
			strings.Contains(body, `amtsbote_delivery_attempts_total{channel="mailbox",outcome="ok"} 1`)
	})
	types := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`).FindAllStringSubmatch(body, -1) {
		types[m[1]] = m[2]
	}
	exported := func(name string) bool {
		if _, ok := types[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				if typ := types[base]; typ == "histogram" || typ == "summary" && suffix != "_bucket" {
					return true
				}
			}
		}
		return false
	}
	registered := sourceMetricNames(t)
	for _, name := range slices.Sorted(maps.Keys(used)) {
		why, listed := notExportedHere[name]
		switch {
		case exported(name) && listed:
			t.Errorf("%s is exported here: take it out of notExportedHere (%q)", name, why)
		case exported(name):
		case !listed:
			t.Errorf("the dashboard reads %s, which the gateway does not export (nor is it in notExportedHere)", name)
		case strings.HasPrefix(name, "amtsbote_") && !registered[name]:
			t.Errorf("the dashboard reads %s (%s), which no code registers", name, why)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(notExportedHere)) {
		if !used[name] {
			t.Errorf("notExportedHere lists %s, which the dashboard does not read", name)
		}
	}
	if !t.Failed() {
		t.Logf("%d metrics in the dashboard: %d exported by this gateway, %d listed with a reason", len(used), len(used)-len(notExportedHere), len(notExportedHere))
	}
}
