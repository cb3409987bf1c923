package routing

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Store holds the current Directory snapshot. Readers call Current and keep using the
// snapshot they got for the whole request; a reload builds and validates a complete
// new snapshot first and then swaps one pointer, so nobody sees a half-loaded
// directory and a bad file leaves the old snapshot in place.
type Store struct {
	cur  atomic.Pointer[Directory]
	base *Directory // the snapshot overlays are applied to (usually Builtin)

	mu       sync.Mutex // serialises reloads; readers never take it
	files    []string
	lastErr  error
	loadedAt time.Time
}

// NewStore returns a store serving d. Reloads apply their files on top of d.
func NewStore(d *Directory) *Store {
	s := &Store{base: d, loadedAt: time.Now()}
	s.cur.Store(d)
	return s
}

// Current returns the snapshot to use for one request.
func (s *Store) Current() *Directory { return s.cur.Load() }

// Swap replaces the snapshot (and the base for later reloads) with d.
func (s *Store) Swap(d *Directory) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = d
	s.files = nil
	s.cur.Store(d)
	s.loadedAt = time.Now()
}

// ReloadFiles builds a new snapshot from the base directory plus the given overlay
// files (XZuFi XML or YAML, in order, later files win), validates it completely and
// only then makes it current. The paths are remembered for Reload. On error the
// current snapshot stays and the error names the file and line.
func (s *Store) ReloadFiles(paths ...string) error {
	return s.ReloadFilesWith(nil, paths...)
}

// ReloadFilesWith is ReloadFiles that makes the new snapshot current only when
// commit, called after the files were validated, returns nil: the gateway puts
// its trust store in force there, so that a reload of both swaps both or
// neither. commit's error is the reload's error (and Status' LastError); commit
// must leave its own part as it was when it fails. A nil commit always succeeds.
func (s *Store) ReloadFilesWith(commit func() error, paths ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := BuildWithFiles(s.base, paths...)
	if err == nil && commit != nil {
		err = commit()
	}
	s.lastErr = err
	if err != nil {
		return err
	}
	s.files = slices.Clone(paths)
	s.cur.Store(d)
	s.loadedAt = time.Now()
	return nil
}

// Reload re-reads the files of the last successful ReloadFiles (SIGHUP, admin endpoint).
func (s *Store) Reload() error {
	s.mu.Lock()
	files := slices.Clone(s.files)
	s.mu.Unlock()
	return s.ReloadFiles(files...)
}

// Status describes the store for the admin endpoint.
type Status struct {
	Files     []string  `json:"files"`
	LoadedAt  time.Time `json:"loadedAt"`
	LastError string    `json:"lastError,omitempty"`
	Counts    Counts    `json:"counts"`
}

// Status reports what is loaded and why the last reload failed, if it did.
func (s *Store) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Files: slices.Clone(s.files), LoadedAt: s.loadedAt, Counts: s.cur.Load().Counts()}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	return st
}

// Watch reloads on every value received from signals (the integrator passes a channel
// registered for SIGHUP) until ctx ends. Failures are logged; the old snapshot stays.
func (s *Store) Watch(ctx context.Context, signals <-chan os.Signal, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case sig, ok := <-signals:
			if !ok {
				return
			}
			if err := s.Reload(); err != nil {
				log.Error("directory reload failed; keeping the old directory", "signal", fmt.Sprint(sig), "err", err)
				continue
			}
			log.Info("directory reloaded", "signal", fmt.Sprint(sig), "counts", s.Current().Counts())
		}
	}
}

// BuildWithFiles returns base with the overlay files applied, fully validated.
func BuildWithFiles(base *Directory, paths ...string) (*Directory, error) {
	src := base.Source().clone()
	samePlaces := true
	var home []string
	for _, p := range paths {
		o, err := LoadFile(p)
		if err != nil {
			return nil, err
		}
		samePlaces = samePlaces && len(o.Areas) == 0 && len(o.Postcodes) == 0
		for _, l := range o.HomeLands {
			if !slices.Contains(home, l) {
				home = append(home, l)
			}
		}
		o.fromOperator()
		if err := src.mergeFile(o); err != nil {
			return nil, err
		}
	}
	src.dropAreaCache() // only needed while merging; the snapshot keeps src
	if len(home) > 0 {
		// The operator's files say which states this gateway is authoritative for;
		// the built-in directory's (Saxony) is only the default.
		src.Peers = append(src.Peers, leftHome(src, home)...)
		src.HomeLands = home
		src.PeersFirst = true
	}
	if samePlaces {
		// Overlays that add no places share the base's areas and name index.
		return buildReusing(src, base.placeSet)
	}
	return Build(src)
}

// leftHome gives each home land of src that home (the operator's homeLands) leaves
// out a sample peer, where no file names one: another state's places go to that
// state's peer, and the built-in directory has a peer for every state but its own.
// A Bavarian gateway (homeLands ["09"]) without a directory peer for Saxony had
// none: a Saxon place was refused although the configuration named a peer gateway
// for Saxony, or answered by a built-in Saxon office. Sample like the built-in
// peers: the configuration's peers[] decides whether and to which gateway a
// package goes (intake.Pipeline.Destination), never this entry's address.
func leftHome(src *Source, home []string) []*Peer {
	var out []*Peer
	for _, l := range src.HomeLands {
		if slices.Contains(home, l) || slices.ContainsFunc(src.Peers, func(p *Peer) bool { return p.Land == l }) {
			continue
		}
		name := l
		for _, a := range src.Areas {
			if a.Key == l {
				name = a.Name
				break
			}
		}
		out = append(out, &Peer{Land: l, Name: name, GatewayID: "gateway-" + l,
			BaseURL: "https://gateway-" + l + ".sample.example", Sample: true})
	}
	return out
}
