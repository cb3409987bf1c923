// Package diskspace reads how much room is left on the file system that holds
// a folder: the gateway's early warning before its data disk refuses writes
// (amtsbote_data_disk_available_bytes).
package diskspace

import "errors"

// ErrUnsupported: this platform has no statfs the package knows.
var ErrUnsupported = errors.New("diskspace: not supported on this platform")

// Space is what the file system holding a folder has.
type Space struct {
	// Available is what an unprivileged process may still write: the free
	// bytes less those reserved for root (ext4's 5 %), as the gateway runs as
	// its own user. Size is the file system's size.
	Available, Size uint64
}
