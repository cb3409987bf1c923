package config_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/config"
)

// referenceDoc holds the operators' configuration reference, the section
// referenceHeading of it.
const (
	referenceDoc     = "../docs/operations.md"
	referenceHeading = "### Every setting"
)

// mapKeys names the segment that stands for a map's keys in the reference, by the
// map's YAML name; a map not listed here gets "<key>".
var mapKeys = map[string]string{"portals": "<id>", "offices": "<id>", "channels": "<name>", "params": "<key>"}

// settingPaths lists the dotted YAML path of every leaf of t, as the reference
// writes them: a struct adds its fields ("nats.url"), a pointer is followed, a map
// adds its placeholder ("offices.<id>.token"), a list of structs adds "[]"
// ("peers[].id"). Scalars, lists of scalars and maps of scalars' values are
// leaves ("directory.files", "offices.<id>.channels.<name>.params.<key>").
func settingPaths(t reflect.Type, path, name string) []string {
	switch t.Kind() {
	case reflect.Pointer:
		return settingPaths(t.Elem(), path, name)
	case reflect.Map:
		key, ok := mapKeys[name]
		if !ok {
			key = "<key>"
		}
		return settingPaths(t.Elem(), join(path, key), key)
	case reflect.Slice, reflect.Array:
		if e := t.Elem(); e.Kind() == reflect.Struct || (e.Kind() == reflect.Pointer && e.Elem().Kind() == reflect.Struct) {
			return settingPaths(e, path+"[]", name)
		}
		return []string{path}
	case reflect.Struct:
		var out []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			switch {
			case tag == "-":
				continue
			case slices.Contains(strings.Split(opts, ","), "inline"):
				out = append(out, settingPaths(f.Type, path, name)...)
				continue
			case tag == "":
				tag = strings.ToLower(f.Name) // what the YAML package uses
			}
			out = append(out, settingPaths(f.Type, join(path, tag), tag)...)
		}
		return out
	}
	return []string{path}
}

func join(path, seg string) string {
	if path == "" {
		return seg
	}
	return path + "." + seg
}

// referenceSection cuts the reference out of the document: from its heading to the
// next heading of level 1 to 3 ("#### …" stays inside).
func referenceSection(doc string) (string, bool) {
	lines := strings.Split(doc, "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == referenceHeading })
	if start < 0 {
		return "", false
	}
	end := len(lines)
	for i := start + 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "# ") || strings.HasPrefix(lines[i], "## ") || strings.HasPrefix(lines[i], "### ") {
			end = i
			break
		}
	}
	return strings.Join(lines[start:end], "\n"), true
}

// undocumented returns the paths the section has no row for. The rule: a path is
// documented when a line of the section starts with the table cell that holds it
// in backticks, "| `nats.url` |". A mention elsewhere ("with `tls.rest`" in
// another row) does not count, the backticks make it a whole-key match
// ("`nats.max`" is not "`nats.max_store`"), and the full path is needed.
func undocumented(section string, paths []string) []string {
	rows := map[string]bool{}
	for _, l := range strings.Split(section, "\n") {
		if cell, _, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(l), "|"), "|"); ok {
			rows[strings.TrimSpace(cell)] = true
		}
	}
	var out []string
	for _, p := range paths {
		if !rows["`"+p+"`"] {
			out = append(out, p)
		}
	}
	return out
}

// TestEverySettingDocumented: every key of config.Config is in the configuration
// reference of docs/operations.md ("### Every setting"), so a new setting comes
// with its line there.
func TestEverySettingDocumented(t *testing.T) {
	b, err := os.ReadFile(referenceDoc)
	if err != nil {
		t.Fatal(err)
	}
	section, ok := referenceSection(string(b))
	if !ok {
		t.Fatalf("%s: no %q section", referenceDoc, referenceHeading)
	}
	if strings.Contains(section, "\n## ") {
		t.Fatalf("%s: the section was not cut at the next heading", referenceDoc)
	}

	paths := settingPaths(reflect.TypeFor[config.Config](), "", "")
	// The walk itself: it reaches into structs, pointers, maps and lists.
	for _, want := range []string{"gateway_id", "nats.url", "portals.<id>.callback.secret",
		"offices.<id>.channels.<name>.params.<key>", "peers[].lands", "mailbox.users[].name", "mailbox.smtp.addr"} {
		if !slices.Contains(paths, want) {
			t.Fatalf("settingPaths misses %q (got %d paths: %v)", want, len(paths), paths)
		}
	}

	// Planted defects: a key that does not exist and a prefix of one that does must
	// be reported by the same helper, or the check could pass by accident.
	// A key named only in another row's text is not documented either.
	planted := []string{"xta.no_such_setting", "nats.max"}
	if got := undocumented(section, append([]string{"gateway_id"}, planted...)); !slices.Equal(got, planted) {
		t.Fatalf("self-check: undocumented reported %v, want exactly %v", got, planted)
	}
	mentioned := "| `a.b` | — | see `a.c` |"
	if got := undocumented(mentioned, []string{"a.b", "a.c"}); !slices.Equal(got, []string{"a.c"}) {
		t.Fatalf("self-check: undocumented reported %v for a key only mentioned, want [a.c]", got)
	}

	missing := undocumented(section, paths)
	for _, p := range missing {
		t.Errorf("%s, %q: no row for `%s` (key, default, what it does)", referenceDoc, referenceHeading, p)
	}
	if len(missing) == 0 {
		t.Logf("%d settings, each with its row in %s", len(paths), referenceDoc)
	}
}
