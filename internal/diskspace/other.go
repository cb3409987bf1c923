//go:build !(linux || darwin)

package diskspace

// Of says ErrUnsupported: the gauge is then absent, and the node exporter's
// file system metrics are the way to watch the disk.
func Of(dir string) (Space, error) { return Space{}, ErrUnsupported }
