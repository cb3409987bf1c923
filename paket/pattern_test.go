package paket

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// TestPatternsMatchRegexp: every field rule's pattern answers as regexp does for its
// expression, on values built to match, those values with one byte changed, inserted
// or removed, and random strings over the rule's alphabet and a few bytes outside it.
func TestPatternsMatchRegexp(t *testing.T) {
	if len(patterns) < 15 {
		t.Fatalf("only %d patterns registered", len(patterns))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range patterns {
		oracle := regexp.MustCompile(p.expr)
		alphabet := alphabetOf(p)
		matched, refused := 0, 0
		check := func(s string) {
			want := oracle.MatchString(s)
			if got := p.MatchString(s); got != want {
				t.Fatalf("%s on %q: %v, regexp says %v", p.expr, s, got, want)
			}
			if want {
				matched++
			} else {
				refused++
			}
		}
		for range 4000 {
			s := []byte(sampleMatch(rng, p))
			check(string(s))
			check(string(mutate(rng, s, alphabet)))
			n := rng.IntN(maxLen(p) + 3)
			r := make([]byte, n)
			for i := range r {
				r[i] = alphabet[rng.IntN(len(alphabet))]
			}
			check(string(r))
		}
		if matched < 4000 || refused < 1000 {
			t.Errorf("%s: %d matched and %d refused: the generator misses one side", p.expr, matched, refused)
		}
	}
}

// TestPatternRefusesWhatItCannotMatch: an expression outside the supported shape,
// or one where the longest run could be wrong, panics when compiled.
func TestPatternRefusesWhatItCannotMatch(t *testing.T) {
	n := len(patterns)
	for _, expr := range []string{
		`^a{0,3}b{0,2}a$`, // a run of varying length overlaps what may follow it
		`^[a-z]{1,5}[0-9a]$`,
		`^a.b$`,     // any character
		`^ab`,       // not anchored at the end
		`ab$`,       // not anchored at the start
		`^(ab)+$`,   // repeated group
		`^ä$`,       // not ASCII
		`^[^a]$`,    // negated class: not ASCII
		`(?i)^a$`,   // case folding
		`^a{1,3}?$`, // non-greedy
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s compiled", expr)
				}
			}()
			mustPattern(expr)
		}()
	}
	if len(patterns) != n {
		t.Errorf("a refused expression was registered")
	}
}

// FuzzPatterns compares every field rule's pattern with regexp on any input.
func FuzzPatterns(f *testing.F) {
	for _, s := range []string{"", "0", "00", "12.50", "012.50", "99123456789012", "2026-12-01T10:00:00.5+01:00",
		"cid:a@b", "postfach:x", "application/pdf", "DE", "EUR", "a_b-c.d", "123e4567-e89b-12d3-a456-426614174000"} {
		f.Add(s)
	}
	oracles := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		oracles[i] = regexp.MustCompile(p.expr)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i, p := range patterns {
			if got, want := p.MatchString(s), oracles[i].MatchString(s); got != want {
				t.Fatalf("%s on %q: %v, regexp says %v", p.expr, s, got, want)
			}
		}
	})
}

// alphabetOf is every byte some run of p takes, and a few it takes not.
func alphabetOf(p *pattern) []byte {
	seen := map[byte]bool{}
	for _, seq := range p.alts {
		for _, r := range seq {
			for c := range 128 {
				if r.has(byte(c)) {
					seen[byte(c)] = true
				}
			}
		}
	}
	for _, c := range []byte("x -.:0\n\xc3\xa4/") {
		seen[c] = true
	}
	out := make([]byte, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	return out
}

func maxLen(p *pattern) int {
	n := 0
	for _, seq := range p.alts {
		m := 0
		for _, r := range seq {
			if r.max < 0 {
				m += 10
			} else {
				m += r.max
			}
		}
		n = max(n, m)
	}
	return n
}

// sampleMatch builds a value p matches: runs of random length within their bounds
// (the bounds themselves often), each of random bytes of its class.
func sampleMatch(rng *rand.Rand, p *pattern) string {
	seq := p.alts[rng.IntN(len(p.alts))]
	var out []byte
	for _, r := range seq {
		var members []byte
		for c := range 128 {
			if r.has(byte(c)) {
				members = append(members, byte(c))
			}
		}
		hi := r.max
		if hi < 0 {
			hi = r.min + 10
		}
		n := r.min + rng.IntN(hi-r.min+1)
		switch rng.IntN(4) {
		case 0:
			n = r.min
		case 1:
			n = hi
		}
		for range n {
			out = append(out, members[rng.IntN(len(members))])
		}
	}
	return string(out)
}

func mutate(rng *rand.Rand, s, alphabet []byte) []byte {
	c := alphabet[rng.IntN(len(alphabet))]
	switch i := rng.IntN(len(s) + 1); rng.IntN(3) {
	case 0:
		if i < len(s) {
			s = append(append(s[:i:i], c), s[i+1:]...)
		}
	case 1:
		s = append(append(s[:i:i], c), s[i:]...)
	default:
		if i < len(s) {
			s = append(s[:i:i], s[i+1:]...)
		}
	}
	return s
}
