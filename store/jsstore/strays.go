package jsstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/amtsbote/amtsbote/store"
)

// StrayEntries: the cluster's half of "verify and reindex agree"
// (docs/architecture.md). `amtsbote store verify` (migrate.Check) names the
// keys of the indexes keyed by a name — an office's list, the Nachreichungen
// by their case, the replies by message id, the idempotency keys — that no
// record accounts for, which Reindex removes: a store verify passes leaves
// Reindex nothing to do, on a cluster as on a single node.
//
// It finds them as Reindex does, with Reindex's own code: a listing of those
// keys and a scan of the records (account), the listed keys no record wanted
// (unaccounted), and for each such key its case's repair decided as Reindex
// would decide it then (decideCase), without writing: a key is named when that
// repair would remove it. The second look is what keeps a check beside serving
// gateways honest: the listing and the scan are older than the moment a key is
// named, and a record created or changed since (a case moved to the office
// whose list holds the key, a reply with the message id, a case created under
// the id the key names) wants it now — its repair would keep it, and so it is
// not named. A key written after the listing is not in it and never looked at.
//
// Cost, beside the gateways: one listing of the four named indexes (headers
// only), one scan of every record, one more listing of the same keys, and for
// each candidate a read of its case and the key (a sound store has none). In
// memory only the hashes of the listed keys (accounting: 37 to 56 bytes a key;
// a million cases hold 2 to 3 million such keys, some 110 MB) and the
// candidates — fewer keys than Reindex's listing, which holds the waiting sets
// too.

// strayIndexes are the named indexes StrayEntries lists, by index number (the
// waiting sets are keyed by the id alone, and migrate.Check compares them
// with the records itself).
var strayIndexes = []int{ixByOffice, ixReplies, ixFollowUps, ixIdempotency}

var _ store.StrayLister = (*Store)(nil)

// StrayEntries returns the keys of the indexes keyed by a name that no record
// accounts for and that Reindex would remove, without changing anything: what
// store.DB.StrayEntries returns for a bbolt file, in the same shape (Name is
// empty for a reply and an idempotency key, which hold what they are keyed by
// only hashed).
func (s *Store) StrayEntries(ctx context.Context) ([]store.StrayEntry, error) {
	all := s.indexFilters()
	filters := make([]string, 0, len(strayIndexes))
	for _, ix := range strayIndexes {
		filters = append(filters, all[ix])
	}
	var progress store.ReindexProgress
	a, err := s.account(ctx, filters, false, &progress, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("jsstore: stray entries: %w", err)
	}
	if s.afterStrayScan != nil {
		s.afterStrayScan()
	}
	candidates, err := s.unaccounted(ctx, a, filters, &progress)
	if err != nil {
		return nil, fmt.Errorf("jsstore: stray entries: %w", err)
	}
	var out []store.StrayEntry
	for _, c := range candidates {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, err := s.decideCase(ctx, c.id, []indexKey{c.key}, true, &progress)
		if err != nil {
			return nil, fmt.Errorf("jsstore: stray entries: %s: %w", c.id, err)
		}
		for _, ch := range d.changes {
			if ch.subject == c.key.subject && ch.c == keyRemoved {
				out = append(out, s.strayEntry(c, d.gone))
			}
		}
	}
	return out, nil
}

// strayEntry says what the stray key c holds (the key forms of officeKey,
// followUpKey, replyKey and idemKey).
func (s *Store) strayEntry(c unaccountedKey, gone bool) store.StrayEntry {
	e := store.StrayEntry{Index: reindexNames[c.key.ix], ID: c.id, Gone: gone}
	if c.key.ix == ixByOffice || c.key.ix == ixFollowUps {
		// <prefix>.<name>.<id>: the name is the token before the id's.
		rest := c.key.subject[:strings.LastIndexByte(c.key.subject, '.')]
		if name, err := decodeKey(rest[strings.LastIndexByte(rest, '.')+1:]); err == nil {
			e.Name = name
		}
	}
	return e
}
