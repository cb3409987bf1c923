//go:build linux || darwin

package diskspace

import (
	"fmt"
	"syscall"
)

// Of reads the space of the file system that holds dir: one statfs call.
func Of(dir string) (Space, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return Space{}, fmt.Errorf("diskspace: statfs %s: %w", dir, err)
	}
	// Blocks count in units of Bsize on both (node_exporter reads them so too);
	// the field types differ between the platforms, hence the conversions.
	return Space{Available: uint64(fs.Bavail) * uint64(fs.Bsize), Size: uint64(fs.Blocks) * uint64(fs.Bsize)}, nil
}
