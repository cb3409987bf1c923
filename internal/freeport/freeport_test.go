package freeport

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestPickIsOutsideTheEphemeralRange(t *testing.T) {
	defer func(d string) { claimDir = d }(claimDir)
	claimDir = t.TempDir()
	elo, ehi := ephemeralRange()
	lo, hi := window()
	if lo <= ehi && hi >= elo && !(elo-1-lowest < 1000 && 65535-(ehi+1) < 1000) {
		t.Fatalf("window %d..%d overlaps the ephemeral range %d..%d", lo, hi, elo, ehi)
	}
	ports, err := Pick(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Errorf("port %d picked twice", p)
		}
		seen[p] = true
		if p < lo || p > hi {
			t.Errorf("port %d outside %d..%d", p, lo, hi)
		}
		// Free again after Pick returns: the caller can bind it.
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("picked port %d cannot be bound: %v", p, err)
			continue
		}
		l.Close()
	}
}

// TestPickSkipsTakenPorts holds all but one port of a five-port window: the free one
// is the only answer, and with all five held there is none.
func TestPickSkipsTakenPorts(t *testing.T) {
	defer func(d string) { claimDir = d }(claimDir)
	claimDir = "" // the same port is picked 20 times below
	lo, hi := window()
	var block []net.Listener
	base := 0
	for b := lo; b+4 <= hi && block == nil; b += 97 {
		var ls []net.Listener
		for p := b; p < b+5; p++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		if len(ls) == 5 {
			block, base = ls, b
			break
		}
		for _, l := range ls {
			l.Close()
		}
	}
	if block == nil {
		t.Fatal("no five free ports in a row")
	}
	defer func() {
		for _, l := range block {
			l.Close()
		}
	}()
	if _, err := pickIn(1, base, base+4); !errors.Is(err, ErrNone) {
		t.Fatalf("all five held: %v, want ErrNone", err)
	}
	block[2].Close()
	for range 20 {
		p, err := pickIn(1, base, base+4)
		if err != nil {
			t.Fatal(err)
		}
		if p[0] != base+2 {
			t.Fatalf("picked %d, only %d is free", p[0], base+2)
		}
	}
}

// TestClaimKeepsOtherPickersOff: in a window of two free ports, one claimed by
// another picker (its file in the shared directory), the other is the only answer;
// then both are claimed and there is none; a claim older than claimFor is taken over.
func TestClaimKeepsOtherPickersOff(t *testing.T) {
	defer func(d string) { claimDir = d }(claimDir)
	claimDir = t.TempDir()
	lo, hi := window()
	base := 0
	for b := lo; b+1 <= hi && base == 0; b += 89 {
		if free(b) && free(b+1) {
			base = b
		}
	}
	if base == 0 {
		t.Fatal("no two free ports in a row")
	}
	if !claim(claimDir, base) {
		t.Fatal("first claim refused")
	}
	p, err := pickIn(1, base, base+1)
	if err != nil {
		t.Fatal(err)
	}
	if p[0] != base+1 {
		t.Fatalf("picked %d, the claimed %d's neighbour %d is the only answer", p[0], base, base+1)
	}
	if _, err := pickIn(1, base, base+1); !errors.Is(err, ErrNone) {
		t.Fatalf("both claimed: %v, want ErrNone", err)
	}
	old := time.Now().Add(-claimFor - time.Minute)
	if err := os.Chtimes(filepath.Join(claimDir, strconv.Itoa(base)), old, old); err != nil {
		t.Fatal(err)
	}
	if p, err = pickIn(1, base, base+1); err != nil || p[0] != base {
		t.Fatalf("stale claim of %d: picked %v, %v", base, p, err)
	}
}

func free(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
