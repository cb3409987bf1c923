package transfer

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The system's mount tables, read by unmountedShare. Variables so that a test can
// give its own files in the same formats (mounting needs privileges a test has not).
var (
	fstabPath      = "/etc/fstab"
	mountinfoPath  = "/proc/self/mountinfo"
	mountUnitsDirs = []string{"/etc/systemd/system", "/run/systemd/system"}
)

// unmountedShare tells whether dir lies at or below a mount point the system is
// told to mount (an /etc/fstab line or a systemd .mount unit) that is not mounted
// now. That is the one case the ledger cannot tell apart: the bare mount point of
// an unmounted share is an empty folder like a new office folder, and a ledger made
// there would let cases into the local disk, hidden by the share once it is
// mounted. It returns the mount point and what should be mounted there; ok=false
// if dir is not below such a mount point, or the tables cannot be read (a system
// without them has nothing to mount: the check stays as it was).
func unmountedShare(dir string) (where, what string, ok bool) {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	expected := expectedMounts()
	if len(expected) == 0 {
		return "", "", false
	}
	mounted, err := mountPoints()
	if err != nil {
		return "", "", false
	}
	// The deepest expected mount point above dir decides: a share mounted below a
	// local mount point is what counts.
	for _, m := range expected {
		if !within(dir, m.where) || mounted[m.where] || len(m.where) <= len(where) {
			continue
		}
		where, what, ok = m.where, m.what, true
	}
	if !ok {
		return "", "", false
	}
	// A mounted file system deeper than the unmounted one, still above dir, means
	// dir is on that one (a bind mount, say).
	for p := range mounted {
		if len(p) > len(where) && within(dir, p) {
			return "", "", false
		}
	}
	return where, what, true
}

// within: p is dir or one of its ancestors.
func within(dir, p string) bool {
	if p == "/" {
		return true
	}
	return dir == p || strings.HasPrefix(dir, p+"/")
}

type mountEntry struct{ where, what string }

// expectedMounts are the mount points of /etc/fstab (swap and "none" aside) and
// of systemd .mount units.
func expectedMounts() []mountEntry {
	var out []mountEntry
	if f, err := os.Open(fstabPath); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			where := unescapeMount(fields[1])
			if fields[2] == "swap" || !filepath.IsAbs(where) {
				continue
			}
			out = append(out, mountEntry{filepath.Clean(where), unescapeMount(fields[0])})
		}
		f.Close()
	}
	for _, d := range mountUnitsDirs {
		units, _ := filepath.Glob(filepath.Join(d, "*.mount"))
		for _, u := range units {
			if m, ok := readMountUnit(u); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// readMountUnit reads What= and Where= of a systemd mount unit.
func readMountUnit(path string) (mountEntry, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return mountEntry{}, false
	}
	var m mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		k, v, found := strings.Cut(strings.TrimSpace(line), "=")
		if !found {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Where":
			m.where = filepath.Clean(strings.TrimSpace(v))
		case "What":
			m.what = strings.TrimSpace(v)
		}
	}
	return m, filepath.IsAbs(m.where)
}

// mountPoints are the mount points of the gateway's mount namespace.
func mountPoints() (map[string]bool, error) {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("transfer: no %s: %w", mountinfoPath, err)
		}
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mount-point options ... (proc(5))
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 {
			out[filepath.Clean(unescapeMount(fields[4]))] = true
		}
	}
	return out, sc.Err()
}

// unescapeMount undoes the octal escapes of fstab(5) and mountinfo (\040 for a
// space, \011 tab, \012 newline, \134 backslash).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
