package doccheck

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// sectionRef is a reference to a section of another page as the pages, the code's
// comments and its error messages write them: docs/operations.md, "Backup and
// restore" (with or without the comma).
var sectionRef = regexp.MustCompile(`(docs/[a-z]+\.md),? *(?:section +)?"([^"\n]{3,80})"`)

// headingLine is a Markdown heading; boldLead a paragraph or list entry that
// starts with a bold name ("- **Channels by table, resolved at attempt time.**"),
// which pages refer to as they refer to headings.
var (
	headingLine = regexp.MustCompile(`(?m)^#+\s+(.+)$`)
	boldLead    = regexp.MustCompile(`(?m)^\s*(?:[-*]\s+)?\*\*([^*\n]+)\*\*`)
)

// fence is a fenced code block, whose "# comment" lines are no headings.
var fence = regexp.MustCompile("(?ms)^\\s*```.*?^\\s*```")

// sectionNames lists what a reference to the page may name.
func sectionNames(page string) []string {
	page = fence.ReplaceAllString(page, "")
	var out []string
	for _, m := range headingLine.FindAllStringSubmatch(page, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	for _, m := range boldLead.FindAllStringSubmatch(page, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

// named says whether one of the names holds the reference: a heading is often
// cited by its beginning ("Retries" for "Retries, Retry-After and the circuit
// breaker") or without its number ("Configuration" for "1. Configuration
// (`peers:`)").
func named(names []string, ref string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, ref) })
}

// TestSectionReferencesExist: every reference to a section of a page under
// docs/ — in README.md, the pages themselves and the Go code, whose error
// messages send operators there ("docs/transfer.md, \"The folder's
// .amtsbote/\"") — names a heading (or a bold lead) that the page has. A
// section renamed or merged left the reader searching a page for a title it
// does not have.
func TestSectionReferencesExist(t *testing.T) {
	pages := map[string][]string{}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range docs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		pages["docs/"+filepath.Base(p)] = sectionNames(string(b))
	}
	// Self-check on a planted page: a heading by its beginning and without its
	// number, a bold lead, and names it does not have (one only in a code block).
	planted := sectionNames("# Page\n\n## Backup and restore\n\n### 1. Configuration (`peers:`)\n\n" +
		"- **Channels by table, resolved at attempt time.** Text.\n\n```sh\n# Not a heading\n```\n")
	for ref, want := range map[string]bool{"Backup and restore": true, "Backup": true, "Configuration": true,
		"Channels by table": true, "Backups and restores": false, "Not a heading": false} {
		if named(planted, ref) != want {
			t.Fatalf("self-check: %q named by %q: %v, want %v", ref, planted, !want, want)
		}
	}

	refs := 0
	err = walkRepo(func(path string) bool {
		return strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".md")
	}, func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, m := range sectionRef.FindAllStringSubmatch(string(b), -1) {
			if rel == filepath.Join("internal", "doccheck", "sections_test.go") {
				continue // the examples above
			}
			refs++
			names, ok := pages[m[1]]
			switch {
			case !ok:
				t.Errorf("%s refers to %s, which does not exist", rel, m[1])
			case !named(names, m[2]):
				t.Errorf("%s refers to %s, %q: the page has no such section", rel, m[1], m[2])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if refs < 40 {
		t.Fatalf("only %d section references found: the pattern no longer matches how they are written", refs)
	}
	if !t.Failed() {
		t.Logf("%d section references, each to a section that exists", refs)
	}
}
