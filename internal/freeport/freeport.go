// Package freeport picks loopback TCP ports for processes that bind them later: the
// test gateways and nats-servers, and the federation demo's two gateways.
//
// Listening on port 0 and closing again hands out a port from the kernel's ephemeral
// range, and that range is where every outgoing connection gets its local port too.
// Between the close and the child process's bind, seconds can pass (a gateway loads
// its directory first), and under CI's parallel test packages some client connection
// took exactly that port: "bind: address already in use" (CI, 2026-12-02). Ports
// below the ephemeral range are never handed out automatically, so only another
// picker could take one. Pickers in different processes (go test runs packages in
// parallel) did collide all the same, once in a CI run (2026-12-05: a federation
// test's gateway and some other package's process got the same port), so each pick
// is also claimed with a file in a directory all pickers of this user share; another
// picker skips a port claimed in the last claimFor.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNone means no free port was found after many tries.
var ErrNone = errors.New("freeport: no free port found")

// Linux's default ephemeral range; read from /proc where it exists.
const (
	defaultEphemeralLow = 32768
	lowest              = 10000 // below: well-known and registered services cluster
)

// Pick returns n distinct ports that were free on 127.0.0.1 when picked, all outside
// the ephemeral range. They stay free until the caller binds them unless another
// process binds the same port on purpose.
func Pick(n int) ([]int, error) {
	lo, hi := window()
	return pickIn(n, lo, hi)
}

func pickIn(n, lo, hi int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries >= 1000*n {
			return nil, fmt.Errorf("%w in %d..%d", ErrNone, lo, hi)
		}
		p := lo + rand.IntN(hi-lo+1)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken, or in TIME_WAIT: try another
		}
		if !claim(claimDir, p) {
			l.Close() // free now, but another picker will bind it soon
			continue
		}
		// Held open until all n are chosen, so the same port is never picked twice.
		ls = append(ls, l)
		ports = append(ports, p)
	}
	return ports, nil
}

// claimFor is how long a picked port stays off limits to other pickers: longer
// than any test keeps a picked port unbound, short enough that the claims of a
// finished run do not pile up across a day of runs.
const claimFor = 10 * time.Minute

// claimDir holds one empty file per claimed port; "" turns claims off.
var claimDir = filepath.Join(os.TempDir(), "amtsbote-freeport-"+strconv.Itoa(os.Getuid()))

// claim reports whether port p was claimed for this picker in dir: true if its file
// was created now, or an old claim was taken over. Where no file can be written at
// all, the listen check alone decides (true). Two pickers taking over the same stale
// claim at the same moment could both win; that needs the same port out of
// thousands within microseconds, after ten minutes of nobody picking it.
func claim(dir string, p int) bool {
	if dir == "" {
		return true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return true
	}
	f := filepath.Join(dir, strconv.Itoa(p))
	for range 2 {
		fh, err := os.OpenFile(f, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			fh.Close()
			return true
		}
		if !errors.Is(err, os.ErrExist) {
			return true
		}
		st, err := os.Stat(f)
		if err == nil && time.Since(st.ModTime()) < claimFor {
			return false
		}
		_ = os.Remove(f) // stale (or gone meanwhile): try once more
	}
	return false
}

// Addr is one picked port as "127.0.0.1:port".
func Addr() (string, error) {
	p, err := Pick(1)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p[0])), nil
}

// window is the range to pick from: below the ephemeral range if there is room,
// else above it.
func window() (lo, hi int) {
	elo, ehi := ephemeralRange()
	if elo-1-lowest >= 1000 {
		return lowest, elo - 1
	}
	if 65535-(ehi+1) >= 1000 {
		return ehi + 1, 65535
	}
	// The ephemeral range covers nearly everything: pick anywhere above lowest.
	return lowest, 65535
}

func ephemeralRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeralLow, 60999
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return defaultEphemeralLow, 60999
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return defaultEphemeralLow, 60999
	}
	return lo, hi
}
