package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// reUnknownField is how the YAML library words a key the configuration does not
// have: "line 2: field gateway_kye not found in type config.PKI".
var reUnknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type config\.(\w+)$`)

// readableYAMLError rewrites the YAML library's unknown-key errors in the
// operator's terms: the setting's path as the file spells it and the setting
// meant, instead of the Go type that holds it ("config.PKI" says nothing to an
// operator who typed pki.gateway_kye). Other errors pass unchanged.
func readableYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	paths := settingPaths()
	lines := make([]string, 0, len(te.Errors))
	offOnly := true
	for _, e := range te.Errors {
		if m := reBareDuration.FindStringSubmatch(e); m != nil {
			if offDuration(m[2]) {
				continue // read as seconds (durations.go)
			}
			offOnly = false
			lines = append(lines, fmt.Sprintf("line %s: a duration needs its unit: write %ss (or 15m, 720h)", m[1], m[2]))
			continue
		}
		offOnly = false
		m := reUnknownField.FindStringSubmatch(e)
		if m == nil {
			lines = append(lines, e)
			continue
		}
		line, key, typ := m[1], m[2], m[3]
		parent, ok := paths[typ]
		if !ok {
			lines = append(lines, e)
			continue
		}
		msg := fmt.Sprintf("line %s: %s is not a setting", line, join(parent.path, key))
		if near := nearest(key, parent.keys); near != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", join(parent.path, near))
		} else if parent.path != "" {
			msg += " of " + parent.path
		}
		lines = append(lines, msg)
	}
	if offOnly {
		return errOnlyOffDurations
	}
	return errors.New(strings.Join(lines, "; "))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// settingNode is one struct of the configuration: where it sits in the file
// and the keys it takes.
type settingNode struct {
	path string
	keys []string
}

// settingPaths maps the Go type name of every struct in Config to its place in
// the YAML file (a map's entries as <id>).
func settingPaths() map[string]settingNode {
	out := map[string]settingNode{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			if t.Kind() == reflect.Map {
				path = join(path, "<id>")
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t.PkgPath() != reflect.TypeFor[Config]().PkgPath() {
			return
		}
		if _, seen := out[t.Name()]; seen {
			return
		}
		n := settingNode{path: path}
		out[t.Name()] = n
		for i := range t.NumField() {
			name, ok := yamlKey(t.Field(i))
			if !ok {
				continue
			}
			n.keys = append(n.keys, name)
			walk(t.Field(i).Type, join(path, name))
		}
		out[t.Name()] = n
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// yamlKey is the key a struct field has in the YAML file, as the YAML library
// reads it (its tag, or its lower-cased name); ok is false for a field the file
// cannot set.
func yamlKey(f reflect.StructField) (name string, ok bool) {
	name, _, _ = strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return "", false
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, true
}

// nearest is the key of keys closest to key by edit distance, if it is close
// enough to be a typo (at most a third of the key's letters differ).
func nearest(key string, keys []string) string {
	best, bestD := "", len(key)/3+1
	for _, k := range keys {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
