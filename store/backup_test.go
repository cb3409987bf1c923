package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// unpackBackup writes a backup's tar stream into dir as `tar -x` would, refusing
// names that leave dir; it fails on a stream without its end-of-archive marker.
func unpackBackup(t *testing.T, stream []byte, dir string) []string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(stream))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("backup stream: %v", err)
		}
		if !filepath.IsLocal(h.Name) || h.Typeflag != tar.TypeReg {
			t.Fatalf("backup entry %q (type %c)", h.Name, h.Typeflag)
		}
		p := filepath.Join(dir, h.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("backup entry %s: %v", h.Name, err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// TestBackupWhileWriting: a backup taken while writers commit restores into a store
// that holds every submission committed before the backup began, its receipt, its
// inline package and its attachment file, byte for byte; writes go on during the
// backup and nothing of the running store changes.
func TestBackupWhileWriting(t *testing.T) {
	db := openCommitTest(t, 0, 0)
	ctx := context.Background()
	big := bytes.Repeat([]byte("Bauplan "), InlineMax/4) // over InlineMax: a blob file
	bigDigest, err := db.Blobs().Put(big)
	if err != nil {
		t.Fatal(err)
	}
	create := func(i int) (string, []byte, []byte) {
		id := fmt.Sprintf("01900000-0000-7000-8000-%012d", i)
		pkg := []byte(fmt.Sprintf("<Antragspaket n=\"%d\">%s</Antragspaket>", i, bytes.Repeat([]byte("x"), 3000)))
		receipt := []byte(fmt.Sprintf("<Eingangsbestaetigung>%d</Eingangsbestaetigung>", i))
		s := &submission.Submission{ID: id, Sender: "amt24", MessageID: "m" + id, State: submission.StateQueued, PackageSHA256: digestOf(pkg),
			Attachments: []submission.Attachment{{ID: "a", SHA256: bigDigest, Size: int64(len(big))}}}
		if _, _, _, err := db.CreateWithBlobs(ctx, s, []submission.Event{{Type: submission.EventReceived}}, "eingang", receipt, []Blob{{SHA256: digestOf(pkg), Data: pkg}}); err != nil {
			t.Fatal(err)
		}
		return id, pkg, receipt
	}
	type sub struct{ pkg, receipt []byte }
	before := map[string]sub{}
	for i := 0; i < 50; i++ {
		id, pkg, receipt := create(i)
		before[id] = sub{pkg, receipt}
	}

	// Writers go on during the backup.
	var wg sync.WaitGroup
	var stop atomic.Bool
	var during atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				create(1000 + w*100000 + i)
				during.Add(1)
			}
		}()
	}
	var stream bytes.Buffer
	st, err := db.Backup(ctx, &stream)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 1 || st.BlobBytes != int64(len(big)) || st.DBBytes == 0 {
		t.Fatalf("backup stats %+v: want the database and one blob file of %d bytes", st, len(big))
	}
	t.Logf("backup: %+v, %d submissions written meanwhile", st, during.Load())

	names := unpackBackup(t, stream.Bytes(), t.TempDir())
	if len(names) != 3 || names[0] != BackupDBName || names[2] != BackupManifest {
		t.Fatalf("backup entries %v", names)
	}
	dir := filepath.Join(t.TempDir(), "data")
	rst, err := Restore(ctx, bytes.NewReader(stream.Bytes()), dir, nil)
	if err != nil || rst != st {
		t.Fatalf("restore: %+v, %v; want %+v", rst, err, st)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("restore left %v", left)
	}
	restored, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	for id, want := range before {
		s, err := restored.Get(id)
		if err != nil {
			t.Fatalf("restored %s: %v", id, err)
		}
		if got, err := restored.Receipt(id, "eingang"); err != nil || !bytes.Equal(got, want.receipt) {
			t.Fatalf("restored receipt of %s: %q %v", id, got, err)
		}
		for digest, content := range map[string][]byte{s.PackageSHA256: want.pkg, bigDigest: big} {
			rc, err := restored.Blobs().Open(ctx, digest)
			if err != nil {
				t.Fatalf("restored blob %s: %v", digest[:12], err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, content) {
				t.Fatalf("restored blob %s differs", digest[:12])
			}
		}
	}
	// The running store lost nothing either.
	if _, err := db.Get("01900000-0000-7000-8000-000000000049"); err != nil {
		t.Fatal(err)
	}
}

// TestBackupRefusesDamagedBlob: a blob file whose bytes no longer match its name
// fails the backup, and the stream it leaves has no manifest, so it is never taken
// for a whole backup.
func TestBackupRefusesDamagedBlob(t *testing.T) {
	db := openCommitTest(t, 0, 0)
	big := bytes.Repeat([]byte("Bauplan "), InlineMax/4)
	d, err := db.Blobs().Put(big)
	if err != nil {
		t.Fatal(err)
	}
	p := db.blobs.path(d)
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte{}, big...)
	damaged[len(damaged)/2] ^= 0xff
	if err := os.WriteFile(p, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if _, err := db.Backup(context.Background(), &stream); !errors.Is(err, ErrBlobDamaged) {
		t.Fatalf("backup of a damaged blob: %v, want ErrBlobDamaged", err)
	}
	tr := tar.NewReader(&stream)
	for {
		h, err := tr.Next()
		if err != nil {
			return
		}
		if h.Name == BackupManifest {
			t.Fatal("the cut backup has a manifest")
		}
	}
}

// TestOpenRemovesStaleBackupCopies: the temporary copy of a backup that died with
// its process is removed when the store is opened again, and nothing else is.
func TestOpenRemovesStaleBackupCopies(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	stale := filepath.Join(dir, ".backup-123.db")
	other := filepath.Join(dir, "notes.txt")
	for _, f := range []string{stale, other} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale backup copy: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("another file went: %v", err)
	}
}

// TestRestoreRefusesWhatIsNotAWholeBackup: a stream cut anywhere before its
// manifest, a blob whose bytes changed, an entry outside the store's layout and a
// folder that already holds a store are refused, and the folder is left without a
// store (a cut restore can be run again).
func TestRestoreRefusesWhatIsNotAWholeBackup(t *testing.T) {
	db := openCommitTest(t, 0, 0)
	ctx := context.Background()
	big := bytes.Repeat([]byte("Bauplan "), InlineMax/4)
	d, err := db.Blobs().Put(big)
	if err != nil {
		t.Fatal(err)
	}
	s := &submission.Submission{ID: "01900000-0000-7000-8000-000000000001", Sender: "amt24", MessageID: "m1", State: submission.StateQueued}
	if _, _, _, err := db.Create(ctx, s, nil, "eingang", []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	var whole bytes.Buffer
	if _, err := db.Backup(ctx, &whole); err != nil {
		t.Fatal(err)
	}
	noStore := func(dir string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dir, BackupDBName)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused restore left a database: %v", err)
		}
	}
	// Cut at every 4 KiB and just before the manifest.
	manifestAt := bytes.Index(whole.Bytes(), []byte(BackupManifest))
	for _, cut := range append([]int{manifestAt - 1, manifestAt + 600}, func() (c []int) {
		for i := 0; i < manifestAt; i += 4096 {
			c = append(c, i)
		}
		return c
	}()...) {
		dir := t.TempDir()
		if _, err := Restore(ctx, bytes.NewReader(whole.Bytes()[:cut]), dir, nil); !errors.Is(err, ErrBackupIncomplete) {
			t.Fatalf("cut at %d of %d: %v, want ErrBackupIncomplete", cut, whole.Len(), err)
		}
		noStore(dir)
		if _, err := CheckBackup(ctx, bytes.NewReader(whole.Bytes()[:cut]), nil); !errors.Is(err, ErrBackupIncomplete) {
			t.Fatalf("check, cut at %d of %d: %v, want ErrBackupIncomplete", cut, whole.Len(), err)
		}
	}
	if st, err := CheckBackup(ctx, bytes.NewReader(whole.Bytes()), nil); err != nil || !st.Complete || st.Blobs != 1 {
		t.Fatalf("check of the whole backup: %+v, %v", st, err)
	}
	damaged := bytes.Clone(whole.Bytes())
	i := bytes.Index(damaged, []byte("Bauplan Bauplan"))
	damaged[i] ^= 0x20
	dir := t.TempDir()
	if _, err := Restore(ctx, bytes.NewReader(damaged), dir, nil); !errors.Is(err, ErrBlobDamaged) {
		t.Fatalf("a changed blob: %v, want ErrBlobDamaged", err)
	}
	if _, err := CheckBackup(ctx, bytes.NewReader(damaged), nil); !errors.Is(err, ErrBlobDamaged) {
		t.Fatalf("check of a changed blob: %v, want ErrBlobDamaged", err)
	}
	noStore(dir)

	var crafted bytes.Buffer
	tw := tar.NewWriter(&crafted)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "blobs/../../" + d, Size: 1})
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	dir = t.TempDir()
	if _, err := Restore(ctx, &crafted, dir, nil); !errors.Is(err, ErrBackupIncomplete) {
		t.Fatalf("a crafted entry: %v", err)
	}
	noStore(dir)

	dir = t.TempDir()
	if _, err := Restore(ctx, bytes.NewReader(whole.Bytes()), dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, bytes.NewReader(whole.Bytes()), dir, nil); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore over a store: %v, want ErrNotEmpty", err)
	}
}

// TestRestoreRefusesADamagedDatabase: a backup whose database bytes changed on the
// way (a flipped bit on tape, a truncated copy padded again) is refused by Restore
// and CheckBackup like a damaged blob is, before anything is in place: the manifest
// carries the database's SHA-256.
func TestRestoreRefusesADamagedDatabase(t *testing.T) {
	db, _ := storeOfOne(t)
	ctx := context.Background()
	var whole bytes.Buffer
	if _, err := db.Backup(ctx, &whole); err != nil {
		t.Fatal(err)
	}
	// The same archive, entry for entry, with one byte of the database changed.
	damaged := bytes.NewBuffer(editArchive(t, whole.Bytes(), func(name string, b []byte) []byte {
		if name == BackupDBName {
			b[len(b)/2] ^= 0x01
		}
		return b
	}))
	if _, err := CheckBackup(ctx, bytes.NewReader(damaged.Bytes()), nil); !errors.Is(err, ErrBackupIncomplete) {
		t.Fatalf("check of a changed database: %v, want ErrBackupIncomplete", err)
	}
	dir := t.TempDir()
	if _, err := Restore(ctx, bytes.NewReader(damaged.Bytes()), dir, nil); !errors.Is(err, ErrBackupIncomplete) {
		t.Fatalf("restore of a changed database: %v, want ErrBackupIncomplete", err)
	}
	if _, err := os.Stat(filepath.Join(dir, BackupDBName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore left a database: %v", err)
	}
	if st, err := Restore(ctx, bytes.NewReader(whole.Bytes()), t.TempDir(), nil); err != nil || st.DBSHA256 == "" {
		t.Fatalf("restore of the whole backup: %+v, %v", st, err)
	}
}

// TestBackupCopyHoldsNoSwapLock: while a backup copies the database (minutes on a
// big store), it must not hold the swap lock: a WipeFree (hourly, by the
// retention) or a compaction asking for it exclusively would otherwise wait
// behind the copy, and every operation asking after them would wait too — intake
// stopped until the copy ends. It holds the compaction lock instead, so neither
// can swap the file or zero pages of its snapshot meanwhile (the wipe runs after).
func TestBackupCopyHoldsNoSwapLock(t *testing.T) {
	db, s := storeOfOne(t)
	ctx := context.Background()
	wiped := make(chan error, 1)
	backupCopying = func() {
		if !db.sw.TryLock() {
			t.Error("the backup's copy holds the swap lock: a compaction or wipe waiting for it stops every operation")
		} else {
			db.sw.Unlock()
		}
		if db.compacting.TryLock() {
			db.compacting.Unlock()
			t.Error("a compaction or wipe could run during the backup's copy")
		}
		go func() { _, err := db.WipeFree(); wiped <- err }()
	}
	defer func() { backupCopying = nil }()
	var out bytes.Buffer
	if _, err := db.Backup(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if err := <-wiped; err != nil {
		t.Fatal(err)
	}
	back := restoreOpen(t, out.Bytes(), t.TempDir())
	if _, err := back.Get(s.ID); err != nil {
		t.Fatalf("restored: %v", err)
	}
}

// TestRestoreNeverReplacesAStore: a store that appears in the folder while a
// restore unpacks (a second restore into the same folder, a gateway started too
// early) is not replaced by the restored database: the check at the start is not
// the last word, the database is put in place only where none is.
func TestRestoreNeverReplacesAStore(t *testing.T) {
	db, _ := storeOfOne(t)
	ctx := context.Background()
	var whole bytes.Buffer
	if _, err := db.Backup(ctx, &whole); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	other := []byte("the database of another store, written meanwhile")
	appeared := false
	_, err := Restore(ctx, bytes.NewReader(whole.Bytes()), dir, func(st BackupStats) {
		if !appeared {
			appeared = true
			if err := os.WriteFile(filepath.Join(dir, BackupDBName), other, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	})
	if !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore while a store appeared: %v, want ErrNotEmpty", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, BackupDBName)); err != nil || !bytes.Equal(b, other) {
		t.Fatalf("the store that appeared was replaced: %q, %v", b, err)
	}
}

// TestOpenRemovesACompactionsLeftover: a compaction killed before its rename
// leaves amtsbote.db.compact, up to the size of the store; the next open (which
// holds the file lock, so no compaction of another process runs) removes it
// rather than leaving it to a compaction that may not come for months.
func TestOpenRemovesACompactionsLeftover(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	left := filepath.Join(dir, FileName+".compact")
	if err := os.WriteFile(left, bytes.Repeat([]byte{1}, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a killed compaction's file is still there: %v", err)
	}
}

// storeOfOne is a fresh store holding one queued submission.
func storeOfOne(t *testing.T) (*DB, *submission.Submission) {
	t.Helper()
	db := openCommitTest(t, 0, 0)
	s := &submission.Submission{ID: "01900000-0000-7000-8000-000000000001", Sender: "amt24", MessageID: "m1", State: submission.StateQueued}
	if _, _, _, err := db.Create(context.Background(), s, nil, "eingang", []byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	return db, s
}

// firstWrite calls fn once, before the first write reaches w: for a backup's
// stream, after its copy of the database and before its walk of the blobs.
type firstWrite struct {
	w    io.Writer
	once sync.Once
	fn   func()
}

func (f *firstWrite) Write(p []byte) (int, error) {
	f.once.Do(f.fn)
	return f.w.Write(p)
}

// TestRestoreMarksCasesErasedDuringBackup: a case erased (or its bytes removed by
// the retention) between a backup's copy of the database and its walk of the
// blobs loses its blob file before the walk reaches it. The backup used to be
// "complete" without it, and its restore held the case as delivered with bytes
// that could not be read; now the manifest lists the blob, and the restore marks
// the case bytes removed, with an event that says why, and nothing else. A
// manifest without the list (a build before) restores as before.
func TestRestoreMarksCasesErasedDuringBackup(t *testing.T) {
	db := openCommitTest(t, 0, 0)
	ctx := context.Background()
	create := func(id string, content []byte) string {
		t.Helper()
		d, err := db.Blobs().Put(content)
		if err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour) // older than an erasure's grace
		if err := os.Chtimes(db.Files().path(d), old, old); err != nil {
			t.Fatalf("%s: not a blob file: %v", id, err)
		}
		pkg := []byte("<Antragspaket id=\"" + id + "\"/>")
		s := &submission.Submission{ID: id, Sender: "amt24", MessageID: "m" + id, State: submission.StateDelivered, PackageSHA256: digestOf(pkg),
			Attachments: []submission.Attachment{{ID: "a", FileName: "bauplan.pdf", SHA256: d, Size: int64(len(content))}}}
		if _, _, _, err := db.CreateWithBlobs(ctx, s, []submission.Event{{Type: submission.EventReceived}}, "eingang", []byte("<r/>"), []Blob{{SHA256: digestOf(pkg), Data: pkg}}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	erased, kept := "01900000-0000-7000-8000-000000000001", "01900000-0000-7000-8000-000000000002"
	erasedBlob := create(erased, bytes.Repeat([]byte("Bauplan "), InlineMax/4))
	keptBlob := create(kept, bytes.Repeat([]byte("Lageplan "), InlineMax/4))

	var stream bytes.Buffer
	w := &firstWrite{w: &stream, fn: func() {
		// What broker.Erase does: the record loses its bytes, then its blob goes.
		if _, err := db.Update(erased, func(cur *submission.Submission) ([]submission.Event, error) {
			cur.BytesGone(time.Now())
			return []submission.Event{{Type: submission.EventBytesRemoved}}, nil
		}); err != nil {
			t.Error(err)
		}
		if gone, err := db.Blobs().(CondDeleter).DeleteIfOlder(erasedBlob, time.Now().Add(-HoldGrace)); !gone || err != nil {
			t.Errorf("the erasure kept its blob: %v %v", gone, err)
		}
	}}
	st, err := db.Backup(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 1 {
		t.Fatalf("backup of %d blob files, want 1: the erased one was deleted before the walk", st.Blobs)
	}

	dir := filepath.Join(t.TempDir(), "data")
	rst, err := Restore(ctx, bytes.NewReader(stream.Bytes()), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rst.BytesRemoved != 1 {
		t.Errorf("restore marked %d records, want 1", rst.BytesRemoved)
	}
	restored, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := restored.Get(erased)
	if err != nil {
		t.Fatal(err)
	}
	if s.BytesRemovedAt == nil || s.Attachments[0].FileName != "" {
		t.Fatalf("restored case %s names attachment %s, which the backup lacks, as there (bytes removed %v, file name %q)",
			erased, erasedBlob[:12], s.BytesRemovedAt, s.Attachments[0].FileName)
	}
	evs, err := restored.Events(erased)
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Type != submission.EventBytesRemoved || last.Detail != BackupBytesRemovedDetail {
		t.Fatalf("last event of the marked case: %+v", last)
	}
	if s, err := restored.Get(kept); err != nil || s.BytesRemovedAt != nil {
		t.Fatalf("the case whose bytes the backup holds: %+v %v", s, err)
	}
	rc, err := restored.Blobs().Open(ctx, keptBlob)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	restored.Close()

	// The same backup with a manifest as builds before wrote it: restored as then.
	oldDir := filepath.Join(t.TempDir(), "data")
	rst, err = Restore(ctx, bytes.NewReader(withoutVanished(t, stream.Bytes())), oldDir, nil)
	if err != nil || rst.BytesRemoved != 0 {
		t.Fatalf("restore of an older manifest: %+v %v", rst, err)
	}
	restored, err = Open(oldDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if s, err := restored.Get(erased); err != nil || s.BytesRemovedAt != nil {
		t.Fatalf("an older manifest's restore changed the case: %+v %v", s, err)
	}
}

// withoutVanished returns the backup stream with its manifest as builds before
// 2026-12-05 wrote it: without the list of vanished blobs, which it must hold.
func withoutVanished(t *testing.T, stream []byte) []byte {
	t.Helper()
	return editArchive(t, stream, func(name string, b []byte) []byte {
		if name != BackupManifest {
			return b
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["vanished"]; !ok {
			t.Fatalf("the manifest lists no vanished blob: %s", b)
		}
		delete(m, "vanished")
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// editArchive copies a backup stream entry for entry, each entry's content as
// edit returns it (its header's size follows).
func editArchive(t *testing.T, stream []byte, edit func(name string, b []byte) []byte) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(stream))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		b = edit(h.Name, b)
		h.Size = int64(len(b))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestFirstStartAfterRestoreLogsTheBackupsTime: what offices did after a backup
// was taken is not in a store restored from it, and the backup's time, which says
// since when, was printed only by the restore. The restore leaves a note that the
// gateway's first start logs, with that time, once.
func TestFirstStartAfterRestoreLogsTheBackupsTime(t *testing.T) {
	db := openCommitTest(t, 0, 0)
	ctx := context.Background()
	var stream bytes.Buffer
	st, err := db.Backup(ctx, &stream)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := Restore(ctx, bytes.NewReader(stream.Bytes()), dir, nil); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	if err := LogRestore(dir, log); err != nil {
		t.Fatal(err)
	}
	var line struct {
		Level string    `json:"level"`
		Msg   string    `json:"msg"`
		Taken time.Time `json:"backup_taken"`
	}
	if err := json.Unmarshal(logged.Bytes(), &line); err != nil || line.Level != "WARN" || !line.Taken.Equal(st.At) {
		t.Fatalf("first start after the restore logged %q (%v), want a warning with the backup's time %s", logged.String(), err, st.At)
	}
	// Both halves of what the backup lacks: the offices' work since, and the
	// packages accepted since, which only their portals can send again.
	for _, want := range []string{"ask their offices", "packages accepted after the backup", "portals"} {
		if !strings.Contains(line.Msg, want) {
			t.Errorf("the warning does not say %q: %s", want, line.Msg)
		}
	}
	logged.Reset()
	if err := LogRestore(dir, log); err != nil || logged.Len() != 0 {
		t.Fatalf("the second start logged the restore again: %q %v", logged.String(), err)
	}
}

// erasedInline is a store whose one case had an inline package with marker
// in it and was erased as broker.Erase does up to its wipe of the free pages:
// the record says the bytes are gone and the blob is deleted, and the pages
// that held them are free but not overwritten yet.
func erasedInline(t *testing.T) (db *DB, id string, marker []byte) {
	t.Helper()
	db, s := storeOfOne(t)
	b := make([]byte, 6000)
	_, _ = rand.Read(b)
	marker = []byte("erased-applicant-package;")
	d, err := db.Blobs().Put(append(marker, b...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Update(s.ID, func(cur *submission.Submission) ([]submission.Event, error) {
		cur.PackageSHA256, cur.State = d, submission.StateDelivered
		return []submission.Event{{Type: submission.EventDelivered}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(filepath.Join(db.dir, FileName)); !bytes.Contains(raw, marker) {
		t.Fatal("the package is not inline in the file: the test proves nothing")
	}
	if _, err := db.UpdateRedacting(s.ID, func(cur *submission.Submission) ([]submission.Event, error) {
		cur.BytesGone(time.Now().UTC())
		return []submission.Event{{Type: submission.EventBytesRemoved}}, nil
	}, submission.DropOutsideText); err != nil {
		t.Fatal(err)
	}
	if err := db.Blobs().Delete(d); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(filepath.Join(db.dir, FileName)); !bytes.Contains(raw, marker) {
		t.Fatal("the erased package is not in the free pages: the test proves nothing")
	}
	return db, s.ID, marker
}

// TestBackupLeavesNoErasedBytesInFreePages: a backup whose copy of the
// database falls between an erasure's commit and its wipe of the free pages
// (the erasure scans every record in between, the retention sweeps and maybe
// compacts: minutes) copied those pages as they were — tx.WriteTo copies free
// pages too — with the erased case's inline package in them, into an archive
// kept for months. The copy's free pages are overwritten before it is sent.
func TestBackupLeavesNoErasedBytesInFreePages(t *testing.T) {
	ctx := context.Background()
	db, id, marker := erasedInline(t)
	var stream bytes.Buffer
	if _, err := db.Backup(ctx, &stream); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stream.Bytes(), marker) {
		t.Error("the backup holds the erased package in the free pages of its database")
	}
	// Still a whole backup of the store.
	restored := restoreOpen(t, stream.Bytes(), filepath.Join(t.TempDir(), "data"))
	if got, err := restored.Get(id); err != nil || got.BytesRemovedAt == nil {
		t.Fatalf("the restored case: %+v %v", got, err)
	}
}

// TestRestoreLeavesNoErasedBytesInFreePages: the archive of a build before
// TestBackupLeavesNoErasedBytesInFreePages may hold an erased case's package in
// the free pages of its database; the restored store kept them in its file for
// good (until a later erasure or retention run happened to wipe), readable with
// `strings amtsbote.db`. A restore wipes the free pages of the database it puts
// in place.
func TestRestoreLeavesNoErasedBytesInFreePages(t *testing.T) {
	ctx := context.Background()
	db, id, marker := erasedInline(t)
	raw, err := os.ReadFile(filepath.Join(db.dir, FileName)) // as tx.WriteTo copied it
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if _, err := db.Backup(ctx, &stream); err != nil {
		t.Fatal(err)
	}
	old := editArchive(t, stream.Bytes(), func(name string, b []byte) []byte {
		switch name {
		case BackupDBName:
			return raw
		case BackupManifest:
			var m backupManifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m.DBBytes, m.DBSHA256 = int64(len(raw)), digestOf(raw)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		return b
	})
	if !bytes.Contains(old, marker) {
		t.Fatal("the older build's archive does not hold the package: the test proves nothing")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := Restore(ctx, bytes.NewReader(old), dir, nil); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, FileName)); bytes.Contains(raw, marker) {
		t.Error("the restored store holds the erased package in its free pages")
	}
	restored, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if got, err := restored.Get(id); err != nil || got.BytesRemovedAt == nil {
		t.Fatalf("the restored case: %+v %v", got, err)
	}
}

// restoreOpen restores the archive into dir and opens the store there until
// the test ends.
func restoreOpen(t *testing.T, archive []byte, dir string) *DB {
	t.Helper()
	if _, err := Restore(context.Background(), bytes.NewReader(archive), dir, nil); err != nil {
		t.Fatal(err)
	}
	return openUntilEnd(t, dir)
}
