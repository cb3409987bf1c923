package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
)

// TestSharedFoldersEitherOrder: one office per transfer folder holds whichever
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
