package sbom

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	mitText = `MIT License

Copyright (c) 2020 Someone

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal`
	apacheText = `                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/`
	bsd3Text = `Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
   * Neither the name of Google Inc. nor the names of its
contributors may be used to endorse or promote products derived from`
	bsd2Text = `Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
1. Redistributions of source code must retain the above copyright notice`
	iscText = `Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above`
)

// TestLicenses: each licence by its own sentences, whatever the wrapping and
// case; the BSD texts apart by the clause on the authors' names; a text of
// several licences gives all; an unknown one none.
func TestLicenses(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       []string
	}{
		{"MIT", mitText, []string{"MIT"}},
		{"Apache", apacheText, []string{"Apache-2.0"}},
		{"BSD-3", bsd3Text, []string{"BSD-3-Clause"}},
		{"BSD-2", bsd2Text, []string{"BSD-2-Clause"}},
		{"ISC", iscText, []string{"ISC"}},
		{"MPL", "Mozilla Public License Version 2.0\n==================", []string{"MPL-2.0"}},
		{"rewrapped and upper case", strings.ToUpper(strings.ReplaceAll(mitText, " ", "\n ")), []string{"MIT"}},
		{"two in one file", mitText + "\n\n" + apacheText, []string{"Apache-2.0", "MIT"}},
		{"unknown", "All rights reserved. Do not copy.", nil},
	} {
		if got := Licenses(c.text); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestLicenseOf: the licence files of a module's top folder joined by AND; none,
// or one that says nothing known, is ErrLicense — never a guess.
func TestLicenseOf(t *testing.T) {
	write := func(dir string, files map[string]string) string {
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	two := write(t.TempDir(), map[string]string{"LICENSE": bsd3Text, "LICENSE-APACHE.txt": apacheText, "main.go": "package x"})
	if got, err := LicenseOf(two); err != nil || got != "Apache-2.0 AND BSD-3-Clause" {
		t.Errorf("two files: %q, %v", got, err)
	}
	if got, err := LicenseOf(write(t.TempDir(), map[string]string{"COPYING": iscText})); err != nil || got != "ISC" {
		t.Errorf("COPYING: %q, %v", got, err)
	}
	for name, dir := range map[string]string{
		"no licence file": write(t.TempDir(), map[string]string{"README.md": mitText}),
		"unknown text":    write(t.TempDir(), map[string]string{"LICENSE": mitText, "LICENCE.md": "Proprietary."}),
	} {
		if got, err := LicenseOf(dir); !errors.Is(err, ErrLicense) {
			t.Errorf("%s: %q, %v; want ErrLicense", name, got, err)
		}
	}
}

// TestDependencies: an edge from the selected version of a linked module to
// any version of another linked one; edges of other versions and of modules not
// linked are left out; what only those reach, and the standard library, hang
// from the binary; a module that needs nothing says so with [].
func TestDependencies(t *testing.T) {
	refs := map[string]string{"a@v1.2.0": "A", "b@v1.0.0": "B", "c@v0.1.0": "C", "d@v2.0.0": "D"}
	graph := strings.Join([]string{
		"main a@v1.2.0",
		"main testonly@v1.0.0",
		"a@v1.2.0 b@v0.9.0", // asked for an older b: the selected B stands for it
		"a@v1.1.0 c@v0.1.0", // not the selected a: does not count
		"testonly@v1.0.0 c@v0.1.0",
		"b@v1.0.0 d@v2.0.0",
		"a@v1.2.0 b@v1.0.0", // the same edge again
		"junk",
	}, "\n")
	got := map[string][]string{}
	var order []string
	for _, d := range dependencies("main", "M", "S", refs, graph) {
		got[d.Ref] = d.DependsOn
		order = append(order, d.Ref)
	}
	want := map[string][]string{"M": {"A", "C", "S"}, "S": {}, "A": {"B"}, "B": {"D"}, "C": {}, "D": {}}
	for ref, deps := range want {
		if !slices.Equal(got[ref], deps) || got[ref] == nil {
			t.Errorf("%s depends on %v, want %v", ref, got[ref], deps)
		}
	}
	if !slices.Equal(order, []string{"M", "A", "B", "C", "D", "S"}) || len(got) != len(want) {
		t.Errorf("dependencies in the order %v", order)
	}
}

// TestBuildDescribesTheBinary: the SBOM of a real binary (this test's own,
// built by the go command with this toolchain): its SHA-512, its Go version
// against GOROOT's, the standard library with its licence read from GOROOT,
// every module the build information lists, valid JSON with the fields the
// CycloneDX validator of make sbom then checks against the schema.
func TestBuildDescribesTheBinary(t *testing.T) {
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	goRoot := goEnv(t, "GOROOT")
	b, err := Build(Options{Binary: bin, ModCache: goEnv(t, "GOMODCACHE"), GoRoot: goRoot, Now: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC),
		Serial: "7e1f1d3c-2a4b-4c5d-8e6f-0a1b2c3d4e5f", Tool: "test", Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(data)
	main := b.Metadata.Component
	if main.Version != "1.2.3" || main.PURL != "pkg:golang/github.com/amtsbote/amtsbote@1.2.3" ||
		len(main.Hashes) != 1 || main.Hashes[0] != (Hash{Alg: "SHA-512", Content: hex.EncodeToString(sum[:])}) {
		t.Errorf("the binary's component %+v", main)
	}
	std := b.Components[0]
	if std.Name != "stdlib" || !strings.HasPrefix(std.Version, "go1.") || len(std.Licenses) != 1 ||
		std.Licenses[0].License == nil || std.Licenses[0].License.ID != "BSD-3-Clause" {
		t.Errorf("the standard library's component %+v", std)
	}
	var buf bytes.Buffer
	if err := b.Write(&buf); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back["bomFormat"] != "CycloneDX" || back["specVersion"] != "1.6" ||
		back["serialNumber"] != "urn:uuid:7e1f1d3c-2a4b-4c5d-8e6f-0a1b2c3d4e5f" {
		t.Errorf("written: %v\n%s", err, buf.String())
	}

	// A GOROOT of another Go version than the binary's is refused: its
	// licence and version would not be the ones linked.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "VERSION"), []byte("go1.0.0\ntime x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(Options{Binary: bin, GoRoot: other}); err == nil || !strings.Contains(err.Error(), "go1.0.0") {
		t.Errorf("another GOROOT: %v", err)
	}
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}
