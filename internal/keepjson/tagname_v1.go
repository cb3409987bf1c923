//go:build !goexperiment.jsonv2

package keepjson

import (
	"strings"
	"unicode"
)

// tagName is the name encoding/json gives a field by its tag (its own, without
// GOEXPERIMENT=jsonv2): the part before the first comma if it is a valid name,
// else "" (the field keeps its Go name).
func tagName(tag string) string {
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		return ""
	}
	for _, c := range name {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
			// Backslash and quote chars are reserved, but otherwise any
			// punctuation chars are allowed in a tag name.
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return ""
		}
	}
	return name
}
