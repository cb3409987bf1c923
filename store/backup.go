package store

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Online backup.
//
// A single node's durable truth is its data folder's amtsbote.db and blobs/; the
// JetStream queue in the same folder is derived from the outbox and published
// again at start. Backup writes both, consistently, while the gateway runs, as a
// tar stream laid out like the data folder, so a restore is: stop, unpack into an
// empty data folder, start.
//
// Consistency: the bbolt file is copied as of one read transaction. Blobs are
// written before the record that names them is committed (intake, replies) and are
// never changed, so every blob a record of the copy names exists when the copy's
// transaction begins; they are copied after it. Retention deletes only blobs no
// record needs, so a blob the copy needs can be gone only if its record was
// deleted for good after the copy began (then the restored record names bytes
// that its retention period had ended anyway); blobs put after the copy began
// are included or not, and are unreferenced either way.
//
// The bbolt copy goes to a temporary file next to the store first, and the
// transaction ends before the stream is sent: a read transaction holds bbolt's
// mmap lock, and a commit that must grow the file would wait for a slow client.
// That takes free space the size of amtsbote.db for a moment. Every blob file is
// hashed as it is copied; one whose bytes do not match its name fails the backup
// instead of passing damage on silently.

// BackupStats says what a backup carried; it is also the backup's last entry
// (BackupManifest), written only when everything before it was.
type BackupStats struct {
	At        time.Time `json:"at"`        // when the database was copied
	DBBytes   int64     `json:"dbBytes"`   // the bbolt file
	Blobs     int       `json:"blobs"`     // blob files
	BlobBytes int64     `json:"blobBytes"` // their bytes
	Complete  bool      `json:"complete"`  // true in every manifest
}

// ErrBlobDamaged is returned by Backup when a blob file's content does not match its
// digest.
var ErrBlobDamaged = errors.New("store: blob file does not match its digest")

// BackupDBName and BackupBlobDir are the names in a backup's tar stream, those of
// the data folder; BackupManifest is its last entry, the BackupStats as JSON.
const (
	BackupDBName   = "amtsbote.db"
	BackupBlobDir  = "blobs"
	BackupManifest = "amtsbote-backup.json"
)

// Backup writes the store to w as a tar stream (see above). The manifest comes
// last and only after everything else was written: a stream cut by an error (or a
// dropped connection) lacks it, and tar readers accept a stream cut between two
// entries without complaint, so the manifest is how a backup is known whole.
func (db *DB) Backup(ctx context.Context, w io.Writer) (BackupStats, error) {
	var st BackupStats
	tmp, err := os.CreateTemp(db.dir, backupTempPattern)
	if err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	st.At = time.Now().UTC()
	err = db.view(func(tx *bolt.Tx) error {
		n, err := tx.WriteTo(tmp)
		st.DBBytes = n
		return err
	})
	if err != nil {
		return st, fmt.Errorf("store: backup: copy the database: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	tw := tar.NewWriter(w)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: BackupDBName, Size: st.DBBytes, Mode: 0o600, ModTime: st.At, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	if _, err := CopyLimited(ctx, tw, tmp, st.DBBytes); err != nil {
		return st, fmt.Errorf("store: backup: send the database: %w", err)
	}

	var digests []string
	if err := db.blobs.Walk(func(d string, _ int64, _ time.Time) bool {
		digests = append(digests, d)
		return ctx.Err() == nil
	}); err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	for _, d := range digests {
		n, err := db.blobs.backupOne(ctx, tw, d)
		if errors.Is(err, fs.ErrNotExist) {
			continue // swept meanwhile: unreferenced (see above)
		}
		if err != nil {
			return st, fmt.Errorf("store: backup: blob %s: %w", d, err)
		}
		st.Blobs++
		st.BlobBytes += n
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	st.Complete = true
	manifest, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return st, err
	}
	manifest = append(manifest, '\n')
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: BackupManifest, Size: int64(len(manifest)), Mode: 0o600, ModTime: time.Now(), Format: tar.FormatPAX}); err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	if _, err := tw.Write(manifest); err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	if err := tw.Close(); err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	return st, nil
}

// backupTempPattern names a backup's temporary copy of the database.
const backupTempPattern = ".backup-*.db"

// removeStaleBackups removes temporary copies a process that died during a backup
// left in dir; Open calls it once it holds the file lock, so none is in use.
func removeStaleBackups(dir string) {
	stale, _ := filepath.Glob(filepath.Join(dir, backupTempPattern))
	for _, f := range stale {
		_ = os.Remove(f)
	}
}

// backupOne writes one blob file into tw, checking its digest on the way.
func (bs *Blobs) backupOne(ctx context.Context, tw *tar.Writer, digest string) (int64, error) {
	f, err := os.Open(bs.path(digest))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: path.Join(BackupBlobDir, digest[:2], digest), Size: info.Size(),
		Mode: 0o600, ModTime: info.ModTime(), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return 0, err
	}
	h := sha256.New()
	n, err := CopyLimited(ctx, io.MultiWriter(tw, h), f, info.Size())
	if err != nil {
		return n, err
	}
	if n != info.Size() {
		return n, fmt.Errorf("%w: %d bytes read of %d", ErrBlobDamaged, n, info.Size())
	}
	if hex.EncodeToString(h.Sum(nil)) != digest {
		return n, ErrBlobDamaged
	}
	return n, nil
}
