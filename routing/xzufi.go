package routing

import "io"

// ParseXZuFi reads the XZuFi 2.2 subset (placeholder until the full reader lands).
func ParseXZuFi(name string, r io.Reader) (*Source, error) {
	return nil, &DataError{File: name, Msg: "XZuFi import not implemented yet"}
}
