package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Blobs is a content-addressed file store: each blob lives at
// <dir>/<first two hex digits>/<sha256 hex>. Writes go to a temporary file, are
// fsynced and renamed into place, and the folder is fsynced, so a blob that Put
// returned survives a crash. Identical content is stored once.
type Blobs struct {
	dir string
	// mu orders a Put of content that is already there (which refreshes the file's
	// time: a new record is about to reference it) against DeleteIfOlder, so the
	// retention sweep can never remove bytes a record committed a moment later needs.
	mu sync.Mutex
	// grain is how finely the file system keeps a file's time (1ns on ext4 with
	// large inodes, XFS, tmpfs; a second on ext4 with 128-byte inodes, ext3, HFS+;
	// two on FAT). DeleteIfOlder must not take a time it cannot tell apart for an
	// older one: with a coarse grain, a touch by a concurrent request in the same
	// second as the discarded put would read as "before" it, and DiscardNew would
	// remove bytes that request's record is about to reference.
	grain time.Duration
	// subs are the subfolders this process made durable in dir (mkSub).
	subs sync.Map
}

// tempPrefix starts the name of every temporary file in the blob folder, so that
// removeStale finds the ones a dead process left.
const tempPrefix = ".tmp-"

// ErrBadDigest is returned when a blob name is not a SHA-256 hex digest.
var ErrBadDigest = errors.New("not a sha-256 hex digest")

// OpenBlobs opens (creating) a blob folder.
func OpenBlobs(dir string) (*Blobs, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: blob dir: %w", err)
	}
	return &Blobs{dir: dir, grain: fileTimeGrain(dir)}, nil
}

// coarseGrain is the grain assumed for a file system that does not keep the
// nanoseconds of a file's time: FAT's two seconds cover every coarser one in use.
const coarseGrain = 2 * time.Second

// fileTimeGrain probes dir's file system: a file's time set with nanoseconds
// reads back exactly, or the grain is taken as coarseGrain. A failed probe is
// taken as coarse too (the safe side: refused uploads wait for the sweep).
func fileTimeGrain(dir string) time.Duration {
	f, err := os.CreateTemp(dir, tempPrefix+"probe-*")
	if err != nil {
		return coarseGrain
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	t := time.Now().Truncate(time.Second).Add(123456789 * time.Nanosecond)
	if err := os.Chtimes(name, t, t); err != nil {
		return coarseGrain
	}
	info, err := os.Stat(name)
	if err != nil || !info.ModTime().Equal(t) {
		return coarseGrain
	}
	return time.Nanosecond
}

// Put stores b and returns its hex SHA-256.
func (bs *Blobs) Put(b []byte) (string, error) {
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:])
	final := bs.path(digest)
	bs.mu.Lock()
	whole, _, _, err := touchWhole(final, int64(len(b)), time.Now())
	bs.mu.Unlock()
	if err != nil {
		return "", err
	}
	if whole {
		return digest, nil
	}
	sub := filepath.Dir(final)
	if err := bs.mkSub(sub); err != nil {
		return "", err
	}
	// The temporary file lives in the folder's root, as PutStream's does, so that
	// removeStale finds a dead process's without listing every blob.
	f, err := os.CreateTemp(bs.dir, tempPrefix+"*")
	if err != nil {
		return "", fmt.Errorf("store: blob: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", fmt.Errorf("store: blob write: %w", err)
	}
	if err := syncFile(f); err != nil {
		f.Close()
		return "", fmt.Errorf("store: blob sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("store: blob close: %w", err)
	}
	// Placed as PutStream places it, under the lock and with its time set: a
	// rename outside the lock replaced a file another request's PutStream had
	// just created with one whose time (this write's, taken before that put) was
	// older, and that request's DiscardNew then removed the bytes this Put's
	// record references.
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return digest, bs.place(tmp, final, int64(len(b)))
}

// place renames the complete, fsynced temporary file tmp to final, with a time
// after every earlier one of the blob, unless final is there whole meanwhile
// (then it is touched). The caller holds bs.mu.
func (bs *Blobs) place(tmp, final string, size int64) error {
	whole, _, at, err := touchWhole(final, size, time.Now())
	if err != nil || whole {
		return err
	}
	if err := os.Chtimes(tmp, at, at); err != nil {
		return fmt.Errorf("store: blob: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("store: blob rename: %w", err)
	}
	return syncDir(filepath.Dir(final))
}

// PutStream implements BlobStore: the bytes go to a temporary file in the blob
// folder while they are hashed, and only a complete, matching, fsynced file is
// renamed to its digest's name, so a blob file never holds a partial or refused
// upload. The temporary file is removed on every way out.
func (bs *Blobs) PutStream(ctx context.Context, r io.Reader, limit int64, want string) (StreamPut, error) {
	if want != "" && !IsHexDigest(want) {
		return StreamPut{}, ErrBadDigest
	}
	f, err := os.CreateTemp(bs.dir, tempPrefix+"stream-*")
	if err != nil {
		return StreamPut{}, fmt.Errorf("store: blob: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	h := sha256.New()
	n, err := CopyLimited(ctx, io.MultiWriter(f, h), r, limit)
	if err != nil {
		f.Close()
		return StreamPut{}, err
	}
	digest := hex.EncodeToString(h.Sum(nil))
	if want != "" && digest != want {
		f.Close()
		return StreamPut{}, fmt.Errorf("store: blob of %d bytes is %s, expected %s: %w", n, digest, want, ErrDigestMismatch)
	}
	if err := syncFile(f); err != nil {
		f.Close()
		return StreamPut{}, fmt.Errorf("store: blob sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return StreamPut{}, fmt.Errorf("store: blob close: %w", err)
	}
	final := bs.path(digest)
	sub := filepath.Dir(final)
	if err := bs.mkSub(sub); err != nil {
		return StreamPut{}, err
	}
	// Under the lock DeleteIfOlder takes: the existence check, the touch or the
	// rename, and the time the caller may later pass to DeleteIfOlder (DiscardNew)
	// are one step against the sweep.
	bs.mu.Lock()
	defer bs.mu.Unlock()
	whole, repaired, at, err := touchWhole(final, n, time.Now())
	if err != nil {
		return StreamPut{}, err
	}
	if whole {
		return StreamPut{Digest: digest, Size: n, Written: at}, nil
	}
	// A cut file is replaced below and not reported as created, since records
	// named it before (DiscardNew must not remove it).
	// The file's time is set before the rename, so Written is exactly the time a
	// DeleteIfOlder compares, and any later Put of the same content is newer.
	if err := os.Chtimes(tmp, at, at); err != nil {
		return StreamPut{}, fmt.Errorf("store: blob: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return StreamPut{}, fmt.Errorf("store: blob rename: %w", err)
	}
	if err := syncDir(sub); err != nil {
		return StreamPut{}, err
	}
	return StreamPut{Digest: digest, Size: n, Created: !repaired, Written: at}, nil
}

// CopyLimited copies r to w until EOF, at most limit bytes (limit < 0: no limit),
// stopping when ctx ends; ErrTooLarge when r has more. Its buffer is fixed, so a
// stream of any size costs the same memory.
func CopyLimited(ctx context.Context, w io.Writer, r io.Reader, limit int64) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("store: blob stream: %w", err)
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if limit >= 0 && n+int64(m) > limit {
				return n, fmt.Errorf("store: blob stream over %d bytes: %w", limit, ErrTooLarge)
			}
			if _, err := w.Write(buf[:m]); err != nil {
				return n, fmt.Errorf("store: blob write: %w", err)
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("store: blob stream: %w", rerr)
		}
	}
}

// Open opens a blob for reading.
func (bs *Blobs) Open(_ context.Context, digest string) (io.ReadCloser, error) {
	if !IsHexDigest(digest) {
		return nil, ErrBadDigest
	}
	f, err := os.Open(bs.path(digest))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	return f, err
}

// DeleteIfOlder removes a blob only if it was last written (or put again) before
// the given time; it reports whether it did. The retention sweep uses it: a Put of
// the same content for a new record refreshes the time under the same lock, so the
// sweep never removes bytes that a record committed meanwhile references.
func (bs *Blobs) DeleteIfOlder(digest string, before time.Time) (bool, error) {
	if !IsHexDigest(digest) {
		return false, ErrBadDigest
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	info, err := os.Stat(bs.path(digest))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("store: blob: %w", err)
	}
	// The last put was at or after the stored time and before it plus the grain:
	// only if that whole span lies before the cut-off is the blob surely older.
	if info.ModTime().Add(bs.grain).After(before) {
		return false, nil
	}
	if err := os.Remove(bs.path(digest)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("store: delete blob: %w", err)
	}
	return true, nil
}

// Refresh implements Refresher: the file's time becomes now (or just after its
// last one, see later), under the lock DeleteIfOlder takes, so a deletion either
// came first (ErrNotFound) or sees the new time.
func (bs *Blobs) Refresh(_ context.Context, digest string) (time.Time, error) {
	if !IsHexDigest(digest) {
		return time.Time{}, ErrBadDigest
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	final := bs.path(digest)
	info, err := os.Stat(final)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, fmt.Errorf("store: blob %s: %w", digest, ErrNotFound)
	} else if err != nil {
		return time.Time{}, fmt.Errorf("store: blob refresh: %w", err)
	}
	at := later(info.ModTime(), time.Now())
	if err := os.Chtimes(final, at, at); errors.Is(err, os.ErrNotExist) {
		return time.Time{}, fmt.Errorf("store: blob %s: %w", digest, ErrNotFound)
	} else if err != nil {
		return time.Time{}, fmt.Errorf("store: blob refresh: %w", err)
	}
	return at, nil
}

// removeStale removes the temporary files of writes that died with their process
// (a kill during a 2 GiB upload would otherwise leave 2 GiB behind for good). Every
// write keeps its temporary file in the folder's root, so start-up lists that and
// not the blobs. Only the holder of the store's file lock may call it: a live
// process's uploads write temporary files here too. It returns how many files and
// bytes it removed.
func (bs *Blobs) removeStale() (files int, bytes int64) {
	entries, _ := os.ReadDir(bs.dir)
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if os.Remove(filepath.Join(bs.dir, e.Name())) == nil {
			files++
			bytes += info.Size()
		}
	}
	return files, bytes
}

// Delete removes a blob (the retention sweep).
func (bs *Blobs) Delete(digest string) error {
	if !IsHexDigest(digest) {
		return ErrBadDigest
	}
	if err := os.Remove(bs.path(digest)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("store: delete blob: %w", err)
	}
	return nil
}

// Walk calls fn for every blob file (temporary files of unfinished writes are not
// blobs and are left alone).
func (bs *Blobs) Walk(fn func(digest string, size int64, written time.Time) bool) error {
	subs, err := os.ReadDir(bs.dir)
	if err != nil {
		return fmt.Errorf("store: blobs: %w", err)
	}
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		files, err := os.ReadDir(filepath.Join(bs.dir, sub.Name()))
		if err != nil {
			return fmt.Errorf("store: blobs: %w", err)
		}
		for _, f := range files {
			if !IsHexDigest(f.Name()) {
				continue
			}
			info, err := f.Info()
			if err != nil {
				continue // removed meanwhile
			}
			if !fn(f.Name(), info.Size(), info.ModTime()) {
				return nil
			}
		}
	}
	return nil
}

// Read returns a whole blob.
func (bs *Blobs) Read(digest string) ([]byte, error) {
	rc, err := bs.Open(context.Background(), digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// touchWhole moves the time of the blob file final forward (later) if it is
// there whole (size bytes): content that comes again is not written twice. A
// file of another size is cut (a `tar -x` of a cut backup, a disk error):
// touched, it would stay what a new record names, so it is reported (cut) to be
// written again, the rename replacing it. at is the time the file has now
// (whole) or is to get (else). The caller holds bs.mu.
func touchWhole(final string, size int64, now time.Time) (whole, cut bool, at time.Time, err error) {
	info, err := os.Stat(final)
	if err != nil {
		return false, false, now, nil
	}
	at = later(info.ModTime(), now)
	if info.Size() != size {
		return false, true, at, nil
	}
	if err := os.Chtimes(final, at, at); err != nil {
		return false, false, at, fmt.Errorf("store: blob touch: %w", err)
	}
	return true, false, at, nil
}

// later is the time a put or refresh gives a blob whose time is last: now, or
// just after last when the clock does not read later. A blob's time is what
// DiscardNew takes for "nobody put this content since": with the wall clock
// alone, a put after an NTP step back gave the blob an earlier time than the put
// before it, and that earlier request's DiscardNew then removed the bytes the
// later one had been acknowledged with. (Where the file system keeps whole
// seconds the nanosecond is lost, but DiscardNew removes nothing there: grain.)
func later(last, now time.Time) time.Time {
	if now.After(last) {
		return now
	}
	return last.Add(time.Nanosecond)
}

// mkSub makes a blob's subfolder (the digest's first two hex digits) and, the
// first time this process uses it, makes its entry in the blob folder durable:
// the blob's own rename is fsynced in the subfolder, but a subfolder created
// and not fsynced in its parent could be gone after a power cut, with the
// acknowledged blob in it. At most 256 such fsyncs per process.
func (bs *Blobs) mkSub(sub string) error {
	if _, ok := bs.subs.Load(sub); ok {
		return nil
	}
	if err := os.MkdirAll(sub, 0o750); err != nil {
		return fmt.Errorf("store: blob: %w", err)
	}
	if err := syncDir(bs.dir); err != nil {
		return err
	}
	bs.subs.Store(sub, true)
	return nil
}

func (bs *Blobs) path(digest string) string {
	return filepath.Join(bs.dir, digest[:2], digest)
}

// IsHexDigest reports whether s names a blob: a lower-case hex SHA-256.
func IsHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// SyncDir fsyncs a folder, so that the entries created, renamed or removed in
// it are durable (after a rename into place, before saying it is done).
func SyncDir(dir string) error { return syncDir(dir) }

// fileSynced, if set (by a test), learns every blob file syncFile fsyncs, just
// before the fsync: a blob is acknowledged only after its bytes were fsynced,
// and nothing but such a hook tells a test that they were (a power cut would).
var fileSynced func(f *os.File)

// syncFile fsyncs a blob's temporary file before it is renamed into place.
func syncFile(f *os.File) error {
	if fileSynced != nil {
		fileSynced(f)
	}
	return f.Sync()
}

// dirSynced, if set (by a test), learns every folder syncDir fsyncs.
var dirSynced func(dir string)

func syncDir(dir string) error {
	if dirSynced != nil {
		dirSynced(dir)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: sync dir: %w", err)
	}
	return nil
}
