// Package data holds the directory files embedded into the binary: places.tsv.gz
// (generated from the Destatis code lists and the OSM postcode table by
// routing/internal/gen; see NOTICE.md for sources and licences) and saxony.yaml (the
// hand-maintained services, offices and responsibilities of Saxony).
package data

import _ "embed"

// Places is the gzip-compressed place table. Lines: "A<TAB>ars-key<TAB>ags<TAB>name<TAB>population<TAB>type"
// and "P<TAB>postcode<TAB>ars,ars,...", comments start with '#'.
//
//go:embed places.tsv.gz
var Places []byte

// Saxony is the YAML directory of Saxony's services, offices and responsibilities.
//
//go:embed saxony.yaml
var Saxony []byte
