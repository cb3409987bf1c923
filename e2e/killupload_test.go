package e2e

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
)

// gatedReader passes r through until after bytes, then waits for gate (or ctx).
type gatedReader struct {
	ctx   context.Context
	r     io.Reader
	after int64
	gate  chan struct{}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.after <= 0 {
		select {
		case <-g.gate:
		case <-g.ctx.Done():
			return 0, g.ctx.Err()
		}
		return g.r.Read(p)
	}
	if int64(len(p)) > g.after {
		p = p[:g.after]
	}
	n, err := g.r.Read(p)
	g.after -= int64(n)
	return n, err
}

func (g *gatedReader) Close() error { return nil }

// TestKillDuringUploadLeavesNothing: the gateway is killed with SIGKILL while an
// attachment streams in. Nothing was acknowledged, so nothing of it may stay: the
// next start removes the upload's temporary file (a 2 GiB building plan would
// otherwise fill the disk one crash at a time), and the portal's retry of the same
// package is accepted.
func TestKillDuringUploadLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	env := []string{"AMTSBOTE_LISTEN=127.0.0.1:0"}
	p := serve(t, dir, env)
	client := portalClient(t, dataDir, p.url)
	const size, seed = 48 << 20, 7
	a, part, err := portal.StreamedAnlage("plan", "plan.bin", "application/octet-stream",
		func() (io.ReadCloser, error) { return newPRNG(seed, size), nil })
	if err != nil {
		t.Fatal(err)
	}
	pk := paket.ExampleWith(serviceKey(t, "Gewerbe anmelden"), paket.NewMessageID(), time.Now())
	pk.Kopf.Ort = paket.Ort{PLZ: "01067"}
	pk.Anlagen = append(pk.Anlagen, a)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gated := part
	gated.Open = func() (io.ReadCloser, error) {
		return &gatedReader{ctx: ctx, r: newPRNG(seed, size), after: 16 << 20, gate: make(chan struct{})}, nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := client.SubmitParts(ctx, pk, []portal.Part{gated})
		done <- err
	}()

	// Wait until the gateway is writing the part into its temporary file.
	temps := func() (n int, bytes int64) {
		_ = filepath.WalkDir(filepath.Join(dataDir, "blobs"), func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".tmp-") {
				if info, err := d.Info(); err == nil {
					n, bytes = n+1, bytes+info.Size()
				}
			}
			return nil
		})
		return n, bytes
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if n, b := temps(); n > 0 && b >= 8<<20 {
			break
		}
		if time.Now().After(deadline) {
			n, b := temps()
			t.Fatalf("no upload in progress after 60 s: %d temporary files, %d bytes\n%s", n, b, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill9(t)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the upload to a killed gateway succeeded")
	}
	if n, b := temps(); n == 0 {
		t.Fatalf("the kill left no temporary file (%d bytes): the test did not kill during the upload", b)
	}

	p = serve(t, dir, env)
	if n, b := temps(); n != 0 {
		t.Fatalf("after the restart %d temporary files (%d bytes) are left\n%s", n, b, p.stderr.String())
	}
	if logs := p.stdout.String() + p.stderr.String(); !strings.Contains(logs, "removed temporary blob files") {
		t.Errorf("the restart did not say what it removed:\n%s", logs)
	}
	// The portal retries the same package (it never got an answer): accepted now.
	res, err := portalClient(t, dataDir, p.url).SubmitParts(context.Background(), pk, []portal.Part{part})
	if err != nil || res.Status != 201 {
		t.Fatalf("retry after the restart: %v %+v", err, res)
	}
	blob := filepath.Join(dataDir, "blobs", a.SHA256[:2], a.SHA256)
	if info, err := os.Stat(blob); err != nil || info.Size() != size {
		t.Fatalf("blob after the retry: %v %v", info, err)
	}
}
