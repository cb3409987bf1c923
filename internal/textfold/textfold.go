// Package textfold folds text the way people type it, so that "Görlitz", "Goerlitz",
// "Gorlitz" and a decomposed "Go\u0308rlitz" compare equal. The directory (routing)
// matches place and service names with it, and the office list's search (broker)
// matches its cases with it, so a clerk finds a case by the place as she would find
// the place.
package textfold

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Fold makes text comparable the way people type it: lower case, umlauts and their
// transcriptions alike ("Mängel", "Maengel" and "Mangel" fold to "mangel"), ß as ss,
// accents and the diacritics of Sorbian, Danish and other Latin letters dropped
// ("Budyšin" = "budysin", "Běła" = "bela"), punctuation as single spaces. Index and
// query go through the same function, and a prefix of a word folds to a prefix of the
// folded word, which is what search-as-you-type needs.
//
// Composed and decomposed (NFD) input fold alike: text with a combining mark is taken
// in NFC first, so a decomposed letter outside latinBase ("a\u030c") keeps its accent
// as the composed one does ("ǎ"), instead of losing it to the rule that drops marks.
// Text without marks, nearly all of it, is not normalized at all (that costs).
func Fold(s string) string { return fold(s, false) }

func fold(s string, nfc bool) string {
	var b strings.Builder
	b.Grow(len(s))
	space := true // drop leading spaces
	var prev rune
	for _, r := range s {
		if r >= utf8.RuneSelf {
			if unicode.Is(unicode.Mn, r) {
				if !nfc {
					return fold(norm.NFC.String(s), true)
				}
				continue // a mark with no composed letter: drop it, "q\u0308" is "q"
			}
			r = unicode.ToLower(r)
			if r == 'ß' {
				b.WriteString("ss")
				space, prev = false, 's'
				continue
			}
			if base, ok := latinBase[r]; ok {
				r = base
			}
		} else if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		if r == 'e' && (prev == 'a' || prev == 'o' || prev == 'u') {
			// "ae", "oe", "ue" are the ASCII spelling of ä, ö, ü: keep only the vowel.
			prev = 0
			continue
		}
		if r < utf8.RuneSelf && ('a' <= r && r <= 'z' || '0' <= r && r <= '9') {
			b.WriteByte(byte(r))
			space, prev = false, r
			continue
		}
		if r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
			space, prev = false, r
			continue
		}
		if !space {
			b.WriteByte(' ')
			space = true
		}
		prev = 0
	}
	return strings.TrimRight(b.String(), " ")
}

// latinBase maps the accented Latin letters of place names (Latin-1 and Latin
// Extended-A: German, Sorbian, Danish, Frisian, Polish, Czech) to their base letter.
// æ and œ become a and o, which is what "ae" and "oe" fold to anyway.
var latinBase = func() map[rune]rune {
	m := map[rune]rune{}
	for base, letters := range map[rune]string{
		'a': "àáâãäåæāăą",
		'c': "çćĉċč",
		'd': "ďđð",
		'e': "èéêëēĕėęě",
		'g': "ĝğġģ",
		'h': "ĥħ",
		'i': "ìíîïĩīĭįı",
		'j': "ĵ",
		'k': "ķ",
		'l': "ĺļľŀł",
		'n': "ñńņňŉ",
		'o': "òóôõöøōŏőœ",
		'r': "ŕŗř",
		's': "śŝşš",
		't': "ţťŧ",
		'u': "ùúûüũūŭůűų",
		'w': "ŵ",
		'y': "ýÿŷ",
		'z': "źżž",
	} {
		for _, r := range letters {
			m[r] = base
		}
	}
	return m
}()
