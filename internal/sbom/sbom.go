// Package sbom writes the software bill of materials of a built amtsbote binary
// as CycloneDX 1.6 JSON (`make sbom`): the binary itself with its SHA-512, Go's
// standard library at the toolchain's version, and every module linked into it,
// each with its version, its go.sum hash and the licence read from the module's
// own licence file, and the modules' dependencies.
//
// Public bodies ask for it (BSI TR-03183-2 names CycloneDX and the fields
// above; the EU Cyber Resilience Act makes one the manufacturer's duty), and an
// operator needs it to answer "are we affected?" when an advisory names a module
// or a Go release: the binary's build information says what was linked, not
// `go.mod`, which also lists what only the tests use.
//
// The facts come from the binary (debug/buildinfo), not from the source tree, so
// the SBOM describes exactly the file that is shipped. Licences are read from the
// module cache the binary was built from; a module whose licence file is missing
// or not one of the texts Licenses knows is an error, not a guess: a new
// dependency's licence must be looked at once.
package sbom

import (
	"crypto/sha512"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrLicense means a module's licence could not be told from its files.
var ErrLicense = errors.New("sbom: licence not recognised")

// Options say what to describe and where its parts are.
type Options struct {
	Binary   string    // the built binary
	ModCache string    // `go env GOMODCACHE`: where the linked modules' files are
	GoRoot   string    // `go env GOROOT` of the toolchain that built it (its LICENSE and VERSION)
	Graph    string    // `go mod graph` of the main module ("" : every module a dependency of the binary)
	Now      time.Time // the SBOM's timestamp
	Serial   string    // a UUID for serialNumber
	Tool     string    // the generating tool's version
	// Version is the binary's version where the build information cannot tell
	// it (make build stamps it with -ldflags, which -trimpath keeps out of the
	// build information); "": buildVersion's.
	Version string
}

// Build reads the binary and the module files and returns the SBOM.
func Build(o Options) (*BOM, error) {
	bi, err := buildinfo.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	sum, err := fileSHA512(o.Binary)
	if err != nil {
		return nil, err
	}
	goVersion, err := os.ReadFile(filepath.Join(o.GoRoot, "VERSION"))
	if err != nil {
		return nil, fmt.Errorf("sbom: the toolchain's VERSION: %w", err)
	}
	if v, _, _ := strings.Cut(string(goVersion), "\n"); v != bi.GoVersion {
		return nil, fmt.Errorf("sbom: the binary was built with %s, GOROOT %s is %s", bi.GoVersion, o.GoRoot, v)
	}
	stdLicense, err := LicenseOf(o.GoRoot)
	if err != nil {
		return nil, fmt.Errorf("sbom: the standard library: %w", err)
	}

	version := o.Version
	if version == "" {
		version = buildVersion(bi)
	}
	mainRef := purl(bi.Main.Path, version)
	b := &BOM{
		BOMFormat:    "CycloneDX",
		SpecVersion:  "1.6",
		SerialNumber: "urn:uuid:" + o.Serial,
		Version:      1,
		Metadata: Metadata{
			Timestamp: o.Now.UTC().Format(time.RFC3339),
			Tools:     &Tools{Components: []Component{{Type: "application", Name: "amtsbote-sbom", Version: o.Tool}}},
			Component: &Component{
				Type: "application", BOMRef: mainRef, Name: "amtsbote", Version: version, PURL: mainRef,
				Hashes: []Hash{{Alg: "SHA-512", Content: sum}},
				Properties: []Property{
					{Name: "bsi:component:filename", Value: filepath.Base(o.Binary)},
					{Name: "bsi:component:executable", Value: "executable"},
					{Name: "golang:module:path", Value: bi.Main.Path},
					{Name: "golang:build:go", Value: bi.GoVersion},
				},
			},
		},
	}
	stdRef := "pkg:golang/stdlib@" + bi.GoVersion
	b.Components = append(b.Components, Component{
		Type: "library", BOMRef: stdRef, Name: "stdlib", Version: bi.GoVersion, PURL: stdRef,
		Licenses:   licenses(stdLicense),
		Properties: []Property{{Name: "golang:module:path", Value: "std"}},
	})

	refs := map[string]string{} // "path@version" (the selected version, as the graph names it) → bom-ref
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		dir, err := moduleDir(o.ModCache, m.Path, m.Version)
		if err != nil {
			return nil, err
		}
		lic, err := LicenseOf(dir)
		if err != nil {
			return nil, fmt.Errorf("%s@%s: %w", m.Path, m.Version, err)
		}
		ref := purl(m.Path, m.Version)
		c := Component{Type: "library", BOMRef: ref, Name: m.Path, Version: m.Version, PURL: ref, Licenses: licenses(lic)}
		if m.Sum != "" {
			c.Properties = append(c.Properties, Property{Name: "golang:module:sum", Value: m.Sum})
		}
		if d.Replace != nil {
			c.Properties = append(c.Properties, Property{Name: "golang:module:replaces", Value: d.Path + "@" + d.Version})
		}
		b.Components = append(b.Components, c)
		refs[d.Path+"@"+d.Version] = ref
	}
	b.Dependencies = dependencies(bi.Main.Path, mainRef, stdRef, refs, o.Graph)
	return b, nil
}

// dependencies are the edges of `go mod graph` between modules linked into the
// binary: from the version the build selected (the graph also holds what other
// versions required) to whatever version of a linked module it asked for, which
// the selected one stands for. A linked module that only an unlinked one requires
// (the graph also holds what the tests use) hangs from the binary itself, as does
// the standard library, so every component is reachable from it.
func dependencies(mainPath, mainRef, stdRef string, refs map[string]string, graph string) []Dependency {
	byPath := map[string]string{}
	for pv, ref := range refs {
		p, _, _ := strings.Cut(pv, "@")
		byPath[p] = ref
	}
	edges := map[string][]string{}
	reached := map[string]bool{}
	for line := range strings.Lines(graph) {
		from, to, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		fromRef := refs[from]
		if from == mainPath {
			fromRef = mainRef
		}
		toPath, _, _ := strings.Cut(to, "@")
		toRef := byPath[toPath]
		if fromRef == "" || toRef == "" || slices.Contains(edges[fromRef], toRef) {
			continue
		}
		edges[fromRef] = append(edges[fromRef], toRef)
		reached[toRef] = true
	}
	edges[mainRef] = append(edges[mainRef], stdRef)
	for _, ref := range refs {
		if !reached[ref] {
			edges[mainRef] = append(edges[mainRef], ref)
		}
	}
	all := []string{mainRef, stdRef}
	for _, ref := range refs {
		all = append(all, ref)
	}
	slices.Sort(all[1:])
	var out []Dependency
	for _, ref := range all {
		deps := append([]string{}, edges[ref]...) // [] for none: known to need nothing
		slices.Sort(deps)
		out = append(out, Dependency{Ref: ref, DependsOn: deps})
	}
	return out
}

// buildVersion is the version the build stamped (internal/buildstamp, by
// -ldflags -X, as make build does), else the main module's, else "devel".
func buildVersion(bi *buildinfo.BuildInfo) string {
	const stamp = "github.com/amtsbote/amtsbote/internal/buildstamp.version="
	for _, s := range bi.Settings {
		if s.Key != "-ldflags" {
			continue
		}
		for _, f := range strings.Fields(s.Value) {
			if v, ok := strings.CutPrefix(f, stamp); ok && v != "" {
				return v
			}
		}
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	return "devel"
}

// moduleDir is where the go command keeps a module's files: path and version
// with each upper-case letter as "!" and its lower case (the module cache's
// escaping, for case-insensitive file systems).
func moduleDir(cache, path, version string) (string, error) {
	if strings.Contains(path+version, "!") || strings.Contains(path, "..") {
		return "", fmt.Errorf("sbom: module %s@%s: not a module path", path, version)
	}
	dir := filepath.Join(cache, filepath.FromSlash(cacheEscape(path))+"@"+cacheEscape(version))
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("sbom: %s@%s is not in the module cache (go mod download): %w", path, version, err)
	}
	return dir, nil
}

func cacheEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// purl is a Go module's package URL (github.com/package-url/purl-spec, type
// golang): the path as it is, the version with "+" escaped.
func purl(path, version string) string {
	return "pkg:golang/" + path + "@" + strings.ReplaceAll(version, "+", "%2B")
}

func licenses(expr string) []License {
	if strings.Contains(expr, " ") {
		return []License{{Expression: expr}}
	}
	return []License{{License: &LicenseID{ID: expr}}}
}

func fileSHA512(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("sbom: %w", err)
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("sbom: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Write writes b as indented JSON.
func (b *BOM) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(b)
}

// BOM is the part of CycloneDX 1.6 that Build fills.
type BOM struct {
	BOMFormat    string       `json:"bomFormat"`
	SpecVersion  string       `json:"specVersion"`
	SerialNumber string       `json:"serialNumber"`
	Version      int          `json:"version"`
	Metadata     Metadata     `json:"metadata"`
	Components   []Component  `json:"components"`
	Dependencies []Dependency `json:"dependencies"`
}

// Metadata of the SBOM: when, by what, about what.
type Metadata struct {
	Timestamp string     `json:"timestamp"`
	Tools     *Tools     `json:"tools,omitempty"`
	Component *Component `json:"component,omitempty"`
}

// Tools that made the SBOM.
type Tools struct {
	Components []Component `json:"components"`
}

// Component is the binary, the standard library or a module.
type Component struct {
	Type       string     `json:"type"`
	BOMRef     string     `json:"bom-ref,omitempty"`
	Name       string     `json:"name"`
	Version    string     `json:"version,omitempty"`
	PURL       string     `json:"purl,omitempty"`
	Hashes     []Hash     `json:"hashes,omitempty"`
	Licenses   []License  `json:"licenses,omitempty"`
	Properties []Property `json:"properties,omitempty"`
}

// Hash of a component's file.
type Hash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

// License is an SPDX id or, for several, an SPDX expression.
type License struct {
	License    *LicenseID `json:"license,omitempty"`
	Expression string     `json:"expression,omitempty"`
}

// LicenseID names one SPDX licence.
type LicenseID struct {
	ID string `json:"id"`
}

// Property is a name-value pair.
type Property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Dependency lists what one component requires directly.
type Dependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}
