package jsstore

import (
	"errors"
	"time"
)

// errRetentionPending: Delete and the blob sweep of the replicated store are being
// written (see the retention issue); until then retention runs only on bbolt.
var errRetentionPending = errors.New("jsstore: retention not implemented yet")

// Delete implements store.Store.
func (s *Store) Delete(id string) error { return errRetentionPending }

// Delete implements store.BlobStore.
func (b *Blobs) Delete(digest string) error { return errRetentionPending }

// Walk implements store.BlobStore.
func (b *Blobs) Walk(fn func(digest string, size int64, written time.Time) bool) error {
	return errRetentionPending
}
