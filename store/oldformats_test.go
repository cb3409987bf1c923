package store

import "github.com/klauspost/compress/zstd"

// What builds before 2026-12-03 wrote, for the tests that read it: inline blobs
// (the package) were zstd at its fastest level (inline.go says why they are S2 now).
var zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false))

// packBig is what those builds stored for a package: zstd behind its marker, or v
// itself when that is not smaller.
func packBig(v []byte) []byte {
	out := make([]byte, 1, 1+len(v)/2)
	out[0] = packedZstd
	out = zenc.EncodeAll(v, out)
	if len(out) >= len(v) {
		return v
	}
	return out
}
