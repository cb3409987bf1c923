package config

import (
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Durations written as a bare number.
//
// The YAML library reads a duration only with its unit ("90s", "720h") and refuses
// a plain integer, but the documentation (and every operator) writes the off
// values as `0` and `-1`, and the environment variables take them (setScalar
// reads them the same way): a retention block with `unanswered: 0` stopped the
// gateway at start. A bare 0 or negative number is read as that many seconds —
// only the sign matters for those settings. A positive bare number stays refused
// (30 could mean seconds or nanoseconds); the error says to write the unit.

var durationType = reflect.TypeFor[time.Duration]()

// reBareDuration is the library's refusal of a number for a duration.
var reBareDuration = regexp.MustCompile("^line (\\d+): cannot unmarshal !!int `(-?[0-9_]+)` into time\\.Duration$")

// offDuration reports whether a bare integer is one read as a duration (≤ 0).
func offDuration(v string) bool {
	n, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 0, 64)
	return err == nil && n <= 0
}

// markOffDurations rewrites, in the document n, every bare integer ≤ 0 that sits
// where t has a time.Duration into the string "<n>s", and reports whether it
// rewrote any.
func markOffDurations(n *yaml.Node, t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	changed := false
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			changed = markOffDurations(c, t) || changed
		}
	case yaml.ScalarNode:
		if t == durationType && n.Tag == "!!int" && offDuration(n.Value) {
			n.Tag, n.Value = "!!str", strings.ReplaceAll(n.Value, "_", "")+"s"
			return true
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for _, c := range n.Content {
				changed = markOffDurations(c, t.Elem()) || changed
			}
		}
	case yaml.MappingNode:
		switch t.Kind() {
		case reflect.Map:
			for i := 1; i < len(n.Content); i += 2 {
				changed = markOffDurations(n.Content[i], t.Elem()) || changed
			}
		case reflect.Struct:
			fields := map[string]reflect.Type{}
			for i := range t.NumField() {
				if name, ok := yamlKey(t.Field(i)); ok {
					fields[name] = t.Field(i).Type
				}
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				if ft, ok := fields[n.Content[i].Value]; ok {
					changed = markOffDurations(n.Content[i+1], ft) || changed
				}
			}
		}
	}
	return changed
}

// errOnlyOffDurations is what readableYAMLError answers when every error of the
// strict decode was a bare number ≤ 0 for a duration.
var errOnlyOffDurations = errors.New("config: only bare off values for durations")

// decodeWithOffDurations decodes b into c with the bare off values of durations
// read as seconds. The strict decode before it has found every unknown key; this
// one reads the values (a node's Decode has no KnownFields).
func decodeWithOffDurations(b []byte, c *Config) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return readableYAMLError(err)
	}
	markOffDurations(&doc, reflect.TypeFor[Config]())
	if err := doc.Decode(c); err != nil {
		return readableYAMLError(err)
	}
	return nil
}
