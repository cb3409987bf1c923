package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestBlobBytesAreFsyncedBeforeThePut: a 201 promises that the package is on
// disk, and a blob file is the package's or an attachment's only copy. Put and
// PutStream fsync the complete file before they rename it into place and
// return; a put that skipped it left, after a power cut, a file of the right
// name with nothing (or half) in it, for a record that was committed. The hook
// sees what the file holds at its fsync: the blob's whole content.
func TestBlobBytesAreFsyncedBeforeThePut(t *testing.T) {
	var mu sync.Mutex
	synced := map[string]bool{} // digests of what the fsynced files held
	fileSynced = func(f *os.File) {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Errorf("read the file being fsynced: %v", err)
			return
		}
		sum := sha256.Sum256(b)
		mu.Lock()
		synced[hex.EncodeToString(sum[:])] = true
		mu.Unlock()
	}
	t.Cleanup(func() { fileSynced = nil })
	bs, err := OpenBlobs(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	put, err := bs.Put([]byte("a package put whole"))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := bs.PutStream(context.Background(), bytes.NewReader([]byte("an attachment streamed")), 1<<20, "")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for what, d := range map[string]string{"Put": put, "PutStream": sp.Digest} {
		if !synced[d] {
			t.Errorf("%s returned %s before a file with its bytes was fsynced", what, d)
		}
	}
}
