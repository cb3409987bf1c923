package routing

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/amtsbote/amtsbote/routing/data"
)

//go:generate go run ./internal/gen/gendata
//go:generate go run ./internal/placequeries

var builtin = sync.OnceValues(loadBuiltin)

// loadBuiltin parses and builds the embedded directory (uncached; for benchmarks).
func loadBuiltin() (*Directory, error) {
	places, err := ParsePlaces("routing/data/places.tsv.gz", bytes.NewReader(data.Places))
	if err != nil {
		return nil, err
	}
	sx, err := ParseYAML("routing/data/saxony.yaml", bytes.NewReader(data.Saxony))
	if err != nil {
		return nil, err
	}
	if err := places.mergeFile(sx); err != nil {
		return nil, err
	}
	places.dropAreaCache() // only needed while merging; the snapshot keeps its source
	return Build(places)
}

// Builtin returns the embedded directory: every German municipality and postcode,
// Saxony's services, offices and responsibilities, and the peers of the other states.
// It is built once; the snapshot is immutable and shared.
func Builtin() (*Directory, error) { return builtin() }

// ParsePlaces reads a place table (gzip-compressed or plain), as the generator writes it.
func ParsePlaces(name string, r io.Reader) (*Source, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, &DataError{File: name, Msg: "gzip", Err: err}
		}
		defer zr.Close()
		br = bufio.NewReader(io.LimitReader(zr, maxFileSize))
	}
	src := &Source{Postcodes: map[string][]string{}}
	byKey := map[string]*Area{}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		if t == "" || t[0] == '#' {
			continue
		}
		f := strings.Split(t, "\t")
		bad := func(msg string) error { return &DataError{File: name, Line: line, Msg: msg} }
		switch f[0] {
		case "A":
			if len(f) != 5 && len(f) != 6 {
				return nil, bad(fmt.Sprintf("area line has %d fields, want 5 or 6", len(f)))
			}
			pop := 0
			if f[4] != "" {
				n, err := strconv.Atoi(f[4])
				if err != nil || n < 0 {
					return nil, bad("population " + quote(f[4]) + " is not a number")
				}
				pop = n
			}
			if !isDigits(f[1]) {
				return nil, bad("area key " + quote(f[1]) + " is not a number")
			}
			a := &Area{Key: f[1], AGS: f[2], Name: f[3], Population: pop}
			if len(f) == 6 {
				a.Type = f[5]
			}
			src.Areas = append(src.Areas, a)
			byKey[a.Key] = a
		case "N":
			a := byKey[f[min(1, len(f)-1)]]
			switch {
			case len(f) != 3 || strings.TrimSpace(f[2]) == "":
				return nil, bad("other-name line: want N<TAB>area key<TAB>name")
			case a == nil || len(a.Key) != 12:
				return nil, bad("other name " + quote(f[2]) + " of " + quote(f[1]) + ", which is no municipality above it in the file")
			}
			a.OtherNames = append(a.OtherNames, f[2])
		case "K":
			a := byKey[f[min(1, len(f)-1)]]
			switch {
			case len(f) != 3 || len(f[2]) != 12 || !isDigits(f[2]):
				return nil, bad("other-key line: want K<TAB>area key<TAB>12 digits")
			case a == nil || len(a.Key) != 12:
				return nil, bad("other key " + quote(f[2]) + " of " + quote(f[1]) + ", which is no municipality above it in the file")
			}
			a.OtherKeys = append(a.OtherKeys, f[2])
		case "P":
			if len(f) != 3 || len(f[1]) != 5 || !isDigits(f[1]) {
				return nil, bad("postcode line: want P<TAB>5 digits<TAB>keys")
			}
			src.Postcodes[f[1]] = strings.Split(f[2], ",")
		default:
			return nil, bad("unknown record type " + quote(f[0]))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &DataError{File: name, Line: line, Msg: "read", Err: err}
	}
	return src, nil
}
