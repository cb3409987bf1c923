package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/submission"
)

// Erasure of one case on request.
//
// The retention removes a case's bytes a fixed time after the office's answer. A
// data subject's erasure request (Art. 17 DSGVO), or an application the portal
// withdraws, cannot wait for that, and a case the office never answers is never
// reached by the retention at all. Erase does for one case what the retention does,
// at once and whatever the office decided: the package, attachment and reply bytes
// go, the record, its event log and the receipts stay (they prove what happened),
// and the removal is a bytes_removed event naming the operator. A copy waiting for
// the office outside the gateway (a case folder in its transfer folder) is
// withdrawn after that, unless the office took it (withdraw.go). What the events
// quoted from outside the gateway goes in the same transaction (removeBytes): an
// office's answer to a failed delivery ("Feld Geburtsdatum 01.02.1980 von Max
// Mustermann ungültig") is the applicant's data, and the log stays for
// retention.records — for a case without an answer, for good. The office's
// decision reason stays: it is the proof of the decision. Its blobs are deleted
// right away instead of at the next sweep, unless another case holds the same
// bytes or they are less than store.HoldGrace old (deleteUnsharedBlobs says why;
// the sweep takes those within the hour after), and the store's free pages,
// where the old events and record are, are overwritten.

// ErasedDetail is the bytes_removed event's detail of an erasure, as the portal
// reads it.
const ErasedDetail = "erased on request before the end of the retention period"

// EraseResult says what Erase did.
type EraseResult struct {
	Submission *submission.Submission
	// Already: the bytes had been removed before (by the retention or an earlier
	// erasure); nothing was changed but the blobs were looked at again.
	Already bool
	// BlobsDeleted counts the blobs of the case that were removed now; a blob
	// another case still references stays.
	BlobsDeleted int
	// BlobsLeft counts the blobs of the case that no other case references but
	// that were written or refreshed within store.HoldGrace: a request under way
	// may be about to commit a record that references them, so they are left to
	// the retention's sweep, which removes them once they are older than its grace.
	BlobsLeft int
	// Withdrawals says what the erasure did to the case's copies outside the
	// gateway that wait for the office to take them (the transfer folder's
	// case folder; withdraw.go): one per such channel the case was offered on.
	Withdrawals []ChannelWithdrawal
}

// FollowUpErasure is what EraseCase did to one of the case's Nachreichungen:
// its EraseResult, or Err, why it was not erased.
type FollowUpErasure struct {
	ID string
	EraseResult
	Err error
}

// EraseCase is Erase of the case id and then of each of its Nachreichungen
// (FollowUps, of every office), with the same actor and note: an erasure
// request for an application covers what the applicant sent for it later — a
// document sent on a Rückfrage holds the same person's data —, and an operator
// who erased the case alone left it behind unseen. The case's own refusal
// (ErrNotFound, ErrConflict) is the error, and nothing else is erased. A
// Nachreichung's refusal (one still waiting for a delivery attempt) is its
// entry's Err; asking again erases what is left (the case answers Already).
// The id of a Nachreichung erases only itself.
//
// The records go first, then the blobs of all of them in one pass: which blobs
// no other case holds takes a read of every record (minutes on a big store),
// and an erasure of each in turn read them once per Nachreichung more. A blob
// the case shares with an erased Nachreichung goes in that pass (counted for
// the case); one it shares with a refused one stays with that one's record.
func (b *Broker) EraseCase(ctx context.Context, id, actor, note string) (EraseResult, []FollowUpErasure, error) {
	res, err := b.eraseRecord(id, actor, note)
	if err != nil {
		return res, nil, err
	}
	var fus []FollowUpErasure
	var ferr error
	if res.Submission.CaseID == "" {
		var ids []string
		if ids, ferr = b.db.FollowUps(res.Submission.ID); ferr != nil {
			ferr = fmt.Errorf("broker: erase %s: its Nachreichungen: %w", id, ferr)
		}
		for _, fid := range ids {
			fr, err := b.eraseRecord(fid, actor, note)
			if errors.Is(err, ErrNotFound) {
				continue // deleted by the retention since the index was read
			}
			fus = append(fus, FollowUpErasure{ID: fid, EraseResult: fr, Err: err})
		}
	}
	done := []*EraseResult{&res}
	for i := range fus {
		if fus[i].Err == nil {
			done = append(done, &fus[i].EraseResult)
		}
	}
	// The case's blobs go even when its Nachreichungen could not be listed: its
	// record says they are gone.
	err = errors.Join(b.eraseBlobs(ctx, actor, done), ferr)
	// Then the copies outside the gateway, whatever became of the blobs: the
	// records say the bytes are gone, and the office must not get them from
	// there either. Each is bounded by the attempt timeout (withdraw.go).
	for _, r := range done {
		r.Withdrawals = b.withdrawCopies(r.Submission, actor)
	}
	return res, fus, err
}

// eraseGrace is how recent a blob an erasure leaves to the sweep (store.HoldGrace;
// tests of what an erasure deletes set it to zero for cases seconds old).
var eraseGrace = store.HoldGrace

// Erase removes one submission's package, attachment and reply bytes now (see
// above). actor names the operator, note (operators only) says why. A submission
// still waiting for a delivery attempt (queued, retrying) is ErrConflict: its
// bytes are about to be read; erase it once it is delivered or held. Asking again
// is safe and deletes blobs a racing case had kept.
func (b *Broker) Erase(ctx context.Context, id, actor, note string) (EraseResult, error) {
	res, err := b.eraseRecord(id, actor, note)
	if err != nil {
		return res, err
	}
	err = b.eraseBlobs(ctx, actor, []*EraseResult{&res})
	res.Withdrawals = b.withdrawCopies(res.Submission, actor)
	return res, err
}

// eraseRecord removes the bytes from the record of id, with the bytes_removed
// event naming actor (Erase); its blobs are eraseBlobs'.
func (b *Broker) eraseRecord(id, actor, note string) (EraseResult, error) {
	var res EraseResult
	s, err := b.removeBytes(id, func(cur *submission.Submission, now time.Time) ([]submission.Event, error) {
		if cur.BytesRemovedAt != nil {
			res.Already = true
			return nil, nil
		}
		if cur.State.Dispatchable() {
			return nil, fmt.Errorf("%w: the package waits for a delivery attempt (%s); erase it once it is delivered or held", submission.ErrIllegal, cur.State)
		}
		cur.BytesGone(now)
		// The copies outside the gateway are owed from this transaction on
		// (owed.go): a crash before withdrawCopies asks leaves the mark, and
		// the gateway asks after its start.
		for _, ch := range b.copyChannels(cur) {
			cur.OweWithdrawal(ch)
		}
		return []submission.Event{{At: now, Type: submission.EventBytesRemoved, Actor: actor, Detail: ErasedDetail, Note: note}}, nil
	})
	res.Submission = s
	return res, err
}

// eraseBlobs deletes the blobs of the records rs, erased by actor, that no
// other case holds, counting them in each, and overwrites the store's free
// pages.
func (b *Broker) eraseBlobs(ctx context.Context, actor string, rs []*EraseResult) (err error) {
	first := rs[0].Submission.ID
	// Outside the store too: after a restore from a backup taken before it,
	// the operator repeats the erasures made since (docs/operations.md), and
	// the store that says which they were is the one the restore replaced.
	// Logged once the blobs are dealt with, with how that went.
	defer func() {
		for _, r := range rs {
			if !r.Already {
				s := r.Submission
				b.log.Info("case erased: package, attachments and replies removed from the record", "submission", s.ID, "office", s.OfficeID,
					"actor", actor, "blobs_deleted", r.BlobsDeleted, "blobs_left_to_the_sweep", r.BlobsLeft, "err", err)
			}
		}
	}()
	// The bytes are gone from the records now; their blobs go in the same request,
	// whether or not its client still waits. The scan below reads every record
	// (a million: minutes from a cold disk), longer than an operator's curl or
	// the server's write timeout may wait; with the request's context a client
	// hanging up stopped it, the erasure answered with an error and the blobs
	// stayed until the next hourly sweep.
	if err = b.deleteUnsharedBlobs(context.WithoutCancel(ctx), rs); err != nil {
		return fmt.Errorf("broker: erase %s: %w", first, err)
	}
	// The events as they were, with the office's words, and the records with
	// the attachments' file names are in free pages now, and so are the blobs
	// that went. Asked again (Already), it wipes again: the erasure's record
	// was written when a wipe failed and the operator was told so, and the
	// repeat the answer asks for must finish the job, not only say "already
	// removed".
	if err = b.wipeFree(); err != nil {
		return fmt.Errorf("broker: erase %s: %w", first, err)
	}
	return nil
}

// deleteUnsharedBlobs deletes the blobs of the records rs that no other record
// references and counts in each how many it deleted and how many it left
// because they are recent. A blob two of them hold is counted for the first. The scan reads every record (a few seconds on
// a store of hundreds of thousands), which is fine for an operator's request.
// Why the cut-off lies eraseGrace before the scan, not at its start: a request
// that will reference the same content (a portal sending the same attachment
// again, for a new case) stores or refreshes the blob before its record commits
// — a multipart upload its first part maybe hours before. A record committed
// after the scan read the records is not seen, and a cut-off at the scan's
// start deleted the blob that request had stored a moment before: its package
// was acknowledged without it. Such a request keeps its blobs refreshed until
// it commits (store.HoldRefresh, intake's holding), so a blob of it is never
// older than store.HoldGrace.
func (b *Broker) deleteUnsharedBlobs(ctx context.Context, rs []*EraseResult) error {
	cond, ok := b.db.Blobs().(store.CondDeleter)
	if !ok {
		return nil // left to the retention's sweep
	}
	began := time.Now()
	mine := map[string]*EraseResult{} // digest -> the record it is counted for
	for _, r := range rs {
		for _, d := range r.Submission.Digests() {
			if _, dup := mine[d]; d != "" && !dup {
				mine[d] = r
			}
		}
	}
	// The records of rs say their bytes are removed (eraseRecord committed
	// that before), so the scan passes over them as over every erased case.
	err := b.db.Scan(func(o *submission.Submission) bool {
		if o.BytesRemovedAt == nil {
			for _, d := range o.Digests() {
				delete(mine, d)
			}
		}
		return ctx.Err() == nil && len(mine) > 0
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	cut := began.Add(-eraseGrace)
	for d, r := range mine {
		gone, err := cond.DeleteIfOlder(d, cut)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		if gone {
			r.BlobsDeleted++
		} else if rc, err := b.db.Blobs().Open(ctx, d); err == nil {
			rc.Close()
			r.BlobsLeft++
		}
	}
	return nil
}
