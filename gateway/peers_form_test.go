package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/submission"
)

// TestPeerFormWithAnAnlageElementIsForwarded: the peer channel looked for the
// attachments a package references with "//Anlage[@Referenz]" over the whole
// package — the portal's form data too, whose elements live in the form's own
// namespace and may well be called Anlage with a Referenz (a form listing its
// enclosures). Such a package, taken with a 201, could never be forwarded: the
// form's element named no stored attachment, the channel failed for good, and the
// application was held at the portal's gateway. Only the package's own Anlagen
// are attachments: the form's element goes along as form data, the package's
// attachment by reference as a part.
func TestPeerFormWithAnAnlageElementIsForwarded(t *testing.T) {
	sn, by := snAndBy(t)

	p := paket.ExampleWith(fedService, paket.NewMessageID(), time.Now().UTC().Truncate(time.Second))
	p.Kopf.Ort = paket.Ort{ARS: fedMuenchenARS}
	form := p.Fachdaten.XML[0]
	enclosure := form.CreateElement("m:Anlage")
	enclosure.CreateAttr("Nr", "1")
	enclosure.CreateAttr("Referenz", "cid:lageplan@buergerportal.example")
	enclosure.SetText("Lageplan (wird nachgereicht)")
	// And one attachment by reference, which does travel as a part.
	plan := bytes.Repeat([]byte("Bauplan "), 100<<10)
	an, part, err := portal.StreamedAnlage("bauplan", "bauplan.pdf", "application/pdf", func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(plan)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Anlagen = append(p.Anlagen, an)
	res, err := sn.portal(t).SubmitParts(context.Background(), p, []portal.Part{part})
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit at sn: %v %+v", err, res)
	}
	waitFor(t, "the package to leave sn", func() bool {
		s := sn.sub(t, res.SubmissionID)
		return s.State != submission.StateQueued && s.State != submission.StateRetrying
	})
	if s := sn.sub(t, res.SubmissionID); s.State == submission.StateHeld {
		evs, _ := sn.g.Broker.Log(res.SubmissionID)
		for _, e := range evs {
			t.Logf("%s %s %s", e.Type, e.Channel, e.Detail)
		}
		t.Fatal("held at sn instead of forwarded")
	}
	sn.waitState(t, res.SubmissionID, submission.StateDelivered)
	at, err := by.g.Broker.FindMessage(p.Kopf.Absender, p.Kopf.NachrichtID)
	if err != nil || len(at.Attachments) != 2 {
		t.Fatalf("by holds %+v (%v), want the package with its 2 attachments", at, err)
	}
}
