package routing

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// The place query parser: what a portal or a citizen writes as a place, read by its
// form. Keys come in many notations ("14 6 25 020 020", "14.625.020", "ARS
// 146250020020", the XRepository URN), an address line puts the postcode before or
// after the name ("01877 Bischofswerda", "Bischofswerda (01877)"), and a name may
// carry the kind of area in front ("Landkreis Bautzen", "Stadt Leipzig", "LK
// Görlitz").

type queryKind uint8

const (
	qName         queryKind = iota
	qKey                    // an ARS or ARS prefix (2, 3, 5, 9 or 12 digits)
	qAGS                    // an 8-digit Amtlicher Gemeindeschlüssel
	qPostcode               // a 5-digit postcode
	qPostcodeName           // a postcode narrowed by a name
)

type placeQuery struct {
	kind     queryKind
	digits   string // qKey, qAGS, qPostcode, qPostcodeName (the postcode)
	name     string // qName, qPostcodeName
	original string // trimmed input, for messages
}

var (
	// keyLabelRE: a label in front of a key ("ARS: 14 6 25 ...", "AGS 14625020", "PLZ 01067").
	keyLabelRE = regexp.MustCompile(`(?i)^(ars|ags|rs|gkz|plz|regionalschl(?:ü|ue)ssel|gemeindeschl(?:ü|ue)ssel|gemeindekennziffer|postleitzahl)\s*[:=#]?\s*([0-9].*)$`)
	// postcodeFirstRE and postcodeLastRE: an address line.
	postcodeFirstRE = regexp.MustCompile(`^(?i:d|de)?-?\s*([0-9]{5})[\s,]+(.*\S)$`)
	postcodeLastRE  = regexp.MustCompile(`^(.*?)[\s,]*\(?([0-9]{5})\)?$`)
)

const urnPrefix = "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:"

// parsePlaceQuery reads a place by its form. It fails only for input that cannot be a
// place at all (empty, too long, a number of the wrong length).
func parsePlaceQuery(s string) (placeQuery, error) {
	p := asciiSpaces(strings.TrimSpace(s))
	q := placeQuery{original: p}
	if p == "" {
		return q, fmt.Errorf("%w: place is empty", ErrInvalidQuery)
	}
	if len(p) > 200 {
		return q, fmt.Errorf("%w: place is too long", ErrInvalidQuery)
	}
	label, rest := "", p
	if len(p) > len(urnPrefix) && strings.EqualFold(p[:len(urnPrefix)], urnPrefix) {
		// urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs:146120000000
		if i := strings.IndexByte(p[len(urnPrefix):], ':'); i > 0 {
			label, rest = strings.ToLower(p[len(urnPrefix):len(urnPrefix)+i]), p[len(urnPrefix)+i+1:]
		}
	} else if p[0] > '9' && strings.IndexAny(p, "0123456789") > 0 {
		if m := keyLabelRE.FindStringSubmatch(p); m != nil {
			label, rest = strings.ToLower(m[1]), m[2]
		}
	}
	if digits, groups, ok := keyDigits(rest); ok {
		q.digits = digits
		n := len(digits)
		switch {
		case label == "ars" || label == "rs" || strings.HasPrefix(label, "regional"):
			q.kind = qKey
			if n != 2 && n != 3 && n != 5 && n != 9 && n != 12 {
				return q, fmt.Errorf("%w: %s: an ARS has 2, 3, 5, 9 or 12 digits", ErrInvalidQuery, quote(p))
			}
		case label == "ags" || label == "gkz" || strings.HasPrefix(label, "gemeinde"):
			q.kind = qKey
			if n == 8 {
				q.kind = qAGS
			} else if n != 2 && n != 3 && n != 5 {
				return q, fmt.Errorf("%w: %s: an AGS has 8 digits (2, 3 or 5 for a higher level)", ErrInvalidQuery, quote(p))
			}
		case label == "plz" || label == "postleitzahl":
			q.kind = qPostcode
			if n != 5 {
				return q, fmt.Errorf("%w: %s: a postcode has 5 digits", ErrInvalidQuery, quote(p))
			}
		case n == 12 || n == 2 || n == 3 || n == 9:
			q.kind = qKey
		case n == 8:
			q.kind = qAGS
		case n == 5 && groups == 3:
			q.kind = qKey // "14 6 25": Land, Regierungsbezirk, Kreis
		case n == 5:
			q.kind = qPostcode
		default:
			return q, fmt.Errorf("%w: %s: a number must be an ARS (12 digits), AGS (8) or postcode (5)", ErrInvalidQuery, quote(p))
		}
		return q, nil
	}
	if strings.ContainsAny(p, "0123456789") { // only then can it hold a postcode
		if m := postcodeFirstRE.FindStringSubmatch(p); m != nil {
			q.kind, q.digits, q.name = qPostcodeName, m[1], strings.Trim(m[2], " ,")
			if q.name == "" {
				q.kind = qPostcode // "01067 ,"
			}
			return q, nil
		}
		if m := postcodeLastRE.FindStringSubmatch(p); m != nil && !isKeyPunct(m[1]) {
			q.kind, q.digits, q.name = qPostcodeName, m[2], strings.Trim(m[1], " ,")
			if strings.TrimSpace(q.name) == "" {
				q.kind = qPostcode
			}
			return q, nil
		}
	}
	q.kind, q.name = qName, p
	return q, nil
}

// asciiSpaces writes every kind of space as a plain one. The forms above match
// spaces with `\s`, which is ASCII only, and what a citizen pastes from a web page
// or a letter often has a no-break space between postcode and town ("01067\u00a0
// Dresden" was an unknown place) or a stray vertical tab ("01067 \v," named a
// place "\v" instead of taking the postcode alone). strings.Map returns s itself
// when nothing changes, so the usual query costs no copy.
func asciiSpaces(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, s)
}

// keyDigits reads a key written with separators ("14 6 25 020 020", "14-625-020",
// "14.6.25"): the digits, the number of digit groups, and whether s is nothing else.
func keyDigits(s string) (string, int, bool) {
	if isDigits(s) {
		return s, 1, true
	}
	var b strings.Builder
	groups, inGroup := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
			if !inGroup {
				groups++
				inGroup = true
			}
		case c == ' ' || c == '.' || c == '-' || c == '/' || c == '_' || c == '\t':
			inGroup = false
		default:
			return "", 0, false
		}
	}
	return b.String(), groups, b.Len() > 0
}

func isKeyPunct(s string) bool {
	_, _, ok := keyDigits(s)
	return ok || strings.Trim(s, " .-/_,()") == ""
}

// designationWords are the words in front of a name that say which kind of area is
// meant; "LK", "Lkr." and "Landkr." are Landkreis.
var designationWords = []struct {
	words []string
	class classMask
}{
	{[]string{"landkreis"}, 1 << classKreis},
	{[]string{"lk"}, 1 << classKreis},
	{[]string{"lkr"}, 1 << classKreis},
	{[]string{"lkrs"}, 1 << classKreis},
	{[]string{"landkr"}, 1 << classKreis},
	{[]string{"kreis"}, 1 << classKreis},
	{[]string{"stadteregion"}, 1 << classKreis},
	{[]string{"region"}, 1 << classKreis},
	{[]string{"regionalverband"}, 1 << classKreis},
	{[]string{"kreisfreie", "stadt"}, municipalityClass},
	{[]string{"stadtkreis"}, municipalityClass},
	{[]string{"grosse", "kreisstadt"}, municipalityClass},
	{[]string{"stadt"}, municipalityClass},
	{[]string{"gemeinde"}, municipalityClass},
	{[]string{"markt"}, municipalityClass},
	{[]string{"kurort"}, municipalityClass}, // "Kurort Oberwiesenthal": the official name ends "…, Kurort"
	{[]string{"hansestadt"}, municipalityClass},
	{[]string{"lutherstadt"}, municipalityClass},
	{[]string{"universitatsstadt"}, municipalityClass},
	{[]string{"landeshauptstadt"}, municipalityClass},
	{[]string{"bundesland"}, 1 << classLand},
	{[]string{"freistaat"}, 1 << classLand},
	{[]string{"land"}, 1 << classLand},
	{[]string{"regierungsbezirk"}, 1 << classRegierungsbezirk},
	{[]string{"reg", "bez"}, 1 << classRegierungsbezirk},
	{[]string{"regbez"}, 1 << classRegierungsbezirk},
	{[]string{"direktionsbezirk"}, 1 << classRegierungsbezirk},
	{[]string{"amt"}, 1 << classVerband},
	{[]string{"samtgemeinde"}, 1 << classVerband},
	{[]string{"verbandsgemeinde"}, 1 << classVerband},
	{[]string{"vg"}, 1 << classVerband},
	{[]string{"verwaltungsgemeinschaft"}, 1 << classVerband},
	{[]string{"verwaltungsverband"}, 1 << classVerband},
}

// designation returns the class a leading designation selects and how many words it
// takes; 0 words when there is none.
func designation(words []string) (classMask, int) {
	for _, d := range designationWords {
		if len(words) > len(d.words) && equalWords(words[:len(d.words)], d.words) {
			return d.class, len(d.words)
		}
	}
	return anyClass, 0
}

func equalWords(a, b []string) bool {
	for i := range b {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// stopWords are not used to narrow candidates ("Halle an der Saale" narrows by "saale").
var stopWords = map[string]bool{"am": true, "an": true, "der": true, "den": true, "die": true, "das": true,
	"im": true, "in": true, "bei": true, "b": true, "a": true, "d": true, "i": true, "ob": true, "vor": true,
	"unter": true, "auf": true, "o": true, "v": true, "u": true}
