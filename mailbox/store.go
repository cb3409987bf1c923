package mailbox

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The mailbox's own state, in mailbox.db. The submissions themselves are the broker's
// and are never copied here.
var (
	bSessions = []byte("sessions") // sha256(token) hex -> session
	bArrivals = []byte("arrivals") // submission id -> arrival
	bOpened   = []byte("opened")   // submission id -> opening (first person who opened it)
	bOutbox   = []byte("outbox")   // seq (8 bytes BE) -> notice
)

var errNoRecord = errors.New("no record")

type mstore struct{ db *bolt.DB }

func openStore(path string) (*mstore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("mailbox: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bSessions, bArrivals, bOpened, bOutbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("mailbox: init %s: %w", path, err)
	}
	return &mstore{db: db}, nil
}

func (s *mstore) close() error { return s.db.Close() }

func put(tx *bolt.Tx, bucket, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put(key, b)
}

func get(tx *bolt.Tx, bucket, key []byte, v any) error {
	b := tx.Bucket(bucket).Get(key)
	if b == nil {
		return errNoRecord
	}
	return json.Unmarshal(b, v)
}

// --- sessions ---

type session struct {
	User     string    `json:"user"`
	Office   string    `json:"office"`
	CSRF     string    `json:"csrf"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"lastSeen"`
	// Cred is credOf the user's password hash at the login: a session ends when the
	// operator gives the user a new password.
	Cred string `json:"cred"`
}

// Sessions end after this long without a request, and after sessionMax in any case.
const (
	sessionIdle = 30 * time.Minute
	sessionMax  = 10 * time.Hour
)

// sessionSlack is how far in the future a session's stored times may lie (clocks
// of a cluster's gateways differ a little) before the session counts as ended.
const sessionSlack = time.Minute

// expired: idle too long, too old, or begun or seen "later than now" — the
// clock stepped back since (a VM whose clock ran ahead, corrected by NTP).
// The times are stored wall times; after a step back of a day the idle rule
// measured a negative time, and a session left open on an office PC kept the
// applicants' data open for a day and thirty minutes (an audit, 2026-12-05).
func (s session) expired(now time.Time) bool {
	return now.Sub(s.LastSeen) > sessionIdle || now.Sub(s.Created) > sessionMax ||
		s.LastSeen.Sub(now) > sessionSlack || s.Created.Sub(now) > sessionSlack
}

// ends is when the session expires unless a request comes before: the idle end,
// or the hard end if that is sooner. LastSeen is refreshed at most once a minute,
// so this may be up to a minute early, never late.
func (s session) ends() time.Time {
	idle, hard := s.LastSeen.Add(sessionIdle), s.Created.Add(sessionMax)
	if hard.Before(idle) {
		return hard
	}
	return idle
}

// Only the digest of a session token is stored: a copy of mailbox.db lets nobody in.
func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// sessionBook keeps the login sessions by the digest of their token (tokenKey):
// mailbox.db on a single gateway (mstore), a JetStream bucket the gateways of a
// cluster share (kvSessions), so that the load balancer may send a clerk to any of
// them. The contract, which sessionSuite checks for both:
//   - getSession returns what the last putSession of the key stored, through any
//     view of the book; an absent key is (zero, false, nil);
//   - removeSession forgets the key (an absent key is no error);
//   - touchSession stores a session only while the key holds one: a request's
//     refresh must not bring back a session a logout removed since the request
//     read it (in another tab, at another gateway);
//   - sweepSessions removes the sessions expired at now(), asked once it may
//     write (a book whose entries expire by themselves may leave that to them,
//     as long as getSession of an expired one is then handled by the caller:
//     Mailbox.session checks expiry itself).
type sessionBook interface {
	putSession(key string, ss session) error
	getSession(key string) (session, bool, error)
	removeSession(key string) error
	touchSession(key string, ss session) error
	sweepSessions(now func() time.Time) error
}

func (s *mstore) putSession(key string, ss session) error {
	return s.db.Update(func(tx *bolt.Tx) error { return put(tx, bSessions, []byte(key), ss) })
}

func (s *mstore) getSession(key string) (session, bool, error) {
	var ss session
	err := s.db.View(func(tx *bolt.Tx) error { return get(tx, bSessions, []byte(key), &ss) })
	if errors.Is(err, errNoRecord) {
		return session{}, false, nil
	}
	return ss, err == nil, err
}

func (s *mstore) touchSession(key string, ss session) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bSessions).Get([]byte(key)) == nil {
			return nil // logged out meanwhile
		}
		return put(tx, bSessions, []byte(key), ss)
	})
}

func (s *mstore) removeSession(key string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bSessions).Delete([]byte(key)) })
}

func (s *mstore) sweepSessions(clock func() time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		// The time is read under the write lock, not before it: a request that
		// refreshed a session while the sweep waited for the lock left a
		// LastSeen after a time read earlier, and the sweep took that session
		// for one from the future (a clock step, expired) and signed its clerk
		// out (mailbox.TestSessionEndsAfterSessionMaxWhileInUse, 1 run in 10).
		now := clock()
		c := tx.Bucket(bSessions).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var ss session
			if json.Unmarshal(v, &ss) != nil || ss.expired(now) {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// --- arrivals, openings ---

// arrival is what the channel recorded of a submission handed to the mailbox.
type arrival struct {
	SubmissionID string     `json:"submissionId"`
	OfficeID     string     `json:"officeId"`
	DeliveryID   string     `json:"deliveryId"`
	First        time.Time  `json:"first"`
	HandOvers    []handOver `json:"handOvers"` // every Deliver call that took it (at-least-once)
	Noticed      bool       `json:"noticed"`   // a notice was queued for it
}

type handOver struct {
	At         time.Time `json:"at"`
	DeliveryID string    `json:"deliveryId"`
	Attempt    int       `json:"attempt"`
	Endpoint   string    `json:"endpoint"`
}

const maxHandOvers = 20

// opening is the first time a person opened the package in the mailbox: the
// office's confirmation of the delivery.
type opening struct {
	OfficeID string    `json:"officeId"`
	User     string    `json:"user"`
	At       time.Time `json:"at"`
}

func (s *mstore) opened(id string) (opening, bool, error) {
	var o opening
	err := s.db.View(func(tx *bolt.Tx) error { return get(tx, bOpened, []byte(id), &o) })
	if errors.Is(err, errNoRecord) {
		return opening{}, false, nil
	}
	return o, err == nil, err
}

// recordOpened keeps the first opening; later ones change nothing.
func (s *mstore) recordOpened(id string, o opening) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bOpened).Get([]byte(id)) != nil {
			return nil
		}
		return put(tx, bOpened, []byte(id), o)
	})
}

func (s *mstore) arrivals() ([]arrival, error) {
	var out []arrival
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bArrivals).ForEach(func(_, v []byte) error {
			var a arrival
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// cases lists every submission the mailbox keeps something of (an arrival, an
// opening) with its office.
func (s *mstore) cases() (map[string]string, error) {
	out := map[string]string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bArrivals).ForEach(func(k, v []byte) error {
			var a arrival
			if json.Unmarshal(v, &a) == nil {
				out[string(k)] = a.OfficeID
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bOpened).ForEach(func(k, v []byte) error {
			var o opening
			if _, ok := out[string(k)]; !ok && json.Unmarshal(v, &o) == nil {
				out[string(k)] = o.OfficeID
			}
			return nil
		})
	})
	return out, err
}

// forget removes the arrivals and openings of the submissions ids.
func (s *mstore) forget(ids []string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, id := range ids {
			if err := tx.Bucket(bArrivals).Delete([]byte(id)); err != nil {
				return err
			}
			if err := tx.Bucket(bOpened).Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// --- notice outbox ---

type notice struct {
	Seq          uint64    `json:"seq"`
	SubmissionID string    `json:"submissionId"`
	To           string    `json:"to"`
	Subject      string    `json:"subject"`
	Body         string    `json:"body"`
	Created      time.Time `json:"created"`
	Attempts     int       `json:"attempts"`
	NextAt       time.Time `json:"nextAt"`
	// OfficeID names the office in the log lines of a notice that fails (the
	// address must not be there); empty in notices queued before it was kept.
	OfficeID string `json:"officeId,omitempty"`
}

func seqKey(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}

// handOver records one Deliver call in one transaction: the arrival and, on the first
// hand-over of a submission with a notice address, the notice. fault (tests only) can
// make the transaction fail after it has written, proving nothing half-done remains.
func (s *mstore) handOver(a arrival, h handOver, n *notice, fault func() error) (queued bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		var cur arrival
		switch err := get(tx, bArrivals, []byte(a.SubmissionID), &cur); {
		case errors.Is(err, errNoRecord):
			cur = a
		case err != nil:
			return err
		}
		cur.DeliveryID = h.DeliveryID
		cur.HandOvers = append(cur.HandOvers, h)
		if len(cur.HandOvers) > maxHandOvers {
			cur.HandOvers = cur.HandOvers[len(cur.HandOvers)-maxHandOvers:]
		}
		if n != nil && !cur.Noticed {
			ob := tx.Bucket(bOutbox)
			seq, err := ob.NextSequence()
			if err != nil {
				return err
			}
			n.Seq = seq
			if err := put(tx, bOutbox, seqKey(seq), n); err != nil {
				return err
			}
			cur.Noticed, queued = true, true
		}
		if err := put(tx, bArrivals, []byte(a.SubmissionID), cur); err != nil {
			return err
		}
		if fault != nil {
			return fault()
		}
		return nil
	})
	if err != nil {
		queued = false
	}
	return queued, err
}

// dueNotices returns the notices due at now and the earliest time of the others.
func (s *mstore) dueNotices(now time.Time, limit int) (due []notice, next time.Time, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bOutbox).ForEach(func(_, v []byte) error {
			var n notice
			if err := json.Unmarshal(v, &n); err != nil {
				return err
			}
			if !n.NextAt.After(now) {
				if len(due) < limit {
					due = append(due, n)
				} else if next.IsZero() || now.Before(next) {
					next = now
				}
				return nil
			}
			if next.IsZero() || n.NextAt.Before(next) {
				next = n.NextAt
			}
			return nil
		})
	})
	return due, next, err
}

func (s *mstore) noticeDone(seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bOutbox).Delete(seqKey(seq)) })
}

func (s *mstore) noticeRetry(n notice) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bOutbox).Get(seqKey(n.Seq)) == nil {
			return nil
		}
		return put(tx, bOutbox, seqKey(n.Seq), n)
	})
}
