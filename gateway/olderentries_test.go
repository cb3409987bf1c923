package gateway

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/routing"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// TestErasedCaseOfAnOlderBuildIsNotCounted: a held and a handed-over case whose
// bytes were erased by a build before the index entries said so (their value is
// empty, as every build before 2026-12-05 wrote it) stayed in the held and
// handed-over gauges after the upgrade: AmtsbotePackagesHeld and
// AmtsboteUnconfirmedForDays fired for ever (an audit). Such an entry's record is
// read; a waiting case's entry of the same kind is still counted.
func TestErasedCaseOfAnOlderBuildIsNotCounted(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		id     string
		bucket string
	}
	var entries []entry
	for i, c := range []struct {
		state  submission.State
		bucket string
		erased bool
	}{{submission.StateHeld, "held", true}, {submission.StateHandedOver, "handed_over", true}, {submission.StateHeld, "held", false}} {
		sub := storetest.NewSubmission("01a2-older-"+string(rune('a'+i)), "amt24", "m"+string(rune('a'+i)))
		sub.State = c.state
		if _, _, _, err := db.Create(context.Background(), sub, []submission.Event{{Type: submission.EventReceived}}, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
		if c.erased {
			if _, err := db.Update(sub.ID, func(x *submission.Submission) ([]submission.Event, error) {
				now := time.Now().UTC()
				x.BytesRemovedAt = &now
				return []submission.Event{{Type: submission.EventBytesRemoved}}, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		entries = append(entries, entry{sub.ID, c.bucket})
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// What an older build left in the file: the index entries with empty values.
	storetest.EditFile(t, dir, func(tx *bolt.Tx) error {
		for _, e := range entries {
			if err := tx.Bucket([]byte(e.bucket)).Put([]byte(e.id), nil); err != nil {
				return err
			}
		}
		return nil
	})
	db, err = store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	held, err := notErased(db.Get, db.Held)()
	if err != nil {
		t.Fatal(err)
	}
	handed, err := notErased(db.Get, db.HandedOver)()
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].ID != entries[2].id || len(handed) != 0 {
		t.Fatalf("held %+v, handed over %+v: want only the case that was not erased", held, handed)
	}
}

// TestConfigurationTheDirectoryDoesNotKnowIsNamed: a misspelt office id in the
// configuration ("offices.amt-upp" for amt-up), a mailbox user of an office the
// directory does not have, and a channel the office's directory entry does not
// list were accepted without a word; the real office's packages were held and
// the held alert said so a quarter of an hour later (an audit, 2026-12-05). The
// start (and a directory reload) names each; a configuration the directory
// agrees with says nothing.
func TestConfigurationTheDirectoryDoesNotKnowIsNamed(t *testing.T) {
	d, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	demo, ok := d.Office(DemoOfficeID)
	if !ok {
		t.Fatalf("the built-in directory has no %s", DemoOfficeID)
	}
	unlisted := ""
	for _, k := range []string{channel.XTA, channel.Transfer, channel.Webhook, channel.API} {
		if !slices.ContainsFunc(demo.Channels, func(c routing.Channel) bool { return c.Kind == k }) {
			unlisted = k
			break
		}
	}
	if unlisted == "" {
		t.Fatalf("%s lists every channel: %+v", DemoOfficeID, demo.Channels)
	}
	var good config.Config
	good.Offices = map[string]config.OfficeClient{DemoOfficeID: {Token: "t", Channels: map[string]config.Channel{demo.Channels[0].Kind: {}, channel.Mailbox: {}}}}
	good.Mailbox.Users = []config.MailboxUser{{Name: "anna", Office: DemoOfficeID}}
	if got := directoryMismatches(good, d); len(got) != 0 {
		t.Fatalf("a configuration the directory agrees with: %q", got)
	}
	bad := good
	bad.Offices = map[string]config.OfficeClient{"amt-upp": {Token: "t"}, DemoOfficeID: {Channels: map[string]config.Channel{unlisted: {}}}}
	bad.Mailbox.Users = []config.MailboxUser{{Name: "bert", Office: "amt-mial"}}
	got := strings.Join(directoryMismatches(bad, d), "\n")
	for _, want := range []string{`offices.amt-upp: the directory has no office "amt-upp"`, "offices." + DemoOfficeID + ".channels." + unlisted + ": the office's directory entry does not list",
		`mailbox.users: office "amt-mial" (of user bert) is not in the directory`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}
