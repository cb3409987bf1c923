package doccheck

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// cliFlags are a flag set's flags, each with whether it takes a value.
type cliFlags map[string]bool

// cliCommand is what one command of the binary takes.
type cliCommand struct {
	flags cliFlags            // its flags; with verbs, those before the verb
	verbs map[string]cliFlags // its verbs, each with its own flags; none: a command without verbs
}

// cliGrammar is the binary's commands by name, as its help tells them.
type cliGrammar map[string]*cliCommand

var (
	// helpFlag is a line of a flag set's PrintDefaults: "  -config string" (a
	// value), "  -json" or "  -v\tshow …" (bool).
	helpFlag = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][\w-]*)( \S+)?(?:\t|$)`)
	// helpCommand is a line of `amtsbote -h`'s list of commands.
	helpCommand = regexp.MustCompile(`(?m)^  ([a-z][a-z0-9-]*)  +\S`)
	// helpVerbLine is a line of a "verbs:" list (amtsbote admin -h).
	helpVerbLine = regexp.MustCompile(`^  ([a-z][a-z0-9-]*)\b`)
)

// readGrammar asks the binary: `amtsbote -h` for the commands, `amtsbote CMD -h`
// for each one's flags and verbs, `amtsbote CMD VERB -h` for each verb's flags.
// A verb is a word the command's help writes after "amtsbote CMD" (its usage
// lines: store, directory, keys, mailbox) or lists under "verbs:" (admin). Only
// those are run with a second word: a command without verbs takes it as an
// argument and runs (serve ignores it and serves).
func readGrammar(t *testing.T, bin string) cliGrammar {
	t.Helper()
	dir := t.TempDir() // where a command that ignored -h would write
	help := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(args, "-h")...)
		cmd.Dir, cmd.WaitDelay = dir, time.Second
		out, _ := cmd.CombinedOutput() // the exit code of -h differs by command; the text is what counts
		if ctx.Err() != nil {
			t.Fatalf("amtsbote %s -h did not return: it does not take -h for help", strings.Join(args, " "))
		}
		return string(out)
	}
	flagsOf := func(text string) cliFlags {
		f := cliFlags{}
		for _, m := range helpFlag.FindAllStringSubmatch(text, -1) {
			f[m[1]] = m[2] != ""
		}
		return f
	}
	g := cliGrammar{}
	top := help()
	_, list, _ := strings.Cut(top, "\ncommands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	for _, m := range helpCommand.FindAllStringSubmatch(list, -1) {
		name := m[1]
		text := help(name)
		c := &cliCommand{flags: flagsOf(text), verbs: map[string]cliFlags{}}
		var verbs []string
		for _, m := range regexp.MustCompile(`amtsbote `+regexp.QuoteMeta(name)+` ([a-z][a-z0-9-]*)\b`).FindAllStringSubmatch(text, -1) {
			verbs = append(verbs, m[1])
		}
		if _, block, ok := strings.Cut(text, "\nverbs:\n"); ok {
			block, _, _ = strings.Cut(block, "\n\n")
			for _, line := range strings.Split(block, "\n") {
				if m := helpVerbLine.FindStringSubmatch(line); m != nil {
					verbs = append(verbs, m[1])
				}
			}
		}
		for _, v := range verbs {
			if c.verbs[v] == nil {
				c.verbs[v] = flagsOf(help(name, v))
			}
		}
		g[name] = c
	}
	return g
}

// invocation is the binary and its arguments as a page writes them.
type invocation struct {
	line int
	args []string
}

var (
	// program is the binary as a command line names it: "amtsbote",
	// "./bin/amtsbote", a systemd unit's "ExecStart=/usr/local/bin/amtsbote"
	// (its other keys are prose: "Description=amtsbote federation gateway").
	program = regexp.MustCompile(`^(?:Exec[A-Za-z]*=[-@:+!]*)?(?:[\w.~-]*/)*amtsbote$`)
	// envAssign is a variable set for the command: "GOGC=300 ./bin/amtsbote …".
	envAssign = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=\S*$`)
	// endOfCommand ends the arguments: a comment, a pipe, a list, a redirection.
	endOfCommand = regexp.MustCompile(`^(?:#|[0-9]*[|&;<>])`)
	// docSpan is a Markdown code span.
	docSpan = regexp.MustCompile("`([^`\n]+)`")
)

// startsCommand says whether a word before "amtsbote" leaves it the command
// that runs: after "runuser -u amtsbote --", "&&", "make run  # =", "GOGC=300";
// not an argument, as in "sudo -u amtsbote mkdir" or "nats kv get amtsbote KEY".
func startsCommand(prev string) bool {
	switch prev {
	case "--", "&&", "||", ";", "|", "$", "=", "sudo", "exec", "time", "nohup":
		return true
	}
	return envAssign.MatchString(prev)
}

// invocations returns the command lines of the binary in a text's code: its
// code spans and the lines of its fenced blocks (a line ending in "\" joined
// with the next) in Markdown; elsewhere its lines and the code spans in them.
func invocations(o operatorText) []invocation {
	type segment struct {
		line int
		code string
	}
	var segs []segment
	fences := fence.FindAllStringIndex(o.text, -1)
	if !o.markdown {
		fences = [][]int{{0, len(o.text)}}
	}
	for _, f := range fences {
		lines := strings.Split(o.text[f[0]:f[1]], "\n")
		first := lineOf(o.text, f[0])
		for i := 0; i < len(lines); i++ {
			s := segment{first + i, lines[i]}
			for strings.HasSuffix(s.code, "\\") && i+1 < len(lines) {
				i++
				s.code = strings.TrimSuffix(s.code, "\\") + " " + lines[i]
			}
			segs = append(segs, s)
		}
	}
	for _, m := range docSpan.FindAllStringSubmatchIndex(o.text, -1) {
		inFence := slices.ContainsFunc(fences, func(f []int) bool { return f[0] <= m[0] && m[0] < f[1] })
		if o.markdown && inFence {
			continue
		}
		segs = append(segs, segment{lineOf(o.text, m[0]), o.text[m[2]:m[3]]})
	}
	var out []invocation
	for _, s := range segs {
		words := strings.Fields(s.code)
		for i, w := range words {
			if !program.MatchString(w) || i > 0 && !startsCommand(words[i-1]) {
				continue
			}
			args := words[i+1:]
			if end := slices.IndexFunc(args, endOfCommand.MatchString); end >= 0 {
				args = args[:end]
			}
			out = append(out, invocation{s.line, args})
		}
	}
	return out
}

var (
	// cliWord is a command or a verb, or alternatives of them ("export|import").
	cliWord = regexp.MustCompile(`^[a-z][a-z0-9-]*(?:\|[a-z][a-z0-9-]*)*$`)
	// cliFlag is a flag as written: "-config", "--service", "-now=…".
	cliFlag = regexp.MustCompile(`^--?([A-Za-z][\w-]*)(=.*)?$`)
)

// unbracket takes off what a page puts around a word: "[-now T]", "(-json)",
// "hash:" in a text.
func unbracket(w string) string {
	return strings.TrimRight(strings.TrimLeft(w, `[("'`), `])"'.,:;`)
}

// cliProblems returns what of a command line the binary does not take, as
// "line N: amtsbote gc -dry: no such flag (amtsbote gc -h)": a command, a
// verb, a flag (with verbs: the command's before the verb, the verb's after
// it, as the binary parses them). A placeholder ("<command>", "VERB", "…")
// ends what can be checked. A line of formerNames is not reported, and goes
// into used.
func cliProblems(inv invocation, g cliGrammar, used map[string]bool) []string {
	var out []string
	report := func(subject, reason string) {
		if formerNames[subject] != "" {
			used[subject] = true
			return
		}
		out = append(out, fmt.Sprintf("line %d: %s: %s", inv.line, subject, reason))
	}
	if len(inv.args) == 0 || !cliWord.MatchString(unbracket(inv.args[0])) {
		return nil
	}
	name := unbracket(inv.args[0])
	c, ok := g[name]
	if !ok {
		report("amtsbote "+name, "no such command (amtsbote -h)")
		return out
	}
	prefix, flags := "amtsbote "+name, []cliFlags{c.flags}
	rest := inv.args[1:]
	if len(c.verbs) > 0 {
		for len(rest) > 0 {
			m := cliFlag.FindStringSubmatch(unbracket(rest[0]))
			if m == nil {
				break
			}
			value, ok := c.flags[m[1]]
			if !ok && m[1] != "h" && m[1] != "help" {
				report(prefix+" -"+m[1], "no such flag ("+prefix+" -h)")
				return out
			}
			rest = rest[1:]
			if value && m[2] == "" && len(rest) > 0 {
				rest = rest[1:]
			}
		}
		if len(rest) == 0 {
			return out
		}
		verb := unbracket(rest[0])
		if !cliWord.MatchString(verb) {
			return out
		}
		flags = nil
		for _, v := range strings.Split(verb, "|") {
			if vf, ok := c.verbs[v]; ok {
				flags = append(flags, vf)
			} else {
				report(prefix+" "+v, "no such verb ("+prefix+" -h)")
			}
		}
		if len(flags) == 0 {
			return out
		}
		prefix, rest = prefix+" "+verb, rest[1:]
	}
	for _, w := range rest {
		if w == "--" {
			break
		}
		m := cliFlag.FindStringSubmatch(unbracket(w))
		if m == nil || m[1] == "h" || m[1] == "help" {
			continue
		}
		for _, f := range flags {
			if _, ok := f[m[1]]; ok {
				continue
			}
			if _, before := c.flags[m[1]]; before && len(c.verbs) > 0 {
				report(prefix+" -"+m[1], "amtsbote "+name+" takes it before the verb (amtsbote "+name+" -h)")
			} else {
				report(prefix+" -"+m[1], "no such flag ("+prefix+" -h)")
			}
			break
		}
	}
	return out
}

// TestCommandLinesExist: every command line of the binary in README.md's and
// docs/'s code (spans and blocks) and in deploy/ — its command, its verb, each
// flag given — is one the built binary takes, as its -h says. Operators paste
// these lines at night (the admin verbs, store backup and restore, gc); a
// renamed flag or verb made the pasted line fail with a usage message instead
// of doing what the page promised.
func TestCommandLinesExist(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "amtsbote")
	build := exec.Command("go", "build", "-o", bin, "./cmd/amtsbote")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/amtsbote: %v\n%s", err, out)
	}
	g := readGrammar(t, bin)
	var verbs, verbFlags, valued, bools int
	for _, c := range g {
		verbs += len(c.verbs)
		for _, f := range c.verbs {
			verbFlags += len(f)
		}
		for _, v := range c.flags {
			if v {
				valued++
			} else {
				bools++
			}
		}
	}
	if len(g) < 8 || verbs < 10 || verbFlags < 10 || valued < 20 || bools < 3 {
		t.Fatalf("self-check: the binary's help read as %d commands, %d verbs with %d flags, %d flags with a value and %d without: "+
			"readGrammar no longer reads it", len(g), verbs, verbFlags, valued, bools)
	}

	// Self-check on planted pages, with the binary's own commands: each kind
	// of mistake is reported, with verbs the flags on their side of the verb;
	// what is right, "amtsbote" as another command's argument, a comment and a
	// placeholder are not; a formerNames line is let through and marked used.
	formerNames["amtsbote gc -old"] = "planted"
	used := map[string]bool{}
	var got []string
	for _, o := range []operatorText{{markdown: true, text: "Run `amtsbote serve -config FILE`, `amtsbote serv`,\n" +
		"`amtsbote admin -config F hled ID`, `amtsbote admin held -config F`, `amtsbote gc -dry_run -old`.\n" +
		"```sh\nrunuser -u amtsbote -- amtsbote store verify -config F \\\n  -data D -in X   # not -out\n" +
		"sudo -u amtsbote mkdir x && nats kv get amtsbote sub.1\nGOGC=300 ./bin/amtsbote bench -open -rates 10,20 -step 10s\n" +
		"amtsbote store verify|reindex -config F -out D\n```\n`amtsbote admin <verb>`, `amtsbote …`, `amtsbote -h`, `amtsbote admin -h`\n"},
		{text: "# amtsbote as a service\nDescription=amtsbote federation gateway\n" +
			"ExecStart=/usr/local/bin/amtsbote serve -config /etc/amtsbote/amtsbote.yaml -data D\n" +
			"description: \"`amtsbote admin offices -json` says\"\n"}} {
		for _, inv := range invocations(o) {
			got = append(got, cliProblems(inv, g, used)...)
		}
	}
	delete(formerNames, "amtsbote gc -old")
	want := []string{
		"line 4: amtsbote store verify -in: no such flag (amtsbote store verify -h)",
		"line 8: amtsbote store verify|reindex -out: no such flag (amtsbote store verify|reindex -h)",
		"line 4: amtsbote admin offices -json: amtsbote admin takes it before the verb (amtsbote admin -h)",
		"line 1: amtsbote serv: no such command (amtsbote -h)",
		"line 2: amtsbote admin hled: no such verb (amtsbote admin -h)",
		"line 2: amtsbote admin held -config: amtsbote admin takes it before the verb (amtsbote admin -h)",
		"line 2: amtsbote gc -dry_run: no such flag (amtsbote gc -h)",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || !used["amtsbote gc -old"] {
		t.Fatalf("self-check: planted pages reported\n%s\n(former line used: %v), want\n%s",
			strings.Join(got, "\n"), used["amtsbote gc -old"], strings.Join(want, "\n"))
	}

	used = map[string]bool{}
	lines := 0
	for _, o := range operatorTexts(t) {
		for _, inv := range invocations(o) {
			lines++
			for _, p := range cliProblems(inv, g, used) {
				t.Errorf("%s, %s", o.rel, p)
			}
		}
	}
	checkFormerNames(t, func(s string) bool { return strings.HasPrefix(s, "amtsbote ") }, used)
	if lines < 100 {
		t.Fatalf("only %d command lines of amtsbote in README.md, docs/ and deploy/: invocations no longer finds how they are written", lines)
	}
	if !t.Failed() {
		t.Logf("%d command lines of amtsbote in README.md, docs/ and deploy/, each one the binary takes", lines)
	}
}
