package routing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadFile reads one overlay file: XZuFi XML (".xml") or YAML (".yaml", ".yml").
func LoadFile(path string) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		// The path is the DataError's already: os's own error repeated it, and
		// the operator read "FILE: open: open FILE: no such file or directory".
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &DataError{File: path, Msg: "cannot open", Err: err}
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads an overlay from r; name (a file name) selects the format by extension
// and otherwise by content, and appears in errors.
func Parse(name string, r io.Reader) (*Source, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, &DataError{File: name, Msg: "read", Err: err}
	}
	if len(data) > maxFileSize {
		// Say so for both formats: cut at the limit, an XZuFi export read as "not
		// well-formed XML" at its last line.
		return nil, &DataError{File: name, Msg: fmt.Sprintf("file larger than %d bytes", maxFileSize)}
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".xml":
		return ParseXZuFi(name, bytes.NewReader(data))
	case ".yaml", ".yml":
		return ParseYAML(name, bytes.NewReader(data))
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("<")) {
		return ParseXZuFi(name, bytes.NewReader(data))
	}
	return ParseYAML(name, bytes.NewReader(data))
}

// Check loads the files on top of base and reports the first problem, or nil. It is
// what `amtsbote directory check` runs.
func Check(base *Directory, paths ...string) (*Directory, error) {
	d, err := BuildWithFiles(base, paths...)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	return d, nil
}
