package doccheck

import (
	"io/fs"
	"os"
	"path/filepath"
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
