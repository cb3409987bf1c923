package store

import (
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaOf reads the schema version of the store file in dir without changing
// it, and says whether Open would upgrade the file. Open upgrades before it
// serves anything (upgradeCases), and an older build refuses the upgraded file:
// a command that only reads — `amtsbote store verify`, `store export`, `gc
// -dry-run` — asks first, so that checking a store with a new binary does not
// take away the way back to the old one.
//
// A file without a mark is "1" when it holds the old layout and "" when it holds
// nothing (Open never got to mark it). A version this build cannot read is
// returned with upgrade false: Open refuses it and says so.
func SchemaOf(dir string) (version string, upgrade bool, err error) {
	path := filepath.Join(dir, FileName)
	// Read-only: a shared lock, no write to the file; the timeout is Open's, for
	// a gateway that holds the file.
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return "", false, fmt.Errorf("store: read the schema of %s: %w", path, lockErr(err))
	}
	defer b.Close()
	err = b.View(func(tx *bolt.Tx) error {
		var v []byte
		if meta := tx.Bucket(bucketMeta); meta != nil {
			v = meta.Get([]byte("schema"))
		}
		old := tx.Bucket(bucketSubmissions) != nil || tx.Bucket(bucketReceipts) != nil
		switch {
		case v != nil:
			version = string(v)
		case old:
			version = "1"
		}
		// The old buckets also after the mark: an upgrade cut off by a kill
		// (upgradeCases marks the file first), which Open finishes.
		upgrade = schemaRefused(v) == nil && (old || version != "" && version != schemaVersion)
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("store: read the schema of %s: %w", path, err)
	}
	return version, upgrade, nil
}
