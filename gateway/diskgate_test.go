package gateway

import (
	"io"
	"log/slog"
	"syscall"
	"testing"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/store"
)

// flakyDisk is a single node's store as readiness sees it, with an I/O error
// that comes and goes: the commits' latest refusal (cleared by a successful
// probe write, as store.DB does) and the outcome of the next probe writes.
type flakyDisk struct {
	store.Store // not called
	refused     error
}

func (d *flakyDisk) CommitStats() store.CommitStats { return store.CommitStats{Refused: d.refused} }
func (d *flakyDisk) ProbeWrite() error              { d.refused = nil; return nil }

// TestRefusedCommitBetweenProbesStartsTheCountAgain: a node out for a refused
// write is ready again after probesToReady probe writes in a row, and a
// commit refused between them is a failure in that row. Before, only the
// probes' own refusals counted: with an I/O error that came and went, two
// probes succeeded, a commit failed, the next probe succeeded, and the node
// was ready — at once to be taken out again by the next failing commit, the
// coming and going the count is there to stop.
func TestRefusedCommitBetweenProbesStartsTheCountAgain(t *testing.T) {
	d := &flakyDisk{refused: syscall.EIO}
	g := &Gateway{Config: config.Config{DataDir: t.TempDir()}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), db: d}
	if g.writesRefused() == nil {
		t.Fatal("ready with its last commit refused")
	}
	for range probesToReady - 1 {
		g.probeDisk(d)
	}
	d.refused = syscall.EIO // a commit between the probes fails
	g.probeDisk(d)          // sees it, and probes once more
	if g.writesRefused() == nil {
		t.Fatalf("ready after %d successful probes with a commit refused after the second", probesToReady)
	}
	for range probesToReady - 1 {
		g.probeDisk(d)
	}
	if err := g.writesRefused(); err != nil {
		t.Fatalf("not ready after %d probes in a row since the last refusal: %v", probesToReady, err)
	}
}
