package transfer

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FuzzSafeNames: whatever the portal calls two attachments, the names are safe on
// Linux and Windows shares and never clash.
func FuzzSafeNames(f *testing.F) {
	for _, s := range []string{"../../etc/passwd", "CON", "a:b", "x\x00y", "Anlage.pdf", "", ".", "COM1.tar.gz", "ä. .", "U\u0308bersicht.pdf", "\u03c2.pdf"} {
		f.Add(s, "Anlage.pdf")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		out := SafeNames([]string{a, b, a})
		same := func(x, y string) bool { return strings.EqualFold(norm.NFC.String(x), norm.NFC.String(y)) }
		if same(out[0], out[1]) || same(out[0], out[2]) || same(out[1], out[2]) {
			t.Fatalf("clash: %q", out)
		}
		for _, n := range out {
			if n == "" || len(n) > MaxNameBytes || !utf8.ValidString(n) || !norm.NFC.IsNormalString(n) || strings.ContainsAny(n, `<>:"/\|?*`) ||
				strings.HasPrefix(n, ".") || strings.HasPrefix(n, " ") || strings.HasSuffix(n, ".") || strings.HasSuffix(n, " ") ||
				reservedName(n) || n == ".." {
				t.Fatalf("unsafe name %q from %q / %q", n, a, b)
			}
			for _, r := range n {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("control character in %q", n)
				}
			}
		}
	})
}
