package gateway

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/adapters/transfer"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
)

// TestTransferFolderInsideAnotherIsRefusedEitherWay: two offices whose
// transfer folders lie one inside the other are refused at start whichever
// office's folder is the outer one: the outer office's import takes the inner
// one's case folders. TestStartRefusesUnusableChannels has the inner folder
// at the office that comes later in order only; a mutation audit
// (2026-12-06) that checked one direction passed it.
func TestTransferFolderInsideAnotherIsRefusedEitherWay(t *testing.T) {
	outer := t.TempDir()
	inner := filepath.Join(outer, "o2")
	for _, d := range []string{outer, inner} {
		if err := os.MkdirAll(filepath.Join(d, transfer.LedgerDir), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, o0, o1 string }{
		{"inner folder first", inner, outer},
		{"outer folder first", outer, inner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			cfg.Listen = "127.0.0.1:0"
			cfg.Offices = map[string]config.OfficeClient{
				"o0": {Channels: map[string]config.Channel{channel.Transfer: {Endpoint: tc.o0}}},
				"o1": {Channels: map[string]config.Channel{channel.Transfer: {Endpoint: tc.o1}}},
			}
			g, err := Start(context.Background(), cfg, nil)
			if err == nil {
				_ = g.Shutdown(context.Background())
				t.Fatal("started")
			}
			if want := "offices.o0.channels.transfer.endpoint and offices.o1.channels.transfer.endpoint"; !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %q", err, want)
			}
		})
	}
}

// TestSharedFoldersEitherOrder, the same rule on sharedFolders alone (and two
// separate folders pass): one office per transfer folder holds whichever
// office is named first — the one whose folder lies inside the other's or the
// one around it. TestStartRefusesUnusableChannels names the outer folder first
// only; in the other order each import still takes the other's cases.
func TestSharedFoldersEitherOrder(t *testing.T) {
	outer := t.TempDir()
	inner := filepath.Join(outer, "o2")
	if err := os.Mkdir(inner, 0o750); err != nil {
		t.Fatal(err)
	}
	offices := map[string]config.OfficeClient{
		"a": {Channels: map[string]config.Channel{channel.Transfer: {Endpoint: outer}}},
		"b": {Channels: map[string]config.Channel{channel.Transfer: {Endpoint: inner}}},
	}
	for _, ids := range [][]string{{"a", "b"}, {"b", "a"}} {
		errs := sharedFolders(offices, ids)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "one folder, or one inside the other") {
			t.Errorf("offices in order %v: %v, want one refusal", ids, errs)
		}
	}
	apart := map[string]config.OfficeClient{
		"a": offices["a"],
		"c": {Channels: map[string]config.Channel{channel.Transfer: {Endpoint: t.TempDir()}}},
	}
	if errs := sharedFolders(apart, []string{"c", "a"}); len(errs) != 0 {
		t.Errorf("separate folders refused: %v", errs)
	}
}

// TestSharedFolderThroughAMount: one share mounted at two mount points (an
// /etc/fstab line copied for the second office without changing the share's
// name; NFS and SMB then even share one superblock), or a bind mount, gives two
// paths that no path comparison tells apart, also not through
// filepath.EvalSymlinks. The second office's check finds the .amtsbote/ the first
// one made and passes, and the first office's import takes both offices' cases —
// and confirms the other's, so its Zustellbestaetigung names an import that was
// not the responsible office's. They are one folder by their file identity
// (device and inode), and a folder inside the other by the identity of one of
// its parent folders. A bind mount plays the second mount point here.
func TestSharedFolderThroughAMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to bind-mount (make test and CI run as root)")
	}
	share := t.TempDir()
	if err := os.Mkdir(filepath.Join(share, "o2"), 0o750); err != nil {
		t.Fatal(err)
	}
	again := t.TempDir() // the second mount point of the same share
	if out, err := exec.Command("mount", "--bind", share, again).CombinedOutput(); err != nil {
		t.Fatalf("bind mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", again).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", again, err, out)
		}
	})
	for _, tc := range []struct{ name, a, b string }{
		{"one share at two mount points", share, again},
		{"the other's folder inside, seen through the second mount point", share, filepath.Join(again, "o2")},
		{"inside the other's folder, seen through the second mount point", filepath.Join(share, "o2"), again},
	} {
		offices := map[string]config.OfficeClient{
			"a": {Channels: map[string]config.Channel{channel.Transfer: {Endpoint: tc.a}}},
			"b": {Channels: map[string]config.Channel{channel.Transfer: {Endpoint: tc.b}}},
		}
		for _, ids := range [][]string{{"a", "b"}, {"b", "a"}} {
			errs := sharedFolders(offices, ids)
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), "one folder, or one inside the other") {
				t.Errorf("%s, offices in order %v: %v, want one refusal", tc.name, ids, errs)
			}
		}
	}
	apart := map[string]config.OfficeClient{
		"a": {Channels: map[string]config.Channel{channel.Transfer: {Endpoint: again}}},
		"c": {Channels: map[string]config.Channel{channel.Transfer: {Endpoint: t.TempDir()}}},
	}
	if errs := sharedFolders(apart, []string{"a", "c"}); len(errs) != 0 {
		t.Errorf("separate folders refused: %v", errs)
	}
}
