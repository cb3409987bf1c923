package mailbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/amtsbote/amtsbote/internal/clientaddr"
)

const (
	sessionCookie = "postfach_sitzung"
	loginCookie   = "postfach_anmeldung" // CSRF token of the login form (before a session exists)
	// standCookie changes with every form sent with a session, so that Back
	// loads the pages anew (see Mailbox.serve); its value means nothing.
	standCookie = "postfach_stand"
)

func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// isToken says whether s has the form newToken gives (32 random bytes).
func isToken(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (m *Mailbox) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: m.base.Path, MaxAge: maxAge,
		// Lax, not Strict: a clerk opens cases from the notice's link in her
		// webmail, another site; with Strict that first request came without the
		// session, she signed in again, and the new session made every form open
		// in her other windows stale. Lax still keeps the cookie off requests
		// other sites send by POST; every form also carries the session's token.
		HttpOnly: true, Secure: m.secure, SameSite: http.SameSiteLaxMode,
	})
}

// checkWait is how long a login waits for a password check slot (Mailbox.checks)
// before it is answered 503: a burst of clerks signing in at 8 o'clock queues
// briefly, a flood does not pile up.
var checkWait = 2 * time.Second

// checkSlot takes a slot of Mailbox.checks, waiting up to checkWait; false: none
// came free (or the client went away). The caller gives it back.
func (m *Mailbox) checkSlot(ctx context.Context) bool {
	select {
	case m.checks <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(checkWait)
	defer t.Stop()
	select {
	case m.checks <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// checkPassword returns the user if name and password match.
func (m *Mailbox) checkPassword(name, pw string) (User, bool) {
	u, ok := m.users[name]
	hash := []byte(u.PasswordHash)
	if !ok {
		hash = m.unknownHash()
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pw)) != nil || !ok {
		if c, err := bcrypt.Cost(hash); ok && err == nil && c < m.unknownCost {
			// A wrong password of a user whose hash is cheaper (a development
			// login at cost 4 beside hashes at 12) was answered 200 times faster
			// than an unknown name, which named the users that exist (an audit,
			// 2026-12-05): the failure takes as long as the dearest check.
			_ = bcrypt.CompareHashAndPassword(m.unknownHash(), []byte(pw))
		}
		return User{}, false
	}
	return u, true
}

// session returns a live session and refreshes its LastSeen (at most once a minute,
// so that reading pages does not write on every request).
func (m *Mailbox) session(token string, now time.Time) (session, bool, error) {
	key := tokenKey(token)
	ss, ok, err := m.sessions.getSession(key)
	if err != nil || !ok {
		return session{}, false, err
	}
	if ss.expired(now) {
		return session{}, false, m.sessions.removeSession(key)
	}
	if now.Sub(ss.LastSeen) > time.Minute {
		ss.LastSeen = now
		// touch, not put: a logout since the read above must stay a logout.
		if err := m.sessions.touchSession(key, ss); err != nil {
			return session{}, false, err
		}
	}
	return ss, true, nil
}

func (m *Mailbox) putSession(token string, ss session) error {
	return m.sessions.putSession(tokenKey(token), ss)
}

func (m *Mailbox) deleteSession(token string) error {
	return m.sessions.removeSession(tokenKey(token))
}

// current returns the logged-in session of the request.
func (m *Mailbox) current(r *http.Request) (session, string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return session{}, "", false
	}
	s, ok, err := m.session(c.Value, m.now())
	if err != nil {
		m.log.Error("read session", "err", err)
		return session{}, "", false
	}
	if !ok {
		return session{}, "", false
	}
	// A user removed from the configuration, moved to another office or given a
	// new password loses the session at once: the operator who changes a leaked
	// password means to shut out whoever logged in with it.
	if u, known := m.users[s.User]; !known || u.Office != s.Office || s.Cred != credOf(u) {
		_ = m.deleteSession(c.Value)
		return session{}, "", false
	}
	return s, c.Value, true
}

// limiter slows down password guessing: after a few failures for a user name or from
// an address, further attempts are refused for a time that doubles with every failure
// (up to an hour), whatever the password. A success clears the user's count.
//
// An attempt is counted before its password is checked, in the same locked step
// that looks for a lockout (attempt), and a success gives it back (succeeded).
// Counting after the check, as before 2026-12-04, let every request already in
// flight through: bcrypt takes ~100 ms, and 60 guesses sent at once were all
// checked against a limit of 5 (TestLoginLimitHoldsInParallel).
type limiter struct {
	mu    sync.Mutex
	m     map[string]*failures
	swept time.Time // the last time old entries were forgotten
}

// limiterSweep is how often old entries are forgotten. Each guess with a new
// name and address adds two; forgotten on every attempt, an anonymous
// guesser's tens of thousands made every clerk's login scan them all under
// the lock (an audit, 2026-12-05: 164 µs per attempt at 40,000 entries, and
// growing with them).
const limiterSweep = time.Minute

type failures struct {
	n     int
	last  time.Time
	until time.Time
}

// limit is one count an attempt is held against: a user name's or an address's.
type limit struct {
	key  string
	free int // failures before the first lockout
}

const (
	// maxLimitName bounds what the user limit keeps of a name: a longer one is
	// kept as its digest (userKey).
	maxLimitName     = 64
	freeFailuresUser = 5
	freeFailuresAddr = 20
	freeFailuresNet  = 100 // an IPv6 /64 (loginLimits)
	failureMemory    = time.Hour
	maxLockout       = time.Hour
)

func newLimiter() *limiter { return &limiter{m: map[string]*failures{}} }

// attempt says how long the caller must still wait if any of limits is locked
// (and counts nothing then); otherwise it counts the attempt against each of
// them as a failure, which succeeded takes back.
func (l *limiter) attempt(now time.Time, limits ...limit) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, lm := range limits {
		if f := l.m[lm.key]; f != nil && now.Before(f.until) {
			wait = max(wait, f.until.Sub(now))
		}
	}
	if wait > 0 {
		return wait
	}
	if now.Sub(l.swept) >= limiterSweep || now.Before(l.swept) {
		l.swept = now
		for k, f := range l.m { // forget old entries
			if now.Sub(f.last) > failureMemory && !now.Before(f.until) {
				delete(l.m, k)
			}
		}
	}
	for _, lm := range limits {
		f := l.m[lm.key]
		if f == nil {
			f = &failures{}
			l.m[lm.key] = f
		}
		f.n++
		f.last = now
		f.until = lockedUntil(f.n, lm.free, now)
	}
	return 0
}

// succeeded clears the user's count and takes the attempt back from the others.
func (l *limiter) succeeded(now time.Time, user limit, others ...limit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, user.key)
	for _, lm := range others {
		if f := l.m[lm.key]; f != nil && f.n > 0 {
			f.n--
			f.until = lockedUntil(f.n, lm.free, now)
		}
	}
}

// lockedUntil is the end of the lockout after n failures: none below free, then
// 30 s doubling with every further failure, at most maxLockout.
func lockedUntil(n, free int, now time.Time) time.Time {
	if n < free {
		return time.Time{}
	}
	d := 30 * time.Second
	for i := free; i < n && d < maxLockout; i++ {
		d *= 2
	}
	return now.Add(min(d, maxLockout))
}

// clientAddr is the address the login limits count: the peer's, or behind a
// trusted proxy the client's as the proxies recorded it in X-Forwarded-For. The
// list is read from the right, skipping trusted proxies; the first address a
// trusted proxy did not write is the client (what a client puts in the header
// itself is further left and never believed). A peer that is not a trusted proxy
// is the client, whatever it sends.
func (m *Mailbox) clientAddr(r *http.Request) string {
	if a, ok := clientaddr.Of(r, m.opts.TrustedProxies); ok {
		return a.String()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return host
}

// credOf names the password a session was opened with: a digest of the user's
// bcrypt hash (8 bytes: it only has to change when the hash does; it tells nothing
// of the password, whose salt is in the hash).
func credOf(u User) string {
	sum := sha256.Sum256([]byte(u.PasswordHash))
	return hex.EncodeToString(sum[:8])
}

// userKey is what the user limit counts for a name typed into the login form:
// the name in lower case, or the digest of a name longer than maxLimitName. The
// limiter remembers every failed name for an hour; kept as typed, up to the form's
// 16 KiB, names no user has held megabytes per second of a guesser's garbage.
func userKey(name string) string {
	name = strings.ToLower(name)
	if len(name) <= maxLimitName {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "#" + hex.EncodeToString(sum[:16])
}

// loginLimits are the counts a login attempt of name from the client address
// addr is held against: the user's first, then the address's, and for an IPv6
// address also its /64 network's. A provider gives an IPv6 client a whole /64,
// and the client picks its address in it at will (privacy extensions change it by
// themselves): counted per address alone, anyone could send each guess from the
// next address and the address limit held nobody. The network's budget is larger
// (freeFailuresNet), as the clerks of an office LAN are one /64 too.
func loginLimits(name, addr string) []limit {
	limits := []limit{{"u:" + userKey(name), freeFailuresUser}, {"a:" + addr, freeFailuresAddr}}
	if a, err := netip.ParseAddr(addr); err == nil && !a.Unmap().Is4() {
		if p, err := a.WithZone("").Prefix(64); err == nil {
			limits = append(limits, limit{"n:" + p.String(), freeFailuresNet})
		}
	}
	return limits
}
