package mailbox

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/bus"
	"github.com/amtsbote/amtsbote/internal/testenv"
)

// sessionSuite checks a sessionBook against the contract on the interface. views
// opens one more view of one new, empty book (a restart, or another gateway).
func sessionSuite(t *testing.T, views func(t *testing.T) func() sessionBook, sweeps bool) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	a := session{User: "anna", Office: "amt-a", CSRF: "c1", Created: now, LastSeen: now}
	t.Run("PutGetRemove", func(t *testing.T) {
		open := views(t)
		v, w := open(), open()
		if _, ok, err := v.getSession(tokenKey("nie")); ok || err != nil {
			t.Fatalf("absent key: %v %v", ok, err)
		}
		if err := v.putSession(tokenKey("t1"), a); err != nil {
			t.Fatal(err)
		}
		got, ok, err := w.getSession(tokenKey("t1"))
		if err != nil || !ok || got.User != "anna" || got.CSRF != "c1" || !got.LastSeen.Equal(now) {
			t.Fatalf("another view reads %+v %v %v", got, ok, err)
		}
		later := a
		later.LastSeen = now.Add(5 * time.Minute)
		if err := w.putSession(tokenKey("t1"), later); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := v.getSession(tokenKey("t1")); !got.LastSeen.Equal(later.LastSeen) {
			t.Fatalf("after a second put: %+v", got)
		}
		for i := 0; i < 2; i++ {
			if err := v.removeSession(tokenKey("t1")); err != nil {
				t.Fatalf("remove #%d: %v", i+1, err)
			}
		}
		if _, ok, _ := w.getSession(tokenKey("t1")); ok {
			t.Fatal("a removed session is still there")
		}
	})
	t.Run("TouchDoesNotRevive", func(t *testing.T) {
		open := views(t)
		v, w := open(), open()
		later := a
		later.LastSeen = now.Add(2 * time.Minute)
		if err := v.touchSession(tokenKey("nie"), later); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := w.getSession(tokenKey("nie")); ok {
			t.Fatal("touch created a session")
		}
		if err := v.putSession(tokenKey("t2"), a); err != nil {
			t.Fatal(err)
		}
		if err := w.touchSession(tokenKey("t2"), later); err != nil {
			t.Fatal(err)
		}
		if got, ok, _ := v.getSession(tokenKey("t2")); !ok || !got.LastSeen.Equal(later.LastSeen) {
			t.Fatalf("after a touch: %+v %v", got, ok)
		}
		if err := v.removeSession(tokenKey("t2")); err != nil {
			t.Fatal(err)
		}
		if err := w.touchSession(tokenKey("t2"), later); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := v.getSession(tokenKey("t2")); ok {
			t.Fatal("a touch brought back a removed session")
		}
	})
	if !sweeps {
		return
	}
	t.Run("SweepRemovesExpired", func(t *testing.T) {
		v := views(t)()
		old := a
		old.LastSeen = now.Add(-2 * sessionIdle)
		_ = v.putSession(tokenKey("old"), old)
		_ = v.putSession(tokenKey("new"), a)
		if err := v.sweepSessions(func() time.Time { return now }); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := v.getSession(tokenKey("old")); ok {
			t.Error("an expired session survived the sweep")
		}
		if _, ok, _ := v.getSession(tokenKey("new")); !ok {
			t.Error("a live session was swept")
		}
	})
}

func TestFileSessionsConform(t *testing.T) {
	sessionSuite(t, func(t *testing.T) func() sessionBook {
		db, err := openStore(filepath.Join(t.TempDir(), "mailbox.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.close() })
		return func() sessionBook { return db } // one file: a gateway holds it alone
	}, true)
}

func TestKVSessionsConform(t *testing.T) {
	sessionSuite(t, func(t *testing.T) func() sessionBook {
		bs := startBus(t)
		return func() sessionBook {
			k, err := openKVSessions(bs.JS, 1)
			if err != nil {
				t.Fatal(err)
			}
			return k
		}
	}, false)
}

func startBus(t *testing.T) *bus.Bus {
	t.Helper()
	bs, err := bus.Start(context.Background(), bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	return bs
}

// TestSessionOnEveryGateway: two mailboxes sharing the cluster's session bucket, as
// two gateways behind a load balancer without sticky sessions. A clerk logged in at
// one is logged in at the other, and logged out at the other is logged out at the
// first.
func TestSessionOnEveryGateway(t *testing.T) {
	bs := startBus(t)
	desk := newMemDesk()
	hash := fastHash(t, "anna-passwort") // the gateways of a cluster share one configuration
	open := func() *Mailbox {
		m, err := New(Options{Desk: desk, DataDir: t.TempDir(), SharedSessions: bs.JS, SessionReplicas: 1,
			Users: []User{{Name: "anna", Office: "amt-a", PasswordHash: hash}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	one, two := open(), open()
	c := newClient(t, one.Handler())
	c.mustLogin("anna", "anna-passwort")
	c.h = two.Handler() // the load balancer sends the next request elsewhere
	page := c.get("/postfach/")
	if page.Code != http.StatusOK {
		t.Fatalf("the other gateway does not know the session: %d", page.Code)
	}
	if got := c.post("/postfach/abmelden", map[string][]string{"csrf": {csrfFrom(t, page.Body.String())}}); got.Code != http.StatusSeeOther {
		t.Fatalf("logout at the other gateway: %d", got.Code)
	}
	c.h = one.Handler()
	if got := c.get("/postfach/"); got.Code != http.StatusSeeOther {
		t.Fatalf("still logged in at the first gateway after logging out at the other: %d", got.Code)
	}
}

// TestSessionSuiteCatchesDefects proves the suite has teeth: each defect, planted
// in the bucket's book, must make the named case fail.
func TestSessionSuiteCatchesDefects(t *testing.T) {
	if os.Getenv("SESSIONS_DEFECT") != "" {
		return // this is the child process itself
	}
	testenv.PlantedDefects(t, "SESSIONS_DEFECT", "a session book", map[string]string{
		"remove-does-nothing": "PutGetRemove",
		"put-in-this-view":    "PutGetRemove",
		"touch-is-put":        "TouchDoesNotRevive",
	})
}

// TestDefectChild is the child of TestSessionSuiteCatchesDefects and does nothing
// on its own.
func TestDefectChild(t *testing.T) {
	defect := os.Getenv("SESSIONS_DEFECT")
	if defect == "" {
		return
	}
	sessionSuite(t, func(t *testing.T) func() sessionBook {
		bs := startBus(t)
		return func() sessionBook {
			k, err := openKVSessions(bs.JS, 1)
			if err != nil {
				t.Fatal(err)
			}
			return &defectiveSessions{sessionBook: k, defect: defect, mem: map[string]session{}}
		}
	}, false)
}

type defectiveSessions struct {
	sessionBook
	defect string
	mem    map[string]session
}

func (d *defectiveSessions) putSession(key string, ss session) error {
	if d.defect == "put-in-this-view" {
		d.mem[key] = ss
		return nil
	}
	return d.sessionBook.putSession(key, ss)
}

func (d *defectiveSessions) touchSession(key string, ss session) error {
	if d.defect == "touch-is-put" {
		return d.sessionBook.putSession(key, ss)
	}
	return d.sessionBook.touchSession(key, ss)
}

func (d *defectiveSessions) getSession(key string) (session, bool, error) {
	if ss, ok := d.mem[key]; ok {
		return ss, true, nil
	}
	return d.sessionBook.getSession(key)
}

func (d *defectiveSessions) removeSession(key string) error {
	if d.defect == "remove-does-nothing" {
		return nil
	}
	return d.sessionBook.removeSession(key)
}

// TestLogoutIsNotUndoneByARefresh: a page request reads its session and, a minute
// after the last refresh, writes it back with the new LastSeen. A logout that
// removed the session in between (another tab, another gateway of the cluster)
// was undone by that write: the session was back, valid for whoever held the
// token, though the clerk had logged out. The refresh now only renews a session
// that is still there.
func TestLogoutIsNotUndoneByARefresh(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC).UnixNano())
	m := memMailboxAt(t, newMemDesk(), func() time.Time { return time.Unix(0, now.Load()).UTC() })
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	token := c.cookies[sessionCookie]
	now.Add(int64(2 * time.Minute)) // the next request refreshes LastSeen
	book := m.sessions
	m.sessions = &logoutMeanwhile{sessionBook: book}
	if rec := c.get("/postfach/"); rec.Code != http.StatusOK {
		t.Fatalf("inbox: %d", rec.Code)
	}
	if _, ok, err := book.getSession(tokenKey(token)); ok || err != nil {
		t.Fatalf("the session removed by the logout is back after the refresh (err %v)", err)
	}
}

// logoutMeanwhile removes every session just after it was read: a logout
// between a request's read of its session and the refresh.
type logoutMeanwhile struct{ sessionBook }

func (l *logoutMeanwhile) getSession(key string) (session, bool, error) {
	ss, ok, err := l.sessionBook.getSession(key)
	if ok {
		_ = l.sessionBook.removeSession(key)
	}
	return ss, ok, err
}

// TestSessionEndsAfterTheClockStepsBack: a session's times are stored wall
// times. After the clock stepped back a day, the idle rule measured a negative
// time, and a session left open kept the inbox open for a day and thirty
// minutes. A session seen "in the future" has ended.
func TestSessionEndsAfterTheClockStepsBack(t *testing.T) {
	var now atomic.Int64
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	now.Store(t0.UnixNano())
	m := memMailboxAt(t, newMemDesk(), func() time.Time { return time.Unix(0, now.Load()).UTC() })
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	if rec := c.get("/postfach/"); rec.Code != http.StatusOK {
		t.Fatalf("inbox right after login: %d", rec.Code)
	}
	// Clocks of a cluster differ a little: half a minute back keeps the session.
	now.Store(t0.Add(-30 * time.Second).UnixNano())
	if rec := c.get("/postfach/"); rec.Code != http.StatusOK {
		t.Fatalf("inbox after a step back of 30 s: %d", rec.Code)
	}
	// The clock steps back a day; anna walks away; five hours later.
	now.Store(t0.Add(-24*time.Hour + 5*time.Hour).UnixNano())
	if rec := c.get("/postfach/"); rec.Code == http.StatusOK {
		t.Fatalf("after a clock step back of a day the session still opens the inbox")
	}
}
