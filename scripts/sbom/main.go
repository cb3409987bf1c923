// Command sbom writes the CycloneDX SBOM of a built amtsbote binary (make sbom):
//
//	go run ./scripts/sbom -bin bin/amtsbote -out bin/amtsbote.cdx.json
//
// It asks the go command for the module cache, the toolchain's GOROOT and the
// module graph, and internal/sbom for the rest.
package main

import (
	"bytes"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/internal/buildstamp"
	"github.com/amtsbote/amtsbote/internal/sbom"
)

func main() {
	bin := flag.String("bin", "bin/amtsbote", "the built binary")
	out := flag.String("out", "", "the SBOM file (default: the binary's name with .cdx.json)")
	version := flag.String("version", "", "the binary's version, as make build stamped it (default: what its build information says)")
	flag.Parse()
	if *out == "" {
		*out = *bin + ".cdx.json"
	}
	if err := run(*bin, *out, *version); err != nil {
		fmt.Fprintln(os.Stderr, "sbom:", err)
		os.Exit(1)
	}
}

func run(bin, out, version string) error {
	env := func(name string) (string, error) {
		b, err := exec.Command("go", "env", name).Output()
		return strings.TrimSpace(string(b)), err
	}
	modCache, err := env("GOMODCACHE")
	if err != nil {
		return err
	}
	goRoot, err := env("GOROOT")
	if err != nil {
		return err
	}
	graph, err := exec.Command("go", "mod", "graph").Output()
	if err != nil {
		return fmt.Errorf("go mod graph: %w", err)
	}
	var u [16]byte
	rand.Read(u[:])
	u[6], u[8] = u[6]&0x0f|0x40, u[8]&0x3f|0x80
	b, err := sbom.Build(sbom.Options{
		Binary: bin, ModCache: modCache, GoRoot: goRoot, Graph: string(graph), Now: time.Now(),
		Serial: fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]),
		Tool:   buildstamp.Read().Version, Version: version,
	})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := b.Write(&buf); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	std := b.Components[0] // Build puts the standard library first
	fmt.Printf("sbom: %s: %d components (the binary's modules and the standard library, %s)\n", out, len(b.Components), std.Version)
	return nil
}
