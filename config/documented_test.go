package config_test

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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

// readReferenceSection is referenceSection of referenceDoc; the test fails
// without it.
func readReferenceSection(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(referenceDoc)
	if err != nil {
		t.Fatal(err)
	}
	section, ok := referenceSection(string(b))
	if !ok {
		t.Fatalf("%s: no %q section", referenceDoc, referenceHeading)
	}
	return section
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
	section := readReferenceSection(t)
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

// defaultCell reads a row of the reference: its key and the default column.
var defaultRow = regexp.MustCompile("^\\| `([^`]+)` \\| ([^|]*) \\|")

// fieldByPath follows a dotted YAML path through the configuration's structs;
// ok is false for a path through a map or a list (no default there to read).
func fieldByPath(v reflect.Value, path string) (reflect.Value, bool) {
	for _, seg := range strings.Split(path, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		var next reflect.Value
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "" {
				tag = strings.ToLower(f.Name)
			}
			if tag == seg {
				next = v.Field(i)
				break
			}
		}
		if !next.IsValid() {
			return reflect.Value{}, false
		}
		for next.Kind() == reflect.Pointer {
			if next.IsNil() {
				next = reflect.Zero(next.Type().Elem())
			} else {
				next = next.Elem()
			}
		}
		v = next
	}
	return v, true
}

// documentedDefault compares the default column's value with what
// config.Default() has. The column starts either with the value in backticks
// ("`30s`", "`16`", "`0` = 64 MiB": the built-in zero the code replaces) or with
// "—" (no value); a value naming another setting ("`<data_dir>/pki`") or a
// derived one is not compared. It returns what is wrong, or "".
func documentedDefault(cell string, v reflect.Value) string {
	cell = strings.TrimSpace(cell)
	switch {
	case strings.HasPrefix(cell, "—"):
		if !v.IsZero() {
			return fmt.Sprintf("documented as no value (—), the default is %v", v.Interface())
		}
		return ""
	case !strings.HasPrefix(cell, "`"):
		return "" // "required", prose
	}
	lit, _, _ := strings.Cut(cell[1:], "`")
	if strings.Contains(lit, "<") {
		return ""
	}
	var want any
	var err error
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		want, err = time.ParseDuration(lit)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		var n int64
		n, err = strconv.ParseInt(lit, 10, 64)
		want = reflect.ValueOf(n).Convert(v.Type()).Interface()
	case v.Kind() == reflect.Bool:
		want, err = strconv.ParseBool(lit)
	case v.Kind() == reflect.String:
		want = lit
	default:
		return ""
	}
	if err != nil {
		return fmt.Sprintf("default %q is not a value of its type %s: %v", lit, v.Type(), err)
	}
	if !reflect.DeepEqual(want, v.Interface()) {
		return fmt.Sprintf("documented default %q, config.Default() has %v", lit, v.Interface())
	}
	return ""
}

// TestEveryDefaultAsDocumented: the default column of the reference says what
// config.Default() holds, and every row names a setting that exists. The other
// test only asked for a row per setting; a default changed in the code (or a
// setting removed) left an operator reading a wrong value in the table.
func TestEveryDefaultAsDocumented(t *testing.T) {
	section := readReferenceSection(t)
	paths := settingPaths(reflect.TypeFor[config.Config](), "", "")
	def := reflect.ValueOf(config.Default())

	// Self-check of the comparison on planted cells.
	for _, c := range []struct {
		cell  string
		value any
		bad   bool
	}{{"`30s`", 30 * time.Second, false}, {"`720h` (30 days)", 720 * time.Hour, false}, {"`31s`", 30 * time.Second, true},
		{"`0` = 64 MiB", 0, false}, {"`8`", 7, true}, {"— (embedded server)", "", false}, {"—", 5, true},
		{"`text`", "json", true}, {"`false`", false, false}, {"`<data_dir>/pki`", "", false}, {"required", "", false}} {
		if got := documentedDefault(c.cell, reflect.ValueOf(c.value)); (got != "") != c.bad {
			t.Fatalf("self-check: %q against %v: %q", c.cell, c.value, got)
		}
	}

	compared := 0
	for _, l := range strings.Split(section, "\n") {
		m := defaultRow.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil || m[1] == "key" {
			continue
		}
		path := m[1]
		if !slices.Contains(paths, path) {
			t.Errorf("%s: a row for `%s`, which is no setting", referenceDoc, path)
			continue
		}
		v, ok := fieldByPath(def, path)
		if !ok {
			continue // inside a map or list: no built-in default to compare
		}
		compared++
		if msg := documentedDefault(m[2], v); msg != "" {
			t.Errorf("%s, `%s`: %s", referenceDoc, path, msg)
		}
	}
	if compared < 50 {
		t.Fatalf("compared only %d defaults", compared)
	}
	t.Logf("%d defaults as documented", compared)
}
