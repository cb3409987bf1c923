// Package routingcli implements the directory verbs of the amtsbote binary:
// `amtsbote lookup` (who is responsible for this service at this place?) and
// `amtsbote directory build|check` (rebuild the embedded data, validate operator files).
// The functions return a process exit code: 0 ok, 1 no answer or invalid file,
// 2 usage error, 3 ambiguous input (the choices are printed).
package routingcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/routing/internal/gen"
)

// Exit codes.
const (
	ExitOK        = 0
	ExitFailed    = 1
	ExitUsage     = 2
	ExitAmbiguous = 3
)

// Lookup runs `amtsbote lookup --service "Gewerbe anmelden" --place 01067`.
// --service takes a LeiKa key, a name or a synonym; --place an ARS, AGS, postcode or
// name. Ambiguous input lists the choices instead of guessing.
func Lookup(ctx context.Context, store *routing.Store, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lookup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "LeiKa key, service name or synonym")
	place := fs.String("place", "", "ARS (12 digits), AGS (8), postcode (5) or place name")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: amtsbote lookup --service \"Gewerbe anmelden\" --place 01067")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *service == "" || *place == "" || fs.NArg() > 0 {
		fs.Usage()
		return ExitUsage
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintln(stderr, "lookup:", err)
		return ExitFailed
	}
	d := store.Current()
	svc, err := d.FindService(*service)
	if err != nil {
		var amb *routing.AmbiguousServiceError
		if errors.As(err, &amb) {
			fmt.Fprintf(stdout, "Die Leistung %q ist nicht eindeutig. Bitte wählen Sie:\n", *service)
			for _, s := range amb.Candidates {
				fmt.Fprintf(stdout, "  %s  %s\n", s.Key, s.Name)
			}
			return ExitAmbiguous
		}
		fmt.Fprintln(stderr, "lookup:", err)
		return ExitFailed
	}
	area, err := d.Place(*place)
	if err != nil {
		var amb *routing.AmbiguousPlaceError
		if errors.As(err, &amb) {
			fmt.Fprintf(stdout, "Der Ort %q ist nicht eindeutig. Bitte wählen Sie (mit --place ARS):\n", *place)
			for _, a := range amb.Candidates {
				fmt.Fprintf(stdout, "  %s  %s%s\n", a.ARS, a.Name, kreisOf(a))
			}
			return ExitAmbiguous
		}
		fmt.Fprintln(stderr, "lookup:", err)
		return ExitFailed
	}
	rt, err := d.ResolveArea(svc, area)
	if err != nil {
		fmt.Fprintln(stderr, "lookup:", err)
		return ExitFailed
	}
	PrintRoute(stdout, rt)
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

// PrintRoute writes a route the way a person reads it.
func PrintRoute(w io.Writer, rt *routing.Route) {
	fmt.Fprintf(w, "Leistung:  %s (%s)\n", rt.Service.Name, rt.Service.Key)
	fmt.Fprintf(w, "Ort:       %s (ARS %s)\n", rt.Area.Name, rt.Area.ARS)
	if rt.Peer != nil {
		fmt.Fprintf(w, "Zuständig: Gateway des Landes %s %s (%s)\n", rt.Peer.Land, rt.Peer.Name, rt.Peer.GatewayID)
		fmt.Fprintf(w, "Kanal:     peer %s\n", rt.Peer.BaseURL)
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
	for i, c := range rt.Channels {
		label := "Kanal:    "
		if i > 0 {
			label = "Ersatz:   "
		}
		fmt.Fprintf(w, "%s %s (Reifegrad %d) %s\n", label, c.Kind, c.Level, c.Endpoint)
	}
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
		files := args[1:]
		if len(files) == 0 {
			return usage()
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
