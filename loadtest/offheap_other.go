//go:build !linux

package loadtest

// Elsewhere the packages stay on the heap (the bench's figures are taken on Linux).
func mapAnon(int) ([]byte, error) { return nil, nil }
func unmap([]byte)                {}
func dontNeed([]byte)             {}
func pageSize() int               { return 4096 }
