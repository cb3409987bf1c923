// Package fileperm checks that the files which decide whom the gateway trusts —
// its configuration (the tokens, the admin token), the trust store (which
// portals' and peers' signatures are accepted), the directory files (where
// applications go) and the CA files — cannot be changed by every user of the
// machine. Such a user could otherwise put a certificate of her own into
// portals/ and submit applications in a portal's name, set her own admin_token,
// or send an office's applications elsewhere, without any credential of the
// gateway. The key files have their own, stricter check (not even readable by
// others).
package fileperm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// othersWrite is the permission bit that lets users other than the owner and
// the group write a file, or create, remove and rename entries of a folder.
const othersWrite = 0o002

// ErrWritableByOthers is what a WritableByOthers error wraps.
var ErrWritableByOthers = errors.New("writable by every user of this machine")

// WritableByOthers returns an error wrapping ErrWritableByOthers when every user
// of the machine may change path: the file itself (followed through symbolic
// links, as the gateway reads it), the folder that holds it (where its entry can
// be replaced; not when that folder has the sticky bit, as /tmp does, which keeps
// others from replacing an entry they do not own), or, when path is a folder,
// anything inside it. A path that does not exist is no error here: the caller's
// reading of it reports that. The error names the path and the chmod that mends
// it, never any content.
func WritableByOthers(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if err := check(path, fi); err != nil {
		return err
	}
	if dir := filepath.Dir(filepath.Clean(path)); dir != path {
		if di, err := os.Stat(dir); err == nil && di.Mode()&fs.ModeSticky == 0 {
			if err := check(dir, di); err != nil {
				return err
			}
		}
	}
	if !fi.IsDir() {
		return nil
	}
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == path {
			return nil // an unreadable entry is the loader's to report
		}
		// Stat, not d.Info: an entry that is a symbolic link is judged by what it
		// points to, which is what the loader reads.
		fi, err := os.Stat(p)
		if err != nil {
			return nil
		}
		return check(p, fi)
	})
}

func check(path string, fi fs.FileInfo) error {
	m := fi.Mode().Perm()
	if m&othersWrite == 0 {
		return nil
	}
	what := "file"
	if fi.IsDir() {
		what = "folder"
	}
	return fmt.Errorf("%s %s is %w (mode %04o); restrict it: chmod o-w %s", what, path, ErrWritableByOthers, m, path)
}
