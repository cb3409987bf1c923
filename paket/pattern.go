package paket

import (
	"fmt"
	"regexp/syntax"
)

// pattern is a field rule's regular expression, compiled for the one shape every
// rule here has and matched without backtracking.
//
// Why not regexp: the rules check a dozen short values per package, and regexp's
// one-pass matcher took a third of Parse for them (~10 µs a package in the bench's
// profile, 2026-12-03), most of it per-call setup. The expressions stay the source
// of truth: mustPattern parses them with regexp/syntax and accepts only what it can
// match exactly — anchored at both ends; a choice of sequences of runs, each run one
// ASCII byte class repeated min..max times; and, where a run's length may vary, no
// byte that could follow it in its own class, so that taking the longest run is
// always right. Anything else panics at start-up. TestPatternsMatchRegexp compares
// every rule with regexp on generated input, FuzzPatterns on any input.
type pattern struct {
	expr string
	alts [][]run
}

type run struct {
	set      [2]uint64 // ASCII bytes in the class
	min, max int       // max < 0: unbounded
}

func (r *run) has(c byte) bool { return c < 128 && r.set[c>>6]&(1<<(c&63)) != 0 }

// patterns lists every rule compiled, for the tests.
var patterns []*pattern

// mustPattern compiles expr or panics (at package initialisation).
func mustPattern(expr string) *pattern {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		panic(fmt.Sprintf("paket: pattern %q: %v", expr, err))
	}
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[0].Op != syntax.OpBeginText || re.Sub[len(re.Sub)-1].Op != syntax.OpEndText {
		panic(fmt.Sprintf("paket: pattern %q: must be anchored with ^ and $", expr))
	}
	inner := &syntax.Regexp{Op: syntax.OpConcat, Sub: re.Sub[1 : len(re.Sub)-1]}
	alts, err := expand(inner)
	if err != nil {
		panic(fmt.Sprintf("paket: pattern %q: %v", expr, err))
	}
	for _, a := range alts {
		if err := checkGreedy(a); err != nil {
			panic(fmt.Sprintf("paket: pattern %q: %v", expr, err))
		}
	}
	p := &pattern{expr: expr, alts: alts}
	patterns = append(patterns, p)
	return p
}

// maxAlternatives bounds the sequences one expression may expand to.
const maxAlternatives = 16

// expand turns re into the sequences of runs it matches, one per alternative.
func expand(re *syntax.Regexp) ([][]run, error) {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return [][]run{nil}, nil
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil, fmt.Errorf("case folding is not supported")
		}
		seq := make([]run, 0, len(re.Rune))
		for _, c := range re.Rune {
			r, err := classRun([]rune{c, c}, 1, 1)
			if err != nil {
				return nil, err
			}
			seq = append(seq, r)
		}
		return [][]run{seq}, nil
	case syntax.OpCharClass:
		r, err := classRun(re.Rune, 1, 1)
		return [][]run{{r}}, err
	case syntax.OpRepeat, syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		min, max := re.Min, re.Max
		switch re.Op {
		case syntax.OpStar:
			min, max = 0, -1
		case syntax.OpPlus:
			min, max = 1, -1
		case syntax.OpQuest:
			min, max = 0, 1
		}
		if re.Flags&syntax.NonGreedy != 0 {
			return nil, fmt.Errorf("non-greedy repetition is not supported")
		}
		switch sub := re.Sub[0]; {
		case sub.Op == syntax.OpCharClass:
			r, err := classRun(sub.Rune, min, max)
			return [][]run{{r}}, err
		case sub.Op == syntax.OpLiteral && len(sub.Rune) == 1 && sub.Flags&syntax.FoldCase == 0:
			r, err := classRun([]rune{sub.Rune[0], sub.Rune[0]}, min, max)
			return [][]run{{r}}, err
		}
		if re.Op != syntax.OpQuest {
			return nil, fmt.Errorf("repetition of more than one character is not supported")
		}
		alts, err := expand(re.Sub[0]) // (x)? is x or nothing
		if err != nil {
			return nil, err
		}
		return append(alts, nil), nil
	case syntax.OpCapture:
		return expand(re.Sub[0])
	case syntax.OpAlternate:
		var out [][]run
		for _, s := range re.Sub {
			alts, err := expand(s)
			if err != nil {
				return nil, err
			}
			out = append(out, alts...)
		}
		if len(out) > maxAlternatives {
			return nil, fmt.Errorf("more than %d alternatives", maxAlternatives)
		}
		return out, nil
	case syntax.OpConcat:
		out := [][]run{nil}
		for _, s := range re.Sub {
			alts, err := expand(s)
			if err != nil {
				return nil, err
			}
			var next [][]run
			for _, head := range out {
				for _, tail := range alts {
					next = append(next, append(append([]run(nil), head...), tail...))
				}
			}
			if len(next) > maxAlternatives {
				return nil, fmt.Errorf("more than %d alternatives", maxAlternatives)
			}
			out = next
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is not supported", re.Op)
}

// classRun is the run of the ASCII character class ranges (lo, hi pairs, as
// regexp/syntax gives them).
func classRun(ranges []rune, min, max int) (run, error) {
	r := run{min: min, max: max}
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		if lo < 0 || hi > 127 {
			return r, fmt.Errorf("only ASCII classes are supported")
		}
		for c := lo; c <= hi; c++ {
			r.set[c>>6] |= 1 << (c & 63)
		}
	}
	return r, nil
}

// checkGreedy makes sure taking the longest run is always right in seq: a run of
// varying length shares no byte with any run that could come right after it (up to
// and including the first that must take at least one byte).
func checkGreedy(seq []run) error {
	for i, r := range seq {
		if r.min == r.max {
			continue
		}
		for _, next := range seq[i+1:] {
			if r.set[0]&next.set[0] != 0 || r.set[1]&next.set[1] != 0 {
				return fmt.Errorf("run %d of varying length overlaps what may follow it", i)
			}
			if next.min > 0 {
				break
			}
		}
	}
	return nil
}

// MatchString reports whether the whole of s matches.
func (p *pattern) MatchString(s string) bool {
	for _, seq := range p.alts {
		if matchRuns(seq, s) {
			return true
		}
	}
	return false
}

func matchRuns(seq []run, s string) bool {
	i := 0
	for k := range seq {
		r := &seq[k]
		n := 0
		for i < len(s) && (r.max < 0 || n < r.max) && r.has(s[i]) {
			i++
			n++
		}
		if n < r.min {
			return false
		}
	}
	return i == len(s)
}
