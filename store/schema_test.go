package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestSchemaOfChangesNothing: SchemaOf names a schema-3 file's version and that
// Open would upgrade it, and leaves the file byte for byte as it was (the read-only
// commands ask it so that they do not upgrade a store for good); after Open it
// reads the current version and nothing to do.
func TestSchemaOfChangesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	writeOldLayout(t, path, []string{"20260101-aaaa", "20260101-bbbb"})
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, up, err := SchemaOf(dir); err != nil || v != "3" || !up {
		t.Fatalf("old file: %q, upgrade %v, %v", v, up, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("SchemaOf changed the file")
	}

	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if v, up, err := SchemaOf(dir); err != nil || v != schemaVersion || up {
		t.Fatalf("after Open: %q, upgrade %v, %v", v, up, err)
	}

	if _, _, err := SchemaOf(t.TempDir()); err == nil {
		t.Fatal("no error for a folder without a store")
	}
}
