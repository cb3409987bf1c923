// Package xmlsec is a benchmark harness that verifies XML signatures in-process
// with libxmlsec1 (the C library behind Debian's xmlsec1), so that amtsbote's own
// verifier can be compared with it on the same document in the same run.
//
// The cgo code is behind the build tag "xmlsec" so that `go build ./...` and
// `go vet ./...` work on machines without libxmlsec1-dev (and with CGO_ENABLED=0).
// Run the comparison with:
//
//	go test -tags xmlsec -run TestCompare -v ./bench/xmlsec/
//
// It needs pkg-config and libxmlsec1-dev (Debian: apt-get install libxmlsec1-dev pkg-config).
package xmlsec
