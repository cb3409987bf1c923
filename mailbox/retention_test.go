package mailbox

import (
	"context"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/submission"
)

// TestForgetsCasesTheRetentionDeleted: once the gateway's retention deleted a
// case's record, mailbox.db forgets it too — its arrival and who opened it (a
// clerk's name). Before, both stayed in mailbox.db for good, long after the
// record they belong to; a case still in the store is kept.
func TestForgetsCasesTheRetentionDeleted(t *testing.T) {
	e := startBrokerEnv(t, t.TempDir(), Options{PublicURL: "https://gateway.example/postfach/"})
	ctx := context.Background()
	old := e.receiveHandedOver(t, officeDresden)
	anna := e.login(t, "anna", "anna-passwort")
	anna.get("/postfach/s/" + old.ID) // the opening: the pickup, with anna's name
	e.waitState(t, old.ID, submission.StateDelivered)
	if _, err := e.b.Decide(ctx, officeDresden, old.ID, broker.Decision{Outcome: broker.OutcomeAccepted, Actor: "anna", Channel: "mailbox"}); err != nil {
		t.Fatal(err)
	}
	young := e.receiveExample(t, officeDresden)
	e.waitState(t, young.ID, submission.StateHandedOver)
	if o, ok, err := e.mb.db.opened(old.ID); err != nil || !ok || o.User != "anna" {
		t.Fatalf("opening before: %+v %v %v", o, ok, err)
	}

	r := broker.Retention{PackageBytes: 90 * 24 * time.Hour, Records: 10 * 365 * 24 * time.Hour}
	if rep, err := e.b.GC(ctx, time.Now().Add(11*365*24*time.Hour), r); err != nil || rep.RecordsDeleted != 1 {
		t.Fatalf("retention: %+v %v", rep, err)
	}
	n, err := e.mb.forgetGone(ctx)
	if err != nil || n != 1 {
		t.Fatalf("forgetGone: %d %v, want the deleted case", n, err)
	}
	cases, err := e.mb.db.cases()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cases[old.ID]; ok {
		t.Fatalf("mailbox.db still keeps the deleted case: %v", cases)
	}
	if _, ok, _ := e.mb.db.opened(old.ID); ok {
		t.Fatal("mailbox.db still names who opened the deleted case")
	}
	if _, ok := cases[young.ID]; !ok {
		t.Fatalf("the case still in the store was forgotten: %v", cases)
	}
}
