// Package pdffile writes the file structure of a small PDF 1.4: numbered objects,
// the cross-reference table with byte offsets, and the trailer; and compressed
// streams (FlateStream). The gateway makes
// PDFs in two places (the example attachment of paket, the readable form view of
// formview); the offsets must be exact to the byte for strict readers (qpdf, the
// tests' check), so that arithmetic lives here once.
package pdffile

import (
	"bytes"
	"compress/zlib"
	"fmt"
)

// Assemble numbers objs from 1 (object 1 is the catalogue), writes them with
// their cross-reference table, and ends with a trailer naming object 1 as /Root
// and holding the extra trailer entries, if any (e.g. "/Info 5 0 R").
func Assemble(objs []string, trailer string) []byte {
	var b bytes.Buffer
	// The comment line with bytes >= 128 tells transfer tools the file is binary.
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off) // each entry exactly 20 bytes
	}
	if trailer != "" {
		trailer = " " + trailer
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, trailer, xref)
	return b.Bytes()
}

// FlateStream returns a stream object holding data compressed with zlib
// (/FlateDecode); dict holds extra entries of its dictionary, if any.
func FlateStream(dict string, data []byte) string {
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression) // the level is valid
	zw.Write(data)                                         // a bytes.Buffer does not fail
	zw.Close()
	if dict != "" {
		dict += " "
	}
	return fmt.Sprintf("<< %s/Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream", dict, z.Len(), z.Bytes())
}
