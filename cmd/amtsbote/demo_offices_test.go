package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
)

// TestDemoChannelsMakeTheirDataFolder: `amtsbote demo -channel mailbox -data DIR`
// with a DIR that did not exist yet failed at once (the directory overlay was
// written before anything made the folder), while the webhook and transfer demos
// made it (an audit, 2026-12-05).
func TestDemoChannelsMakeTheirDataFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet")
	e := &demoEnv{dataDir: dir, cfg: &config.Config{}}
	if err := useDemoChannels(e, channel.Mailbox); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "demo-directory.yaml")); err != nil || len(e.cfg.Directory.Files) != 1 {
		t.Fatalf("overlay: %v, files %v", err, e.cfg.Directory.Files)
	}
}
