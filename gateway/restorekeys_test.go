package gateway

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/store"
)

// TestStoreWithoutItsDevPKIIsRefused: a data folder restored from a backup holds
// the store but not the development PKI (`<data_dir>/pki` is not in the archive).
// The start used to make a new development PKI beside the restored store, with a
// WARN line only: a new CA that trusts none of the portals' keys, so intake
// refused every portal, and a new gateway key whose Zustellbestaetigungen no
// portal could verify, while the portals' old trust anchors were gone for good
// from the gateway's side. The start refuses instead, names the folder, makes
// no PKI, and starts once the PKI is back (a disaster-recovery drill, 2026-12-06).
func TestStoreWithoutItsDevPKIIsRefused(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	g, err := Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, store.FileName)); err != nil {
		t.Fatalf("the first start left no store: %v", err)
	}
	pki := filepath.Join(cfg.DataDir, "pki")
	kept := filepath.Join(t.TempDir(), "pki")
	if err := os.Rename(pki, kept); err != nil { // as a restore into a new data folder leaves it
		t.Fatal(err)
	}

	g, err = Start(context.Background(), cfg, log)
	if err == nil {
		_ = g.Shutdown(context.Background())
		t.Fatal("started a store without the development PKI that signed its receipts")
	}
	for _, want := range []string{pki, store.FileName, "pki.gateway_key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not name %q: %v", want, err)
		}
	}
	if _, err := os.Stat(pki); !os.IsNotExist(err) {
		t.Fatalf("a new development PKI was made anyway: %v", err)
	}

	if err := os.Rename(kept, pki); err != nil {
		t.Fatal(err)
	}
	g, err = Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("the PKI is back, the start is still refused: %v", err)
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
