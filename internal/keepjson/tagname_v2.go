//go:build goexperiment.jsonv2

package keepjson

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// tagName is the name encoding/json gives a field by its tag where it runs on
// encoding/json/v2 (GOEXPERIMENT=jsonv2, the default since Go 1.27), whose rule
// differs from the one before (tagname_v1.go): any name up to a comma, backslash
// or quote; where one of those follows, the leading Go identifier of the tag, and
// if the tag starts with none, "" (the field keeps its Go name). TestFieldsAsEncodingJSON
// holds this to the encoding/json it is built with.
func tagName(tag string) string {
	if tag == "" || tag[0] == ',' {
		return ""
	}
	n := len(tag) - len(strings.TrimLeftFunc(tag, func(r rune) bool {
		return !strings.ContainsRune(",\\'\"`", r)
	}))
	name := tag[:n]
	if n != len(tag) && tag[n] != ',' {
		r, _ := utf8.DecodeRuneInString(tag)
		if r != '_' && !unicode.IsLetter(r) {
			return ""
		}
		name = tag[:len(tag)-len(strings.TrimLeftFunc(tag, func(r rune) bool {
			return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
		}))]
	}
	if !utf8.ValidString(name) {
		name = string([]rune(name)) // as encoding/json: invalid UTF-8 as U+FFFD
	}
	return name
}
