package transfer

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/amtsbote/amtsbote/adapters"
)

// TestHandedOverLooksWithoutAnAttempt: HandedOver answers what the delivery's
// next attempt would find — for a case a clerk took over in the web mailbox,
// which gets no next attempt — and writes nothing. A crash after the rename
// (the pending record, no temporary folder) is a hand-over of the case folder
// in the share; a crash before it (the temporary folder still there) and no
// record at all are none; a recorded hand-over is one; an unmounted share
// (no ledger folder) is an error, not a "none". The ledger and the folders
// stay as they were: the next look, or the office's IT, sees the same.
func TestHandedOverLooksWithoutAnAttempt(t *testing.T) {
	t.Run("crash after the rename", func(t *testing.T) {
		dir := officeFolder(t)
		runChildAndKill(t, "after", dir)
		d := crashDelivery(dir)
		got := cases(t, dir)
		before := ledgerBytes(t, dir, d)
		c, ok, err := newAdapter(t).HandedOver(t.Context(), d)
		if err != nil || !ok || len(got) != 1 || c.Reference != got[0] || !c.Pending || c.Receiver != "transfer folder "+dir {
			t.Fatalf("HandedOver after a crash after the rename: %+v %v %v, case folders %v", c, ok, err, got)
		}
		if after := ledgerBytes(t, dir, d); !bytes.Equal(after, before) || len(cases(t, dir)) != 1 {
			t.Errorf("the look changed the share: ledger %s (was %s), case folders %v", after, before, cases(t, dir))
		}
	})
	t.Run("crash before the rename", func(t *testing.T) {
		dir := officeFolder(t)
		runChildAndKill(t, "before", dir)
		d := crashDelivery(dir)
		before := ledgerBytes(t, dir, d)
		if c, ok, err := newAdapter(t).HandedOver(t.Context(), d); ok || err != nil {
			t.Fatalf("HandedOver after a crash before the rename: %+v %v %v, want none", c, ok, err)
		}
		if after := ledgerBytes(t, dir, d); !bytes.Equal(after, before) || len(temps(t, dir)) != 1 {
			t.Errorf("the look changed the share: ledger %s (was %s), temporary folders %v", after, before, temps(t, dir))
		}
	})
	t.Run("recorded, and none", func(t *testing.T) {
		dir := officeFolder(t)
		a := newAdapter(t)
		d := realDelivery(dir, "dlv-looked-at", "4c1f0e52-0000-4000-8000-000000000070")
		if c, ok, err := a.HandedOver(t.Context(), d); ok || err != nil {
			t.Fatalf("HandedOver before any attempt: %+v %v %v, want none", c, ok, err)
		}
		w, err := a.Deliver(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		if c, ok, err := a.HandedOver(t.Context(), d); !ok || err != nil || c.Reference != w.Reference || c.Receiver != w.Receiver || !c.At.Equal(w.At) || !c.Pending {
			t.Fatalf("HandedOver of a recorded hand-over: %+v %v %v, want %+v", c, ok, err, w)
		}
	})
	t.Run("unmounted", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "mount-point")
		mustMkdir(t, dir)
		d := realDelivery(dir, "dlv-unmounted", "4c1f0e52-0000-4000-8000-000000000071")
		if c, ok, err := newAdapter(t).HandedOver(t.Context(), d); ok || err == nil || adapters.IsPermanent(err) {
			t.Fatalf("HandedOver in a bare mount point: %+v %v %v, want a transient error", c, ok, err)
		}
	})
}

// ledgerBytes is the ledger record of d as it is on disk.
func ledgerBytes(t *testing.T, dir string, d adapters.Delivery) []byte {
	t.Helper()
	b, err := os.ReadFile(ledgerPath(dir, fileID(d.ID)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
