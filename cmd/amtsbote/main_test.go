package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpExitsZero: `amtsbote -h` exited 0 and `amtsbote <command> -h` 2, as if
// asking for a command's flags were a mistake (a script that checks the exit code
// of `amtsbote gc -h` took it for one). Every command and verb now exits 0 on -h,
// -help and --help, having printed its usage; a flag it does not know still
// exits 2.
func TestHelpExitsZero(t *testing.T) {
	t.Setenv("AMTSBOTE_CONFIG", "")
	t.Setenv("AMTSBOTE_ADMIN_TOKEN", "") // admin's verbs tell their flags without a token
	ctx := context.Background()
	for _, cmd := range []string{"serve", "demo", "submit", "lookup", "directory", "directory check", "directory build", "verify",
		"keys", "keys init", "gc", "admin", "admin held", "admin show", "admin replay", "admin erase", "admin list",
		"store", "store verify", "store export", "store import", "store backup", "store restore", "mailbox", "bench"} {
		for _, h := range []string{"-h", "--help"} {
			var o, e bytes.Buffer
			args := append(strings.Fields(cmd), h)
			if rc := run(ctx, args, &o, &e); rc != 0 || !strings.Contains(strings.ToLower(e.String()), "usage") {
				t.Errorf("amtsbote %s %s: rc %d\n%s%s", cmd, h, rc, o.String(), e.String())
			}
		}
	}
	for _, args := range [][]string{{"gc", "-no-such-flag"}, {"store"}, {"keys"}, {"verify", "-no-such-flag"}, {"lookup", "-no-such-flag"}} {
		var o, e bytes.Buffer
		if rc := run(ctx, args, &o, &e); rc != 2 {
			t.Errorf("amtsbote %q: rc %d, want 2\n%s%s", args, rc, o.String(), e.String())
		}
	}
}
