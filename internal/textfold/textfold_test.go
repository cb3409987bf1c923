package textfold

import "testing"

func TestFold(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Görlitz", "gorlitz"},
		{"Goerlitz", "gorlitz"},
		{"Go\u0308rlitz", "gorlitz"}, // decomposed umlaut
		{"Sondernutzung öffentlicher Straßen", "sondernutzung offentlicher strassen"},
		{"02826 Görlitz, Stadt", "02826 gorlitz stadt"},
		{"q\u0308", "q"}, // a mark no composed letter takes is dropped
		{"", ""},
	} {
		if got := Fold(tc.in); got != tc.want {
			t.Errorf("Fold(%+q) = %+q, want %+q", tc.in, got, tc.want)
		}
	}
}

// Composed and decomposed spellings fold alike, also for letters Fold does not map
// to a base letter: dropping the mark of the decomposed "a\u030c" once made it "a"
// while the composed "ǎ" stayed "ǎ".
func TestFoldNormalizationInsensitive(t *testing.T) {
	for _, pair := range [][2]string{
		{"\u01ce", "a\u030c"},      // ǎ (Latin Extended-B)
		{"\u1ea1", "a\u0323"},      // ạ (Vietnamese)
		{"\u0439", "\u0438\u0306"}, // й (Cyrillic)
		{"Burgst\u00e4dt", "Burgsta\u0308dt"},
	} {
		if a, b := Fold(pair[0]), Fold(pair[1]); a != b {
			t.Errorf("Fold(%+q) = %+q, Fold(%+q) = %+q: composed and decomposed differ", pair[0], a, pair[1], b)
		}
	}
}
