package freeport

import (
	"errors"
	"net"
	"strconv"
	"testing"
)

func TestPickIsOutsideTheEphemeralRange(t *testing.T) {
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
