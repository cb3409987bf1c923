// Package routingcli implements the directory verbs of the amtsbote binary:
// `amtsbote lookup` (who is responsible for this service at this place?) and
// `amtsbote directory build|check` (rebuild the embedded data, validate operator files).
// The functions return a process exit code: 0 ok, 1 failed (a file that does
// not load, an invalid directory file), 2 usage error (also a place or LeiKa key
// that is not well-formed), 3 ambiguous input (the choices are printed), 4 no
// answer: an unknown service or place, no responsible office, or a route the
// gateway would refuse a package on (docs/operations.md, "Exit codes").
package routingcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/routing/internal/gen"
)

// Exit codes.
const (
	ExitOK        = 0
	ExitFailed    = 1
	ExitUsage     = 2
	ExitAmbiguous = 3
	// ExitNotFound: lookup's answer is that there is none. A result like an
	// ambiguous input, not a failure: a script checking which services a place
	// has must tell a gap in the directory from a gateway that cannot answer (1).
	ExitNotFound = 4
)

// noAnswer reports whether err is an answer of the directory or of intake that
// there is no route (what intake refuses with 422), rather than a failure.
func noAnswer(err error) bool {
	return errors.Is(err, routing.ErrUnknownService) || errors.Is(err, routing.ErrUnknownPlace) ||
		errors.Is(err, routing.ErrNoResponsibleOffice)
}

// Usable narrows an office's channels (as the directory lists them) to those the
// running configuration can deliver on.
type Usable func(officeID string, kinds []string) []string

// Admit is the gateway's intake decision on a route under the configuration
// (intake.Pipeline.Destination): where intake would send a package on it (for
// another state's office, the configured peer gateway, which lookup names), or
// why not (an error wrapping routing.ErrNoResponsibleOffice).
type Admit func(*routing.Route) (intake.Destination, error)

// Loader gives Lookup the directory, the usable channels and the intake decision of
// the configuration at configPath ("" = the defaults and AMTSBOTE_* environment),
// exactly as `serve` would load them, so the CLI and the server never disagree. A
// nil Usable or Admit: every channel, every route.
type Loader func(configPath string) (*routing.Store, Usable, Admit, error)

// Lookup runs `amtsbote lookup --service "Gewerbe anmelden" --place 01067`.
// --service takes a LeiKa key, a name or a synonym; --place an ARS, AGS, postcode or
// name. Ambiguous input lists the choices instead of guessing.
func Lookup(ctx context.Context, load Loader, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lookup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "LeiKa key, service name or synonym")
	place := fs.String("place", "", "ARS (12 digits), AGS (8), postcode (5) or place name")
	cfgPath := fs.String("config", os.Getenv("AMTSBOTE_CONFIG"), "the gateway's configuration file: its directory files and channels are used")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: amtsbote lookup [-config FILE] --service \"Gewerbe anmelden\" --place 01067")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *service == "" || *place == "" || fs.NArg() > 0 {
		fs.Usage()
		return ExitUsage
	}
	store, usable, admit, err := load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "lookup:", err)
		return ExitFailed
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintln(stderr, "lookup:", err)
		return ExitFailed
	}
	d := store.Current()
	// As intake resolves: a Kreis or Land, or a postcode several municipalities
	// share, is ambiguous only where its municipalities have different offices
	// for the service; and a LeiKa key this directory does not know goes to
	// another state's gateway for a place there.
	var taken func(*routing.Route) error // nil: every route is taken
	if admit != nil {
		taken = func(rt *routing.Route) error {
			_, err := admit(rt)
			return err
		}
	}
	rt, err := d.ResolveServiceWith(*service, *place, taken)
	if err != nil {
		var ambs *routing.AmbiguousServiceError
		if errors.As(err, &ambs) {
			fmt.Fprintf(stdout, "Die Leistung %q ist nicht eindeutig. Bitte wählen Sie:\n", *service)
			for _, s := range ambs.Candidates {
				fmt.Fprintf(stdout, "  %s  %s\n", s.Key, s.Name)
			}
			return ExitAmbiguous
		}
		var amb *routing.AmbiguousPlaceError
		if errors.As(err, &amb) {
			fmt.Fprintf(stdout, "Der Ort %q ist nicht eindeutig. Bitte wählen Sie (mit --place ARS):\n", *place)
			for _, a := range amb.Candidates {
				fmt.Fprintf(stdout, "  %s  %s%s\n", a.ARS, a.Name, kreisOf(a))
			}
			return ExitAmbiguous
		}
		fmt.Fprintln(stderr, "lookup:", err)
		switch {
		case errors.Is(err, routing.ErrInvalidQuery):
			return ExitUsage // a value that does not parse, as in every command
		case noAnswer(err):
			return ExitNotFound
		}
		return ExitFailed
	}
	// What intake would answer: a route it refuses was printed as one a package
	// goes on ("würde zur Abholung bereitgehalten", exit 0).
	var dest intake.Destination
	var refused error
	if admit != nil {
		dest, refused = admit(rt)
	}
	PrintRoute(stdout, rt, usable, dest.Peer, refused)
	switch {
	case refused == nil:
	case noAnswer(refused):
		return ExitNotFound
	default:
		return ExitFailed
	}
	return ExitOK
}

func kreisOf(a *routing.Area) string {
	for p := a.Parent; p != nil; p = p.Parent {
		if p.Level == routing.LevelKreis && p.ShortName() != a.ShortName() {
			return " (" + p.Name + ")"
		}
	}
	return ""
}

// PrintRoute writes a route the way a person reads it. With usable set, only the
// channels this gateway can deliver on are shown (addresses come from the gateway's
// configuration, never from the directory), and it says so when there are none.
// peer, when set, is the configured peer gateway intake sends a package for
// another state's office to (Admit): it is named instead of the directory's
// peer entry. refused, when set, is why intake would refuse a package on the
// route (Admit): it is shown instead of the channels.
func PrintRoute(w io.Writer, rt *routing.Route, usable Usable, peer *intake.Peer, refused error) {
	if rt.ServiceUnknown {
		fmt.Fprintf(w, "Leistung:  %s (in diesem Verzeichnis unbekannt; das Gateway des Landes prüft sie)\n", rt.Service.Key)
	} else {
		fmt.Fprintf(w, "Leistung:  %s (%s)\n", rt.Service.Name, rt.Service.Key)
	}
	fmt.Fprintf(w, "Ort:       %s (ARS %s)\n", rt.Area.Name, rt.Area.ARS)
	if rt.Note != "" {
		fmt.Fprintf(w, "Hinweis:   %s\n", rt.Note)
	}
	kinds := make([]string, len(rt.Channels))
	levels := map[string]int{}
	xtaID := ""
	for i, c := range rt.Channels {
		kinds[i], levels[c.Kind] = c.Kind, c.Level
		if c.Kind == routing.KindXTA {
			xtaID = c.Endpoint // the office's XTA identifier (DVDV), not an address
		}
	}
	officeID := ""
	if rt.Office != nil {
		officeID = rt.Office.ID
	} else if rt.Peer != nil {
		officeID = "peer-" + rt.Peer.Land // as intake names another state's office
	}
	shown := kinds
	if usable != nil {
		shown = usable(officeID, kinds)
	}
	printChannels := func() {
		if refused != nil {
			status := ""
			switch {
			case errors.Is(refused, routing.ErrNoResponsibleOffice):
				status = " (422 no-responsible-office)"
			case errors.Is(refused, routing.ErrUnknownService):
				status = " (422 unknown-service)"
			}
			fmt.Fprintf(w, "Annahme:   würde abgelehnt%s: %v\n", status, refused)
			return
		}
		for i, k := range shown {
			label := "Kanal:    "
			if i > 0 {
				label = "Ersatz:   "
			}
			if k == routing.KindXTA && xtaID != "" {
				fmt.Fprintf(w, "%s %s (Reifegrad %d), XTA-Kennung %s\n", label, k, levels[k], xtaID)
				continue
			}
			fmt.Fprintf(w, "%s %s (Reifegrad %d)\n", label, k, levels[k])
		}
		if len(shown) == 0 {
			fmt.Fprintf(w, "Kanal:     keiner, den dieses Gateway bedienen kann (Verzeichnis: %s); das Paket würde zur Abholung bereitgehalten\n", strings.Join(kinds, ", "))
		}
	}
	if rt.Peer != nil && peer != nil {
		// Where the package goes: the directory's entry for the Land may be another
		// gateway (at a Bavarian gateway the built-in sample gateway-14 for Saxony).
		name := peer.ID
		if peer.Name != "" && peer.Name != peer.ID {
			name = peer.Name + " (" + peer.ID + ")"
		}
		fmt.Fprintf(w, "Zuständig: Gateway des Landes %s %s, laut Konfiguration (peers)\n", rt.Peer.Land, name)
		printChannels()
		return
	}
	if rt.Peer != nil {
		fmt.Fprintf(w, "Zuständig: Gateway des Landes %s %s (%s)\n", rt.Peer.Land, rt.Peer.Name, rt.Peer.GatewayID)
		printChannels()
		if rt.Peer.Sample {
			fmt.Fprintln(w, "Hinweis:   Beispieldaten")
		}
		return
	}
	o := rt.Office
	fmt.Fprintf(w, "Zuständig: %s [%s]\n", o.Name, o.ID)
	if a := o.Street; !a.IsZero() {
		fmt.Fprintf(w, "Anschrift: %s\n", joinAddr(a))
	}
	if a := o.Postal; !a.IsZero() {
		fmt.Fprintf(w, "Post:      %s\n", joinAddr(a))
	}
	if c := o.Contact; c.Phone != "" || c.Email != "" {
		fmt.Fprintf(w, "Kontakt:   %s\n", strings.Trim(c.Phone+" "+c.Email, " "))
	}
	printChannels()
	if rt.MatchedArea != nil && rt.MatchedArea.Key != rt.Area.Key {
		fmt.Fprintf(w, "Ebene:     %s %s\n", rt.MatchedArea.Level, rt.MatchedArea.Name)
	}
	if o.Sample {
		fmt.Fprintln(w, "Hinweis:   Beispieldaten (generiert), keine echte Behördenangabe")
	}
}

func joinAddr(a routing.Address) string {
	var parts []string
	if a.Street != "" {
		parts = append(parts, a.Street)
	}
	if a.Postfach != "" {
		parts = append(parts, "Postfach "+a.Postfach)
	}
	if s := strings.TrimSpace(a.Postcode + " " + a.City); s != "" {
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// Directory runs `amtsbote directory build [--shared DIR] [--out DIR]` and
// `amtsbote directory check FILE...`.
func Directory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, "usage: amtsbote directory build [--shared DIR] [--out DIR]\n       amtsbote directory check FILE...")
		return ExitUsage
	}
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "check":
		// A FlagSet, although check has no flags: "-h" asks for help and "--" ends the
		// options, so neither is read as a file name.
		fs := flag.NewFlagSet("directory check", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() {
			fmt.Fprintln(stderr, "usage: amtsbote directory check FILE...\n\nChecks XZuFi 2.2 (.xml) and YAML overlay files over the built-in directory without\ntouching a running gateway; exit 0 ok, 1 with file:line: reason.")
		}
		if err := fs.Parse(args[1:]); err != nil {
			return ExitUsage
		}
		files := fs.Args()
		if len(files) == 0 {
			fs.Usage()
			return ExitUsage
		}
		base, err := routing.Builtin()
		if err != nil {
			fmt.Fprintln(stderr, "directory check: built-in directory:", err)
			return ExitFailed
		}
		d, err := routing.Check(base, files...)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return ExitFailed
		}
		c := d.Counts()
		fmt.Fprintf(stdout, "ok: %s: %d services, %d offices, %d responsibilities, %d peers\n",
			strings.Join(files, ", "), c.Services, c.Offices, c.Responsibilities, c.Peers)
		return ExitOK
	case "build":
		fs := flag.NewFlagSet("directory build", flag.ContinueOnError)
		fs.SetOutput(stderr)
		shared := fs.String("shared", "", "folder with the source data (default: ../shared/data next to the repository)")
		out := fs.String("out", "", "output folder (default: routing/data in the repository)")
		if err := fs.Parse(args[1:]); err != nil {
			return ExitUsage
		}
		res, err := gen.Run(ctx, gen.Config{SharedData: *shared, OutDir: *out, Log: stderr})
		if err != nil {
			fmt.Fprintln(stderr, "directory build:", err)
			return ExitFailed
		}
		fmt.Fprintf(stdout, "wrote %s: %d areas, %d municipalities, %d postcodes\n", res.File, res.Areas, res.Municipalities, res.Postcodes)
		return ExitOK
	}
	return usage()
}
