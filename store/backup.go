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
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/amtsbote/amtsbote/submission"
	bolt "go.etcd.io/bbolt"
)

// Online backup.
//
// A single node's durable truth is its data folder's amtsbote.db and blobs/; the
// JetStream queue in the same folder is derived from the outbox and published
// again at start. Backup writes both, consistently, while the gateway runs, as a
// tar stream laid out like the data folder, so a restore is: stop, unpack into an
// empty data folder (Restore, which also marks the cases erased while the backup
// ran, see below), start.
//
// Consistency: the bbolt file is copied as of one read transaction. Blobs are
// written before the record that names them is committed (intake, replies) and are
// never changed, so every blob a record of the copy names exists when the copy's
// transaction begins; they are copied after it. Blobs put after the copy began
// are included or not, and are unreferenced either way. But a blob the copy needs
// can be deleted before the walk reaches it: an erasure, the retention's
// package_bytes or unanswered remove a case's bytes (its record stays) and then
// its blob files, and the sweep removes those of records deleted for good. The
// copy's record still names the bytes as there, and a restore of such a backup
// held a case whose package could not be read (`store verify` failed on it, and
// the office got an unreadable package instead of "bytes removed"). So every
// blob file deleted while a backup runs is noted (deletionLog: from before the
// copy's transaction begins until the walk ended, through the store's deleters,
// which do not wait for it), and the manifest lists those the walk did not copy
// (backupManifest.Vanished). Restore marks each restored record that names one of
// them, and no longer has it, as bytes removed, as the store it came from did:
// with an event saying so (BackupBytesRemovedDetail), through UpdateRedacting as
// the retention does. Deletions are not held back while a backup runs instead:
// a backup of a big store takes many minutes, and an erasure must not wait.
//
// The bbolt copy goes to a temporary file next to the store first, and the
// transaction ends before the stream is sent: a read transaction holds bbolt's
// mmap lock, and a commit that must grow the file would wait for a slow client.
// That takes free space the size of amtsbote.db for a moment. The copy's free
// pages are overwritten before it is sent (wipeCopy). Every blob file is
// hashed as it is copied; one whose bytes do not match its name fails the backup
// instead of passing damage on silently.

// BackupStats says what a backup carried; it is also the backup's last entry
// (BackupManifest), written only when everything before it was.
type BackupStats struct {
	At        time.Time `json:"at"`        // when the database was copied
	DBBytes   int64     `json:"dbBytes"`   // the bbolt file
	Blobs     int       `json:"blobs"`     // blob files
	BlobBytes int64     `json:"blobBytes"` // their bytes
	// DBSHA256 is the database's SHA-256 (hex), so that a restore checks the
	// database as it checks every blob: without it a changed byte of amtsbote.db
	// passed the check and was put in place. Empty in the manifests of builds
	// before 2026-12-05, whose backups are taken without that check.
	DBSHA256 string `json:"dbSHA256,omitempty"`
	Complete bool   `json:"complete"` // true in every manifest
	// BytesRemoved, set by Restore and not part of the manifest, counts the
	// restored records it marked bytes removed: their blob files were deleted
	// while the backup ran (an erasure or the retention), so the backup lacks them.
	BytesRemoved int `json:"-"`
}

// backupManifest is a backup's last entry: its BackupStats and the blob files
// deleted while it ran that it does not hold (see above).
type backupManifest struct {
	BackupStats
	// Vanished are the digests of the blob files deleted while the backup ran
	// that its walk did not copy (it may name some it holds: a blob deleted
	// after the walk passed it). Absent in the manifests of builds before
	// 2026-12-05, whose backups restore as before.
	Vanished []string `json:"vanished,omitempty"`
}

// BackupBytesRemovedDetail is the detail of the bytes_removed event Restore
// writes for a record whose blob files were deleted while its backup ran.
const BackupBytesRemovedDetail = "bytes removed after the backup was taken (an erasure or the retention ran during it)"

// manifestMax bounds the manifest a restore reads: room for the list of a
// million vanished digests (a first sweep of a big store during a backup).
const manifestMax = 128 << 20

// deletionLog notes the blob files deleted while backups run (Backup). Every
// deletion of a blob file goes through deleting, which holds mu shared until it
// has noted what it deleted; a backup starts and ends its watch with mu held
// exclusively, so no deletion that could have kept a file from its walk goes
// unnoted, and deletions never wait for a backup (only, for a moment, for the
// start or end of one).
type deletionLog struct {
	mu      sync.RWMutex
	watches []*deletionWatch // changed under mu held exclusively
	noteMu  sync.Mutex       // guards every watch's deleted
}

// deletionWatch is one backup's view of the deletions.
type deletionWatch struct {
	deleted map[string]struct{}
}

// watch starts noting deletions for a backup.
func (l *deletionLog) watch() *deletionWatch {
	w := &deletionWatch{deleted: map[string]struct{}{}}
	l.mu.Lock()
	l.watches = append(l.watches, w)
	l.mu.Unlock()
	return w
}

// stop ends w (again: nothing) and returns the digests it noted, sorted.
func (l *deletionLog) stop(w *deletionWatch) []string {
	l.mu.Lock()
	l.watches = slices.DeleteFunc(l.watches, func(o *deletionWatch) bool { return o == w })
	l.mu.Unlock()
	l.noteMu.Lock()
	defer l.noteMu.Unlock()
	return slices.Sorted(maps.Keys(w.deleted))
}

// deleting runs del, which deletes the blob file digest and reports whether it
// did, and notes a deletion in every watch.
func (l *deletionLog) deleting(digest string, del func() (bool, error)) (bool, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	gone, err := del()
	if gone && len(l.watches) > 0 {
		l.noteMu.Lock()
		for _, w := range l.watches {
			w.deleted[digest] = struct{}{}
		}
		l.noteMu.Unlock()
	}
	return gone, err
}

// copied forgets a deletion w noted once its backup copied the blob after all
// (put again meanwhile): the list in the manifest stays short.
func (l *deletionLog) copied(w *deletionWatch, digest string) {
	l.noteMu.Lock()
	delete(w.deleted, digest)
	l.noteMu.Unlock()
}

// ErrBlobDamaged is returned by Backup when a blob file's content does not match its
// digest.
var ErrBlobDamaged = errors.New("store: blob file does not match its digest")

// BackupDBName and BackupBlobDir are the names in a backup's tar stream, those of
// the data folder; BackupManifest is its last entry, the BackupStats as JSON.
const (
	BackupDBName   = FileName
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
	// Deletions are noted from before the copy's transaction begins (see above).
	watch := db.deletions.watch()
	defer db.deletions.stop(watch)
	// The swap lock is held only to begin the read transaction, as a compaction
	// takes its snapshot: held shared for the whole copy (minutes on a big store),
	// a WipeFree or a compaction asking for it exclusively would wait behind the
	// copy, and every operation behind them — intake stopped until the copy ended.
	// The compaction lock keeps both out instead: neither may swap the file or
	// zero free pages under the copy's snapshot.
	db.compacting.Lock()
	db.sw.RLock()
	tx, err := db.bolt.Begin(false)
	db.sw.RUnlock()
	if err == nil {
		st.DBBytes, err = tx.WriteTo(tmp)
		if backupCopying != nil {
			backupCopying()
		}
		_ = tx.Rollback()
	}
	db.compacting.Unlock()
	if err != nil {
		return st, fmt.Errorf("store: backup: copy the database: %w", err)
	}
	if err := wipeCopy(tmp.Name()); err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	tw := tar.NewWriter(w)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: BackupDBName, Size: st.DBBytes, Mode: 0o600, ModTime: st.At, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	dbHash := sha256.New()
	if _, err := CopyLimited(ctx, io.MultiWriter(tw, dbHash), tmp, st.DBBytes); err != nil {
		return st, fmt.Errorf("store: backup: send the database: %w", err)
	}
	st.DBSHA256 = hex.EncodeToString(dbHash.Sum(nil))

	// Each blob is copied as the walk finds it, so the backup holds one blob
	// folder's listing at a time (a 256th of the files), not the names of all
	// of them: those grew with the store, by some 100 bytes a file, inside the
	// serving gateway.
	var copyErr error
	if err := db.blobs.Walk(func(d string, _ int64, _ time.Time) bool {
		n, err := db.blobs.backupOne(ctx, tw, d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// swept meanwhile: unreferenced (see above)
		case err != nil:
			copyErr = fmt.Errorf("store: backup: blob %s: %w", d, err)
			return false
		default:
			db.deletions.copied(watch, d)
			st.Blobs++
			st.BlobBytes += n
		}
		return ctx.Err() == nil
	}); err != nil {
		return st, fmt.Errorf("store: backup: %w", err)
	}
	if copyErr != nil {
		return st, copyErr
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	st.Complete = true
	manifest, err := json.MarshalIndent(backupManifest{BackupStats: st, Vanished: db.deletions.stop(watch)}, "", "  ")
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

// backupCopying, if set (by a test), runs while Backup copies the database.
var backupCopying func()

// backupTempPattern names a backup's temporary copy of the database.
const backupTempPattern = ".backup-*.db"

// restoreTempPattern names the folder Restore unpacks into before it moves the
// store into place.
const restoreTempPattern = ".restore-*"

// removeStaleBackups removes temporary copies a process that died during a backup,
// a restore or a compaction (compactSuffix) left in dir; Open calls it once it
// holds the file lock, so none is in use. A compaction's copy is as big as the
// store, and the next compaction, which would remove it too, may be months away.
func removeStaleBackups(dir string) {
	for _, pattern := range []string{backupTempPattern, restoreTempPattern, FileName + compactSuffix} {
		stale, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, f := range stale {
			_ = os.RemoveAll(f)
		}
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
	return CopyChecked(ctx, tw, f, info.Size(), digest, digest)
}

// ErrNotEmpty is returned by Restore when the target folder already holds a store.
var ErrNotEmpty = errors.New("store: the folder already holds a store")

// ErrBackupIncomplete is returned when a backup stream lacks its manifest (it was
// cut) or holds what a backup never holds.
var ErrBackupIncomplete = errors.New("store: not a whole backup")

// Restore unpacks a backup stream into dir, which must not hold a store yet. It
// unpacks into a temporary folder inside dir first and moves amtsbote.db and the
// blobs into place only when the stream ended with its manifest and every blob
// (and the database, when the manifest has its digest) matched its digest, so a cut or damaged backup leaves dir as it was. Entries
// other than the store's are refused (a crafted archive cannot write elsewhere).
// Before the database goes into place, the records that name a blob deleted while
// the backup ran, and missing from it, are marked bytes removed (markVanished;
// st.BytesRemoved counts them), and its free pages are overwritten (wipeCopy).
// progress, if not nil, is called after each entry.
func Restore(ctx context.Context, r io.Reader, dir string, progress func(BackupStats)) (BackupStats, error) {
	if _, err := os.Stat(filepath.Join(dir, BackupDBName)); err == nil {
		return BackupStats{}, fmt.Errorf("%w: %s", ErrNotEmpty, filepath.Join(dir, BackupDBName))
	}
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return BackupStats{}, fmt.Errorf("store: restore: %w", err)
	}
	if statErr != nil {
		// A data folder made here is an entry of its parent: durable too, or a
		// power cut after "restored" could take the whole store with it.
		if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
			return BackupStats{}, fmt.Errorf("store: restore: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(dir, restoreTempPattern)
	if err != nil {
		return BackupStats{}, fmt.Errorf("store: restore: %w", err)
	}
	defer os.RemoveAll(tmp)
	st, vanished, err := readBackup(ctx, r, func(name, digest string, size int64, r io.Reader) (int64, error) {
		return writeFile(ctx, filepath.Join(tmp, filepath.FromSlash(name)), r, size, digest)
	}, progress)
	if err != nil {
		return st, err
	}
	if st.BytesRemoved, err = markVanished(ctx, tmp, vanished); err != nil {
		return st, err
	}
	if err := wipeCopy(filepath.Join(tmp, BackupDBName)); err != nil {
		return st, fmt.Errorf("store: restore: %w", err)
	}
	// Into place: the blobs first, the database last, so that a store only ever
	// appears with everything it names.
	if err := moveTree(filepath.Join(tmp, BackupBlobDir), filepath.Join(dir, BackupBlobDir)); err != nil {
		return st, err
	}
	// A link, not a rename: a rename replaces what is there, and the check at the
	// start is minutes old by now — a store that appeared meanwhile (a second
	// restore, a gateway started too early and already answering 201) would be
	// swapped for the backup's without a word. A link fails where a file exists.
	final := filepath.Join(dir, BackupDBName)
	if err := os.Link(filepath.Join(tmp, BackupDBName), final); errors.Is(err, fs.ErrExist) {
		return st, fmt.Errorf("%w: %s (appeared during the restore)", ErrNotEmpty, final)
	} else if err != nil {
		return st, fmt.Errorf("store: restore: %w", err)
	}
	// The note for the gateway's first start (LogRestore). A restore that fails
	// here is whole all the same: the store is in place, only the note is missing.
	note, err := json.Marshal(restoreNote{BackupAt: st.At, RestoredAt: time.Now().UTC(), BytesRemoved: st.BytesRemoved})
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, RestoreNoteName), note, 0o600)
	}
	if err != nil {
		return st, fmt.Errorf("store: restore: %w", err)
	}
	return st, syncDir(dir)
}

// wipeCopy overwrites the free pages of the bbolt file name, which no store
// has open. A backup's copy of the database holds the free pages of the file as
// they were (tx.WriteTo copies them): one taken between an erasure's commit and
// its wipe (minutes: the erasure scans every record, the retention sweeps and
// compacts first) holds the erased case's package and the office's words in
// them. Backup wipes its copy, so the archive, kept for months, lacks them;
// Restore wipes what it restores, for the archives of builds before, whose
// restored store kept them, readable with `strings amtsbote.db`, until a later
// wipe.
func wipeCopy(name string) error {
	b, err := bolt.Open(name, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Base(name), err)
	}
	_, _, err = wipeFree(b, name)
	if cerr := b.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// RestoreNoteName is the file Restore leaves in the data folder for the gateway's
// first start after it (LogRestore).
const RestoreNoteName = "restored-from-backup.json"

// restoreNote is what RestoreNoteName holds.
type restoreNote struct {
	BackupAt     time.Time `json:"backupAt"`
	RestoredAt   time.Time `json:"restoredAt"`
	BytesRemoved int       `json:"bytesRemoved"`
}

// LogRestore logs, once, that the store in dir was restored from a backup and
// when that backup was taken, then removes Restore's note; without a note it does
// nothing. The gateway calls it at its start: what the offices did after the
// backup's time (decisions, fetches, replies) is gone from the store, and the
// operator asks them to send it again (docs/operations.md, "Backup and restore");
// the backup's time said since when only in the output of the restore.
func LogRestore(dir string, log *slog.Logger) error {
	name := filepath.Join(dir, RestoreNoteName)
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var n restoreNote
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("store: %s: %w", name, err)
	}
	// The packages accepted after the backup are the other half of the gap: the
	// gateway cannot name them (the store that knew them is gone), only the
	// portals can, and the line said nothing of them (a disaster-recovery drill).
	log.Warn("store restored from a backup: decisions, replies, fetches and mailbox openings made after the backup was taken are not in it; "+
		"list the open cases (amtsbote admin list -state delivered, -state handed_over) and ask their offices to send them again; "+
		"packages accepted after the backup was taken are not in it either: tell the portals its time, and they send again each one whose status now answers 404 (docs/operations.md, \"Backup and restore\")",
		"backup_taken", n.BackupAt, "restored", n.RestoredAt, "cases_marked_bytes_removed", n.BytesRemoved)
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// CheckBackup reads a backup stream to its end and checks what Restore checks (the
// manifest at the end and matching, every blob's digest and the database's) without writing anything:
// `amtsbote store backup` runs it on the stream it saves.
func CheckBackup(ctx context.Context, r io.Reader, progress func(BackupStats)) (BackupStats, error) {
	st, _, err := readBackup(ctx, r, func(name, digest string, size int64, r io.Reader) (int64, error) {
		return CopyChecked(ctx, io.Discard, r, size, digest, path.Base(name))
	}, progress)
	return st, err
}

// markVanished marks bytes removed, in the store unpacked into dir, every record
// that names a blob of vanished (its backup's manifest) that the store does not
// hold: the blob was deleted while the backup ran, because the record's bytes
// were removed meanwhile (see above). It returns how many it marked. The store is
// opened only when such a blob is missing.
func markVanished(ctx context.Context, dir string, vanished []string) (int, error) {
	missing := map[string]bool{}
	for _, d := range vanished { // digests: readBackup checked them
		if _, err := os.Stat(filepath.Join(dir, BackupBlobDir, d[:2], d)); errors.Is(err, fs.ErrNotExist) {
			missing[d] = true
		}
	}
	if len(missing) == 0 {
		return 0, nil
	}
	db, err := Open(dir, Options{})
	if err != nil {
		return 0, fmt.Errorf("store: restore: mark the cases whose bytes were removed during the backup: %w", err)
	}
	marked, err := markMissing(ctx, db, missing)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: restore: %w", cerr)
	}
	return marked, err
}

// markMissing is markVanished on the opened store db.
func markMissing(ctx context.Context, db *DB, missing map[string]bool) (int, error) {
	for d := range missing {
		// A blob kept inline in the database is there after all.
		if rc, err := db.Blobs().Open(ctx, d); err == nil {
			rc.Close()
			delete(missing, d)
		}
	}
	var ids []string
	err := db.Scan(func(s *submission.Submission) bool {
		if s.BytesRemovedAt == nil && slices.ContainsFunc(s.Digests(), func(d string) bool { return missing[d] }) {
			ids = append(ids, s.ID)
		}
		return ctx.Err() == nil
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return 0, fmt.Errorf("store: restore: %w", err)
	}
	marked := 0
	for _, id := range ids {
		var changed bool
		_, err := db.UpdateRedacting(id, func(cur *submission.Submission) ([]submission.Event, error) {
			if changed = cur.BytesRemovedAt == nil; !changed {
				return nil, nil
			}
			now := time.Now().UTC()
			cur.BytesGone(now)
			return []submission.Event{{At: now, Type: submission.EventBytesRemoved, Detail: BackupBytesRemovedDetail}}, nil
		}, submission.DropOutsideText)
		if err != nil {
			return marked, fmt.Errorf("store: restore: mark %s bytes removed: %w", id, err)
		}
		if changed {
			marked++
		}
	}
	if marked > 0 {
		// The events as they were, with the words from outside, are in free
		// pages now, as after the retention's removal: zeroed as it does.
		if _, err := db.WipeFree(); err != nil {
			return marked, fmt.Errorf("store: restore: %w", err)
		}
	}
	return marked, nil
}

// readBackup walks a backup stream, handing each file of the store to put (name
// slash-separated as in the archive; digest "" for the database), and returns its
// manifest's account of it, and the blobs the manifest lists as vanished, once
// the stream ended with the manifest and matched it.
func readBackup(ctx context.Context, r io.Reader, put func(name, digest string, size int64, r io.Reader) (int64, error), progress func(BackupStats)) (BackupStats, []string, error) {
	var st BackupStats
	tr := tar.NewReader(r)
	var manifest *backupManifest
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, nil, fmt.Errorf("%w: %w", ErrBackupIncomplete, err)
		}
		if manifest != nil {
			return st, nil, fmt.Errorf("%w: %q after the manifest", ErrBackupIncomplete, h.Name)
		}
		if h.Typeflag != tar.TypeReg || h.Size < 0 {
			return st, nil, fmt.Errorf("%w: entry %q is not a file", ErrBackupIncomplete, h.Name)
		}
		switch {
		case h.Name == BackupManifest:
			var m backupManifest
			if err := json.NewDecoder(io.LimitReader(tr, manifestMax)).Decode(&m); err != nil || !m.Complete {
				return st, nil, fmt.Errorf("%w: manifest: %v", ErrBackupIncomplete, err)
			}
			if i := slices.IndexFunc(m.Vanished, func(d string) bool { return !IsHexDigest(d) }); i >= 0 {
				return st, nil, fmt.Errorf("%w: manifest: vanished blob %q", ErrBackupIncomplete, m.Vanished[i])
			}
			manifest = &m
		case h.Name == BackupDBName:
			if st.DBBytes != 0 {
				return st, nil, fmt.Errorf("%w: two databases", ErrBackupIncomplete)
			}
			dbHash := sha256.New()
			n, err := put(h.Name, "", h.Size, io.TeeReader(tr, dbHash))
			if err != nil {
				return st, nil, err
			}
			st.DBBytes, st.DBSHA256 = n, hex.EncodeToString(dbHash.Sum(nil))
		default:
			d := path.Base(h.Name)
			if h.Name != path.Join(BackupBlobDir, d[:min(2, len(d))], d) || !IsHexDigest(d) {
				return st, nil, fmt.Errorf("%w: entry %q is not part of a store", ErrBackupIncomplete, h.Name)
			}
			n, err := put(h.Name, d, h.Size, tr)
			if err != nil {
				return st, nil, err
			}
			st.Blobs++
			st.BlobBytes += n
		}
		if progress != nil {
			progress(st)
		}
	}
	if manifest == nil {
		return st, nil, fmt.Errorf("%w: no %s at its end (the transfer was cut)", ErrBackupIncomplete, BackupManifest)
	}
	if st.DBBytes != manifest.DBBytes || st.Blobs != manifest.Blobs || st.BlobBytes != manifest.BlobBytes {
		return st, nil, fmt.Errorf("%w: holds %+v, its manifest says %+v", ErrBackupIncomplete, st, manifest.BackupStats)
	}
	if manifest.DBSHA256 != "" && st.DBSHA256 != manifest.DBSHA256 {
		return st, nil, fmt.Errorf("%w: the database's SHA-256 is %s, its manifest says %s (changed since the backup)",
			ErrBackupIncomplete, st.DBSHA256, manifest.DBSHA256)
	}
	st.At, st.Complete = manifest.At, true
	return st, manifest.Vanished, nil
}

// writeFile writes size bytes of r to a new file name, fsynced (CopyChecked).
func writeFile(ctx context.Context, name string, r io.Reader, size int64, digest string) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o750); err != nil {
		return 0, fmt.Errorf("store: restore: %w", err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("store: restore: %w", err)
	}
	defer f.Close()
	n, err := CopyChecked(ctx, f, r, size, digest, filepath.Base(name))
	if err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("store: restore: %w", err)
	}
	return n, f.Close()
}

// CopyChecked copies the size bytes of a backup entry or blob (name, for errors)
// from r to w; with a digest, they must match it; size < 0: whatever r holds.
// Backup, CheckBackup, Restore and migrate.Check all move bytes through it: a
// stream cut short is ErrBackupIncomplete, other bytes than the digest names
// ErrBlobDamaged.
func CopyChecked(ctx context.Context, w io.Writer, r io.Reader, size int64, digest, name string) (int64, error) {
	h := sha256.New()
	n, err := CopyLimited(ctx, io.MultiWriter(w, h), r, size)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return n, fmt.Errorf("%w: %s cut after %d bytes", ErrBackupIncomplete, name, n)
	case err != nil:
		return n, fmt.Errorf("store: %s: %w", name, err)
	case size >= 0 && n != size:
		return n, fmt.Errorf("%w: %s: %d of %d bytes", ErrBlobDamaged, name, n, size)
	case digest != "" && hex.EncodeToString(h.Sum(nil)) != digest:
		return n, fmt.Errorf("%w: %s", ErrBlobDamaged, digest)
	}
	return n, nil
}

// moveTree moves the blob files under from into the same places under to, which
// may exist (an empty blobs folder of a store never used).
func moveTree(from, to string) error {
	subs, err := os.ReadDir(from)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	// An empty from (the blobs folder markVanished's Open made for a backup
	// without blob files) leaves nothing to move, and to's sync below needs it.
	if err := os.MkdirAll(to, 0o750); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	for _, sub := range subs {
		dst := filepath.Join(to, sub.Name())
		if err := os.MkdirAll(dst, 0o750); err != nil {
			return fmt.Errorf("store: restore: %w", err)
		}
		files, err := os.ReadDir(filepath.Join(from, sub.Name()))
		if err != nil {
			return fmt.Errorf("store: restore: %w", err)
		}
		for _, f := range files {
			if err := os.Rename(filepath.Join(from, sub.Name(), f.Name()), filepath.Join(dst, f.Name())); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
		}
		if err := syncDir(dst); err != nil {
			return err
		}
	}
	return syncDir(to)
}
