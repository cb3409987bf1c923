package routingcli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/routing"
)

func store(t *testing.T) *routing.Store {
	t.Helper()
	d, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return routing.NewStore(d)
}

// loader is the directory with every channel usable (what the directory says).
func loader(s *routing.Store) Loader {
	return func(string) (*routing.Store, Usable, Admit, error) { return s, nil, nil, nil }
}

func TestLookup(t *testing.T) {
	s := loader(store(t))
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"issue example", []string{"--service", "Gewerbe anmelden", "--place", "01067"}, ExitOK,
			[]string{"Stadt Dresden, Abt. Allgemeine Verwaltung/Grundsatz", "Junghansstraße 2, 01277 Dresden", "Postfach 12 00 20, 01001 Dresden", "webhook (Reifegrad 3)", "mailbox (Reifegrad 1)"}},
		{"by key and name", []string{"--service", "99107023037000", "--place", "Jahnatal"}, ExitOK, []string{"Landratsamt Mittelsachsen", "Beispieldaten", "Ebene:     Kreis"}},
		{"other state", []string{"--service", "Gewerbe anmelden", "--place", "70173"}, ExitOK, []string{"Gateway des Landes 08", "peer (Reifegrad 0)"}},
		{"ambiguous place", []string{"--service", "Gewerbe anmelden", "--place", "01561"}, ExitAmbiguous, []string{"nicht eindeutig", "146270030030"}},
		{"ambiguous service", []string{"--service", "beantragen", "--place", "01067"}, ExitAmbiguous, []string{"Leistung", "99008001012000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Lookup(context.Background(), s, tt.args, &out, &errb)
			t.Logf("amtsbote lookup %q:\n%s", tt.args, out.String())
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
			for _, c := range tt.contains {
				if !strings.Contains(out.String(), c) {
					t.Errorf("output lacks %q:\n%s", c, out.String())
				}
			}
		})
	}
	for _, args := range [][]string{nil, {"--service", "x"}, {"--bogus"}, {"--service", "x", "--place", "y", "extra"}} {
		var out, errb bytes.Buffer
		if code := Lookup(context.Background(), s, args, &out, &errb); code != ExitUsage {
			t.Errorf("Lookup(%q) = %d, want usage", args, code)
		}
	}
	var out, errb bytes.Buffer
	if code := Lookup(context.Background(), s, []string{"--service", "Gewerbe anmelden", "--place", "Atlantis"}, &out, &errb); code != ExitNotFound || !strings.Contains(errb.String(), "unknown place") {
		t.Errorf("unknown place: %d %s", code, errb.String())
	}
}

// TestLookupShowsOnlyUsableChannels: with the gateway's configuration the CLI shows
// what the server would deliver on, and says when that is nothing.
func TestLookupShowsOnlyUsableChannels(t *testing.T) {
	st := store(t)
	only := func(keep ...string) Loader {
		return func(string) (*routing.Store, Usable, Admit, error) {
			return st, func(_ string, kinds []string) []string {
				var out []string
				for _, k := range kinds {
					for _, want := range keep {
						if k == want {
							out = append(out, k)
						}
					}
				}
				return out
			}, nil, nil
		}
	}
	args := []string{"--service", "Gewerbe anmelden", "--place", "01067"}
	var out, errb bytes.Buffer
	if code := Lookup(context.Background(), only("webhook"), args, &out, &errb); code != ExitOK || !strings.Contains(out.String(), "Kanal:     webhook") || strings.Contains(out.String(), "mailbox") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	out.Reset()
	if code := Lookup(context.Background(), only(), args, &out, &errb); code != ExitOK || !strings.Contains(out.String(), "keiner, den dieses Gateway bedienen kann") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
}

// TestLookupSaysWhatIntakeRefuses: a route the gateway's intake refuses (Admit)
// is printed as refused, with the reason and exit 4 (no answer), instead of the channels a
// package would go on; lookup said "würde zur Abholung bereitgehalten", exit 0,
// for a place in another state no peer serves.
func TestLookupSaysWhatIntakeRefuses(t *testing.T) {
	st := store(t)
	refuse := refusingPeers(st)
	var out, errb bytes.Buffer
	code := Lookup(context.Background(), refuse, []string{"--service", "Gewerbe anmelden", "--place", "80331"}, &out, &errb)
	if code != ExitNotFound || !strings.Contains(out.String(), "Annahme:   würde abgelehnt (422 no-responsible-office): ") ||
		!strings.Contains(out.String(), "no peer for Land 09") || strings.Contains(out.String(), "Kanal:") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	out.Reset()
	if code := Lookup(context.Background(), refuse, []string{"--service", "Gewerbe anmelden", "--place", "01067"}, &out, &errb); code != ExitOK || !strings.Contains(out.String(), "Kanal:") {
		t.Fatalf("an office here: exit %d:\n%s", code, out.String())
	}
}

func TestDirectoryCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("responsibilities:\n  - {leistung: \"99115005104000\", gebiet: \"14612\", stelle: dresden-allgemeine-verwaltung}\n"), 0o644)
	os.WriteFile(bad, []byte("offices:\n  - id: x\n    name: X\n"), 0o644)
	var out, errb bytes.Buffer
	if code := Directory(context.Background(), []string{"check", good}, &out, &errb); code != ExitOK || !strings.Contains(out.String(), "ok:") {
		t.Errorf("check good: %d %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := Directory(context.Background(), []string{"check", bad}, &out, &errb); code != ExitFailed || !strings.Contains(errb.String(), "bad.yaml:2") {
		t.Errorf("check bad: %d %s", code, errb.String())
	}
	for _, args := range [][]string{nil, {"check"}, {"frobnicate"}} {
		if code := Directory(context.Background(), args, &out, &errb); code != ExitUsage {
			t.Errorf("Directory(%q) = %d", args, code)
		}
	}
}

// TestDirectoryCheckHelp: "-h" asks for the usage, it is no file name; "--" ends the
// options for a file that starts with a dash.
func TestDirectoryCheckHelp(t *testing.T) {
	for _, h := range []string{"-h", "-help", "--help"} {
		var out, errb bytes.Buffer
		code := Directory(context.Background(), []string{"check", h}, &out, &errb)
		if code != ExitUsage || !strings.Contains(errb.String(), "usage: amtsbote directory check FILE") || strings.Contains(errb.String(), "no such file") {
			t.Errorf("check %s: exit %d, stderr %q", h, code, errb.String())
		}
	}
	dir := t.TempDir()
	dash := filepath.Join(dir, "-overlay.yaml")
	if err := os.WriteFile(dash, []byte("homeLands: [\"14\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	var out, errb bytes.Buffer
	if code := Directory(context.Background(), []string{"check", "--", "-overlay.yaml"}, &out, &errb); code != ExitOK {
		t.Errorf("check -- -overlay.yaml: exit %d, %s", code, errb.String())
	}
}

// TestLookupKreisForMunicipalService: a Kreis is no answer for a municipal service;
// lookup lists the municipalities to choose from, as for an ambiguous name.
func TestLookupKreisForMunicipalService(t *testing.T) {
	var out, errb bytes.Buffer
	code := Lookup(context.Background(), loader(store(t)), []string{"--service", "Wohnsitz anmelden", "--place", "Landkreis Bautzen"}, &out, &errb)
	if code != ExitAmbiguous || !strings.Contains(out.String(), "146250240240  Hoyerswerda") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
}

// TestLookupUnknownServiceAtAnotherStatesPlace: a LeiKa key this directory does not
// know, for a place in another state, is that state's gateway's to know (rule 1);
// lookup shows the peer's route, or intake's refusal (422 unknown-service, exit 4)
// where the configuration has no peer gateway for the place. It said "unknown
// service", exit 1, before it looked at the place. At a place of the gateway's
// own state the key stays unknown.
func TestLookupUnknownServiceAtAnotherStatesPlace(t *testing.T) {
	const unknown = "99123456789012"
	st := store(t)
	var out, errb bytes.Buffer
	code := Lookup(context.Background(), loader(st), []string{"--service", unknown, "--place", "80331"}, &out, &errb)
	if code != ExitOK || !strings.Contains(out.String(), "Gateway des Landes 09") || !strings.Contains(out.String(), unknown) ||
		!strings.Contains(out.String(), "in diesem Verzeichnis unbekannt") {
		t.Fatalf("with a peer for Bavaria: exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	refuse := func(string) (*routing.Store, Usable, Admit, error) {
		return st, nil, func(rt *routing.Route) (intake.Destination, error) {
			if rt.ServiceUnknown {
				return intake.Destination{}, fmt.Errorf("%w: %s, and no peer for Land %s", routing.ErrUnknownService, rt.Service.Key, rt.Peer.Land)
			}
			return intake.Destination{}, nil
		}, nil
	}
	out.Reset()
	code = Lookup(context.Background(), refuse, []string{"--service", unknown, "--place", "80331"}, &out, &errb)
	if code != ExitNotFound || !strings.Contains(out.String(), "Annahme:   würde abgelehnt (422 unknown-service): ") {
		t.Fatalf("without a peer for Bavaria: exit %d\n%s", code, out.String())
	}
	out.Reset()
	errb.Reset()
	code = Lookup(context.Background(), loader(st), []string{"--service", unknown, "--place", "01067"}, &out, &errb)
	if code != ExitNotFound || !strings.Contains(errb.String(), "unknown service") {
		t.Fatalf("at Dresden: exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
}

// TestLookupExitCodes: a script tells lookup's answers apart by the exit code
// (docs/operations.md, "Exit codes"). "Not found" — a service or place the
// directory does not know, no responsible office, a route intake would refuse
// (422) — is an answer like an ambiguous one (3), not a failure: it exited 1,
// as a directory file that does not load does, and a script checking which
// services a place has could not tell a gap from a broken gateway. A place or
// key that is not well-formed is the invocation's fault: 2, as every other
// command's value that does not parse.
func TestLookupExitCodes(t *testing.T) {
	st := store(t)
	refuse := refusingPeers(st)
	broken := func(string) (*routing.Store, Usable, Admit, error) {
		return nil, nil, nil, fmt.Errorf("directory: overlay.yaml:2: %w", routing.ErrInvalidData)
	}
	for _, tc := range []struct {
		name   string
		load   Loader
		args   []string
		want   int
		stderr string
	}{
		{"unknown service", loader(st), []string{"--service", "Drachen zähmen", "--place", "01067"}, ExitNotFound, "unknown service"},
		{"unknown LeiKa key at home", loader(st), []string{"--service", "99123456789012", "--place", "01067"}, ExitNotFound, "unknown service"},
		{"unknown place", loader(st), []string{"--service", "Gewerbe anmelden", "--place", "Atlantis"}, ExitNotFound, "unknown place"},
		{"intake would refuse", refuse, []string{"--service", "Gewerbe anmelden", "--place", "80331"}, ExitNotFound, ""},
		{"postcode of four digits", loader(st), []string{"--service", "Gewerbe anmelden", "--place", "0106"}, ExitUsage, "or postcode (5)"},
		{"LeiKa key of 13 digits", loader(st), []string{"--service", "9910702303700", "--place", "01067"}, ExitUsage, "must have 14 digits"},
		{"directory that does not load", broken, []string{"--service", "Gewerbe anmelden", "--place", "01067"}, ExitFailed, "overlay.yaml:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Lookup(context.Background(), tc.load, tc.args, &out, &errb)
			if code != tc.want || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("exit %d, want %d and %q on stderr\nstdout: %s\nstderr: %s", code, tc.want, tc.stderr, out.String(), errb.String())
			}
		})
	}
}

// refusingPeers loads st with an Admit that refuses every route to a peer
// gateway, as an intake without peers does.
func refusingPeers(st *routing.Store) func(string) (*routing.Store, Usable, Admit, error) {
	return func(string) (*routing.Store, Usable, Admit, error) {
		return st, nil, func(rt *routing.Route) (intake.Destination, error) {
			if rt.Peer != nil {
				return intake.Destination{}, fmt.Errorf("%w: no peer for Land %s", routing.ErrNoResponsibleOffice, rt.Peer.Land)
			}
			return intake.Destination{}, nil
		}, nil
	}
}
