//go:build linux

package diskspace

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOfSeesAWrite: on a tmpfs of a known size (root only; CI runs as root)
// the size is what was mounted, and a file written takes its bytes from the
// available ones: the figures are the file system's, not made up.
func TestOfSeesAWrite(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatalf("mount an 8 MiB tmpfs (the test needs root, as CI has): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	before, err := Of(dir)
	if err != nil {
		t.Fatal(err)
	}
	if before.Size != 8<<20 || before.Available == 0 || before.Available > before.Size {
		t.Fatalf("an empty 8 MiB tmpfs: %+v", before)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	after, err := Of(dir)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size != before.Size || before.Available-after.Available < 4<<20 {
		t.Fatalf("after writing 4 MiB: %+v, before %+v", after, before)
	}
	if _, err := Of(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("no error for a folder that does not exist")
	}
}
