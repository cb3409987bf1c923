package doccheck

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// operatorText is a file operators take names from, to type them or to query
// them: README.md, the pages under docs/, and everything under deploy/ (the
// alert rules and their tests, the systemd unit, the NATS configurations, and a
// dashboard once one is added there).
type operatorText struct {
	rel      string // the path from the repository's root, for messages
	text     string
	markdown bool // code is in spans and fenced blocks; elsewhere every line may be code
}

// operatorTexts reads README.md, docs/*.md and the files under deploy/.
func operatorTexts(t *testing.T) []operatorText {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	paths = append(paths, filepath.Join(root, "README.md"))
	err = filepath.WalkDir(filepath.Join(root, "deploy"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []operatorText
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, operatorText{rel: filepath.ToSlash(rel), text: string(b), markdown: strings.HasSuffix(p, ".md")})
	}
	if len(out) < 10 || !slices.ContainsFunc(out, func(o operatorText) bool { return o.rel == "deploy/prometheus/amtsbote-alerts.yml" }) {
		t.Fatalf("self-check: read %d files, without the alert rules", len(out))
	}
	return out
}

// lineOf is the line number of the byte at offset in text.
func lineOf(text string, offset int) int {
	return strings.Count(text[:offset], "\n") + 1
}

// formerNames are names the pages may give although the code no longer has
// them: a metric, an alert or a command line ("amtsbote gc -old-flag") that was
// renamed or removed, named where a page tells its history ("before 2026-12-05
// it was called …", what a dashboard has to change). Each with the reason it
// stays. Keep it short: an entry no page needs any more (the history was cut,
// or the code has the name again) fails its check, so none lingers.
var formerNames = map[string]string{}

// checkFormerNames fails for the entries of formerNames of one kind (is says
// which) that the check did not need.
func checkFormerNames(t *testing.T, is func(string) bool, used map[string]bool) {
	t.Helper()
	for name := range formerNames {
		if is(name) && !used[name] {
			t.Errorf("formerNames has %q, which no page needs any more: remove it", name)
		}
	}
}

// unknownMentions returns the names mention finds in text that known does not
// take, as "line N: name". A name written as a prefix (ending in "*" or "_":
// "amtsbote_delivery_*") needs only hasPrefix to take it, when hasPrefix is
// given. A name of formerNames is not one of them, and goes into used.
func unknownMentions(text string, mention *regexp.Regexp, known, hasPrefix func(string) bool, used map[string]bool) []string {
	var out []string
	for _, loc := range mention.FindAllStringIndex(text, -1) {
		name := text[loc[0]:loc[1]]
		var ok bool
		if prefix, isPrefix := strings.CutSuffix(name, "*"); hasPrefix != nil && (isPrefix || strings.HasSuffix(name, "_")) {
			ok = hasPrefix(prefix)
		} else {
			ok = known(name)
		}
		if !ok && formerNames[name] != "" {
			ok, used[name] = true, true
		}
		if !ok {
			out = append(out, fmt.Sprintf("line %d: %s", lineOf(text, loc[0]), name))
		}
	}
	return out
}

// walkRepo calls fn for each file of the repository whose name keep takes,
// outside hidden folders, testdata, node_modules and tools (the installed
// tools' sources).
func walkRepo(keep func(path string) bool, fn func(path string) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules" || n == "tools") {
				return filepath.SkipDir
			}
			return nil
		}
		if !keep(path) {
			return nil
		}
		return fn(path)
	})
}

// checkMentions reports each name mention finds in texts that unknown does
// not take (what says what it is not), fails for entries of formerNames of
// the same pattern no text needed, and for fewer than least mentions in all:
// the pattern no longer matching how the names are written. It returns the
// number of mentions.
func checkMentions(t *testing.T, texts []operatorText, mention *regexp.Regexp, unknown func(text string, used map[string]bool) []string, what string, least int) int {
	t.Helper()
	used := map[string]bool{}
	mentions := 0
	for _, o := range texts {
		mentions += len(mention.FindAllString(o.text, -1))
		for _, u := range unknown(o.text, used) {
			t.Errorf("%s, %s: %s", o.rel, u, what)
		}
	}
	checkFormerNames(t, mention.MatchString, used)
	if mentions < least {
		t.Fatalf("only %d names of %s in the texts read: the pattern no longer matches how they are written", mentions, mention)
	}
	return mentions
}
