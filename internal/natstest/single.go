package natstest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// StartSingle starts one standalone nats-server with JetStream (no cluster block:
// a one-node "cluster" would wait for routes forever). It is a Cluster of one, so
// Kill, Restart and URLs work as for a cluster; the store folder survives a kill.
func StartSingle(tb testing.TB) *Cluster { return StartSingleStore(tb, "1GB") }

// StartSingleStore is StartSingle with another max_file_store (e.g. "3GB" for a
// test that stores an attachment of gigabytes).
func StartSingleStore(tb testing.TB, maxFileStore string) *Cluster {
	tb.Helper()
	bin := Binary(tb)
	dir := filepath.Join(tb.TempDir(), "n1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	port := FreePorts(tb, 1)[0]
	conf := filepath.Join(dir, "nats.conf")
	cfg := fmt.Sprintf("server_name: n1\nlisten: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n  max_memory_store: 64MB\n  max_file_store: %s\n}\n", port, dir, maxFileStore)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{bin: bin, tb: tb}
	c.Servers = append(c.Servers, &Server{Name: "n1", ClientURL: fmt.Sprintf("nats://127.0.0.1:%d", port), conf: conf, dir: dir})
	tb.Cleanup(func() { c.Servers[0].kill() })
	if err := c.start(c.Servers[0]); err != nil {
		tb.Fatal(err)
	}
	c.WaitReady(tb, 30*time.Second)
	return c
}
