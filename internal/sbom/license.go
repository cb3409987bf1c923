package sbom

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// licenseFile matches the names modules give their licence files.
var licenseFile = regexp.MustCompile(`(?i)^(licen[cs]e|copying)([.-].*)?$`)

// LicenseOf is the SPDX expression of the licence files at the top of a
// module's folder: their licences joined by AND (a module that ships code under
// several, as klauspost/compress does, is under all of them). ErrLicense when
// there is none or one holds no text Licenses knows.
func LicenseOf(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("sbom: %w", err)
	}
	var ids []string
	files := 0
	for _, e := range entries {
		if e.IsDir() || !licenseFile.MatchString(e.Name()) {
			continue
		}
		text, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", fmt.Errorf("sbom: %w", err)
		}
		found := Licenses(string(text))
		if len(found) == 0 {
			return "", fmt.Errorf("%w: %s", ErrLicense, e.Name())
		}
		ids = append(ids, found...)
		files++
	}
	if files == 0 {
		return "", fmt.Errorf("%w: no licence file in %s", ErrLicense, dir)
	}
	slices.Sort(ids)
	return strings.Join(slices.Compact(ids), " AND "), nil
}

// The licences Licenses tells apart, each by sentences of its text that the
// others lack. BSD-2-Clause is BSD-3-Clause without the clause on the names of
// the authors, so it is what remains of the BSD texts.
var known = []struct {
	id     string
	all    []string // every one of them is in the text
	notAny []string
}{
	{id: "Apache-2.0", all: []string{"apache license", "version 2.0"}},
	{id: "MIT", all: []string{"permission is hereby granted, free of charge, to any person obtaining a copy"}},
	{id: "ISC", all: []string{"permission to use, copy, modify, and/or distribute this software for any purpose with or without fee is hereby granted"}},
	{id: "MPL-2.0", all: []string{"mozilla public license", "version 2.0"}},
	{id: "BSD-3-Clause", all: []string{"redistribution and use in source and binary forms", "neither the name"}},
	{id: "BSD-3-Clause", all: []string{"redistribution and use in source and binary forms", "names of its contributors may be used to endorse"}},
	{id: "BSD-2-Clause", all: []string{"redistribution and use in source and binary forms"},
		notAny: []string{"neither the name", "names of its contributors may be used to endorse"}},
}

// Licenses returns the SPDX ids of the licences whose texts appear in text,
// sorted. Whitespace and case do not count (licence files are wrapped and
// capitalised differently).
func Licenses(text string) []string {
	norm := strings.ToLower(strings.Join(strings.Fields(text), " "))
	var ids []string
	for _, k := range known {
		ok := true
		for _, s := range k.all {
			ok = ok && strings.Contains(norm, s)
		}
		for _, s := range k.notAny {
			ok = ok && !strings.Contains(norm, s)
		}
		if ok {
			ids = append(ids, k.id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
