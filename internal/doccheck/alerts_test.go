package doccheck

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The alert rules, their promtool unit tests, and the table operators look an
// alert up in when it fires.
const (
	alertRules = "deploy/prometheus/amtsbote-alerts.yml"
	alertTests = "deploy/prometheus/amtsbote-alerts.test.yml"
	// alertDayTests are the scenarios that run for days, at a coarser step
	// (its header says why); an alert may fire in either file.
	alertDayTests = "deploy/prometheus/amtsbote-alerts.days.test.yml"
	alertTable    = "docs/operations.md"
)

// alertMention is an alert's name wherever it is written.
var alertMention = regexp.MustCompile(`\bAmtsbote[A-Z][A-Za-z0-9]*`)

// alertRow is a row of the "## Alerts" table: "| `AmtsboteDown` (critical) | …".
var alertRow = regexp.MustCompile("(?m)^\\| *`(Amtsbote[A-Za-z0-9]+)`( *\\(critical\\))? *\\|")

// readAlerts returns the severity of every alert of a rule file.
func readAlerts(b []byte) (map[string]string, error) {
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out[r.Alert] = r.Labels["severity"]
			}
		}
	}
	return out, nil
}

// firingTests returns the alerts a promtool test file expects to fire somewhere
// (a case with exp_alerts; one with none only shows it quiet).
func firingTests(b []byte) (map[string]bool, error) {
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, t := range f.Tests {
		for _, a := range t.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				out[a.Alertname] = true
			}
		}
	}
	return out, nil
}

// alertsSection is the "## Alerts" section of docs/operations.md.
func alertsSection(doc string) string {
	_, rest, _ := strings.Cut(doc, "\n## Alerts\n")
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// alertProblems holds the rules against the table of alerts and the rule tests:
// every alert has its row, marked "(critical)" exactly when its severity is
// critical, every row is an alert, and every alert fires in a test.
func alertProblems(rules map[string]string, table string, firing map[string]bool) []string {
	rows := map[string]bool{} // alert → marked critical
	var out []string
	for _, m := range alertRow.FindAllStringSubmatch(table, -1) {
		if _, ok := rules[m[1]]; !ok {
			out = append(out, fmt.Sprintf("%s's table has a row for %s, which %s does not define", alertTable, m[1], alertRules))
		}
		rows[m[1]] = m[2] != ""
	}
	for _, a := range slices.Sorted(maps.Keys(rules)) {
		critical, ok := rows[a]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s defines %s, which has no row in %s's table of alerts", alertRules, a, alertTable))
		case critical != (rules[a] == "critical"):
			out = append(out, fmt.Sprintf("%s's table marks %s critical: %v; its severity is %q", alertTable, a, critical, rules[a]))
		}
		if !firing[a] {
			out = append(out, fmt.Sprintf("%s defines %s, which fires in no case of %s or %s", alertRules, a, alertTests, alertDayTests))
		}
	}
	return out
}

// unknownAlerts returns the alert names in text that rules has not, as
// "line N: name"; a name of formerNames is not one of them, and goes into used.
func unknownAlerts(text string, rules map[string]string, used map[string]bool) []string {
	return unknownMentions(text, alertMention, func(name string) bool {
		_, ok := rules[name]
		return ok
	}, nil, used)
}

// TestAlertNamesExist: every alert name README.md, docs/, deploy/ and the Go
// code's comments and messages give is an alert of
// deploy/prometheus/amtsbote-alerts.yml; every alert there has its row in
// docs/operations.md's table of alerts (what fires it, what to do), marked
// critical as its severity is, and — as the rule file's header promises — fires
// in a case of its promtool tests. The person on call searches the docs for the
// name the page carried; an alert renamed or added without its row left them
// with nothing to read, and a row's "(critical)" decides whether they get up.
func TestAlertNamesExist(t *testing.T) {
	// Self-checks on planted rules, table, tests and text.
	plantedRules, err := readAlerts([]byte("groups:\n  - name: g\n    rules:\n" +
		"      - {alert: AmtsboteDown, expr: 'up == 0', labels: {severity: critical}}\n" +
		"      - {alert: AmtsboteSlow, expr: 'x > 1', labels: {severity: warning}}\n" +
		"      - {alert: AmtsboteLate, expr: 'y > 1', labels: {severity: warning}}\n" +
		"      - {record: 'amtsbote:rate5m', expr: 'rate(x[5m])'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	plantedFiring, err := firingTests([]byte("tests:\n  - alert_rule_test:\n" +
		"      - {alertname: AmtsboteDown, exp_alerts: [{exp_labels: {severity: critical}}]}\n" +
		"      - {alertname: AmtsboteSlow, exp_alerts: [{exp_labels: {severity: warning}}]}\n" +
		"      - {alertname: AmtsboteLate, exp_alerts: []}\n"))
	if err != nil {
		t.Fatal(err)
	}
	table := "| alert | fires when | what to do |\n|---|---|---|\n" +
		"| `AmtsboteDown` | … | … |\n| `AmtsboteSlow` (critical) | … | … |\n| `AmtsboteGone` | … | … |\n"
	want := []string{
		alertTable + "'s table has a row for AmtsboteGone, which " + alertRules + " does not define",
		alertTable + "'s table marks AmtsboteDown critical: false; its severity is \"critical\"",
		alertRules + " defines AmtsboteLate, which has no row in " + alertTable + "'s table of alerts",
		alertRules + " defines AmtsboteLate, which fires in no case of " + alertTests + " or " + alertDayTests,
		alertTable + "'s table marks AmtsboteSlow critical: true; its severity is \"warning\"",
	}
	if got := alertProblems(plantedRules, table, plantedFiring); !slices.Equal(got, want) {
		t.Fatalf("self-check: alertProblems reported %q, want %q", got, want)
	}
	formerNames["AmtsboteOld"] = "planted"
	used := map[string]bool{}
	got := unknownAlerts("`AmtsboteDown` fires, AmtsboteSlow too;\nnot AmtsboteDwn, nor Amtsbote alone, AmtsboteOld once did", plantedRules, used)
	delete(formerNames, "AmtsboteOld")
	if want := []string{"line 2: AmtsboteDwn"}; !slices.Equal(got, want) || !used["AmtsboteOld"] {
		t.Fatalf("self-check: unknownAlerts reported %q (former name used: %v), want %q", got, used["AmtsboteOld"], want)
	}

	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rules, err := readAlerts(read(alertRules))
	if err != nil {
		t.Fatalf("%s: %v", alertRules, err)
	}
	firing := map[string]bool{}
	for _, f := range []string{alertTests, alertDayTests} {
		in, err := firingTests(read(f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		maps.Copy(firing, in)
	}
	section := alertsSection(string(read(alertTable)))
	if len(rules) < 20 || len(alertRow.FindAllString(section, -1)) < 20 {
		t.Fatalf("self-check: %d alerts in %s, %d rows in %s's \"## Alerts\": the file or the table is no longer read",
			len(rules), alertRules, len(alertRow.FindAllString(section, -1)), alertTable)
	}
	for _, p := range alertProblems(rules, section, firing) {
		t.Error(p)
	}

	// The pages, and the Go code's comments and messages, which send the
	// reader to an alert as often (this package's own planted names aside).
	texts := operatorTexts(t)
	doccheck := filepath.Join(root, "internal", "doccheck") + string(filepath.Separator)
	err = walkRepo(func(path string) bool {
		return strings.HasSuffix(path, ".go") && !strings.HasPrefix(path, doccheck)
	}, func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(root, path); strings.Contains(string(b), "Amtsbote") { // most files name none: spare them the pattern
			texts = append(texts, operatorText{rel: filepath.ToSlash(rel), text: string(b)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mentions := checkMentions(t, texts, alertMention, func(text string, used map[string]bool) []string {
		return unknownAlerts(text, rules, used)
	}, "no alert of "+alertRules, 150)
	if !t.Failed() {
		t.Logf("%d alerts, each in the table and fired by a test; %d alert names in the pages and the code, each an alert", len(rules), mentions)
	}
}
