package doccheck

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/amtsbote/amtsbote/config"
)

var (
	// yamlBlock is a fenced block marked as YAML, its content in group 1.
	yamlBlock = regexp.MustCompile("(?ms)^[ \t]*```ya?ml[^\n]*\n(.*?)^[ \t]*```")
	// blockLine is a line number in config.Load's errors.
	blockLine = regexp.MustCompile(`\bline (\d+):`)
)

// topSettings are the top-level keys of the configuration file.
func topSettings() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeFor[config.Config]()
	for i := 0; i < t.NumField(); i++ {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			out[tag] = true
		}
	}
	return out
}

// configExampleProblems loads every YAML block of a page that is a gateway
// configuration, and returns why one does not load, as "line N: …" (the page's
// line), and how many it loaded or tried. A block is
// one when most of its top-level keys are settings: the directory overlay's
// example has offices and peers too, among keys of its own (homeLands,
// services), and a configuration example with a misspelt top-level key still
// has its others. dir takes the file config.Load reads.
func configExampleProblems(text, dir string) (out []string, configs int) {
	top := topSettings()
	for _, m := range yamlBlock.FindAllStringSubmatchIndex(text, -1) {
		block := text[m[2]:m[3]]
		var keys map[string]any
		if yaml.Unmarshal([]byte(block), &keys) != nil || len(keys) == 0 {
			continue // no mapping: no configuration (a broken one shows in the count below)
		}
		settings := 0
		for k := range keys {
			if top[k] {
				settings++
			}
		}
		if 2*settings <= len(keys) {
			continue
		}
		configs++
		path := filepath.Join(dir, "example.yaml")
		if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
			return []string{err.Error()}, configs
		}
		// No environment: the runner's AMTSBOTE_* must not mend or break an example.
		if _, err := config.Load(path, nil); err != nil {
			// The file's line numbers as the page's, for the one who mends it.
			first := lineOf(text, m[2])
			msg := strings.TrimPrefix(err.Error(), "config: "+path+": ")
			if !blockLine.MatchString(msg) {
				msg = fmt.Sprintf("line %d: %s", first, msg)
			}
			out = append(out, blockLine.ReplaceAllStringFunc(msg, func(l string) string {
				n, _ := strconv.Atoi(blockLine.FindStringSubmatch(l)[1])
				return fmt.Sprintf("line %d:", first+n-1)
			}))
		}
	}
	return out, configs
}

// TestConfigExamplesLoad: every configuration example in README.md and docs/
// (a YAML block most of whose top-level keys are settings) loads with
// config.Load, which refuses a key it does not know. Operators start their
// file from these blocks; a setting renamed in the code and not in its example
// made the gateway refuse to start with a file copied from the docs.
// (config.TestEverySettingDocumented holds the other direction: every setting
// has its row in the reference.)
func TestConfigExamplesLoad(t *testing.T) {
	// Self-check on a planted page: a misspelt setting is reported, a right
	// block and a directory overlay's are not.
	planted := "```yaml\nretention:\n  package_bytes: 2160h\n```\n\n```yaml\ngateway_id: amtsbote-sn\nretention:\n  pakage_bytes: 2160h\n```\n\n" +
		"```yaml\nhomeLands: [\"14\"]\nservices: []\noffices: []\n```\n"
	got, n := configExampleProblems(planted, t.TempDir())
	if want := "line 9: retention.pakage_bytes is not a setting (did you mean retention.package_bytes?)"; !slices.Equal(got, []string{want}) || n != 2 {
		t.Fatalf("self-check: the planted examples reported %q of %d configurations, want %q of 2", got, n, want)
	}

	examples, configs := 0, 0
	for _, o := range operatorTexts(t) {
		if !o.markdown {
			continue
		}
		examples += len(yamlBlock.FindAllString(o.text, -1))
		problems, n := configExampleProblems(o.text, t.TempDir())
		configs += n
		for _, p := range problems {
			t.Errorf("%s, %s", o.rel, p)
		}
	}
	if configs < 8 {
		t.Fatalf("only %d configuration examples among %d YAML blocks in README.md and docs/: yamlBlock or the test for a configuration no longer matches how they are written", configs, examples)
	}
	if !t.Failed() {
		t.Logf("%d configuration examples among %d YAML blocks in README.md and docs/, each loads", configs, examples)
	}
}

// envMention is a variable of the configuration's environment as the pages
// write it, or a prefix of some ("AMTSBOTE_RETENTION_*"); not NATS_AMTSBOTE_PASSWORD,
// the NATS server's own.
var envMention = regexp.MustCompile(`\bAMTSBOTE_[A-Z0-9_]+\*?`)

// unknownEnv returns the variables in text that the configuration does not
// read, as "line N: NAME". AMTSBOTE_CONFIG names the file and is read by the
// commands (config's applyEnv lets it pass for that reason). A name of
// formerNames is not one of them, and goes into used.
func unknownEnv(text string, names []string, used map[string]bool) []string {
	return unknownMentions(text, envMention,
		func(name string) bool { return name == "AMTSBOTE_CONFIG" || slices.Contains(names, name) },
		func(prefix string) bool {
			return slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, prefix) })
		}, used)
}

// TestEnvironmentNamesExist: every AMTSBOTE_… variable README.md, docs/ and
// deploy/ give is one the configuration reads (config.EnvNames), or a prefix
// of some. The gateway refuses to start with an AMTSBOTE_ variable it does not
// know (config's applyEnv: "unknown setting"), so a variable renamed in the
// code and not on the page stopped a unit or container set up from the page.
func TestEnvironmentNamesExist(t *testing.T) {
	names := config.EnvNames()
	if !slices.Contains(names, "AMTSBOTE_ADMIN_TOKEN") || len(names) < 30 {
		t.Fatalf("self-check: config.EnvNames gave %d names, without AMTSBOTE_ADMIN_TOKEN", len(names))
	}
	formerNames["AMTSBOTE_OLD"] = "planted"
	used := map[string]bool{}
	planted := "AMTSBOTE_ADMIN_TOKEN=x AMTSBOTE_CONFIG=f AMTSBOTE_OLD=y\n`AMTSBOTE_RETENTION_*`, AMTSBOTE_NO_SUCH, AMTSBOTE_NOSUCH_*, NATS_AMTSBOTE_PASSWORD"
	got := unknownEnv(planted, names, used)
	delete(formerNames, "AMTSBOTE_OLD")
	if want := []string{"line 2: AMTSBOTE_NO_SUCH", "line 2: AMTSBOTE_NOSUCH_*"}; !slices.Equal(got, want) || !used["AMTSBOTE_OLD"] {
		t.Fatalf("self-check: unknownEnv reported %q (former name used: %v), want %q", got, used["AMTSBOTE_OLD"], want)
	}
	mentions := checkMentions(t, operatorTexts(t), envMention, func(text string, used map[string]bool) []string {
		return unknownEnv(text, names, used)
	}, "no variable the configuration reads", 5)
	if !t.Failed() {
		t.Logf("%d AMTSBOTE_ variables in README.md, docs/ and deploy/, each one the configuration reads", mentions)
	}
}
