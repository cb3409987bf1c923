package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/paket"
)

// TestOtherContentUnderAUsedMessageIDIsAConflict: a package whose Absender and
// NachrichtID named an earlier package of other content got the earlier
// package's 200 and receipt and was stored nowhere — a portal that reused a
// NachrichtID (a counter reset, a bug) lost a citizen's application while it read
// "accepted" (an audit, 2026-12-05). Now that is 409 conflict; the same
// application again — byte for byte, in other bytes, or built anew with another
// Erstellt after a time-out — is still the repeat it was.
func TestOtherContentUnderAUsedMessageIDIsAConflict(t *testing.T) {
	e := startPortal(t)
	ctx := context.Background()
	id := paket.NewMessageID()
	created := time.Now()
	build := func(plz string) *paket.Paket {
		p := paket.ExampleWith(e.leika, id, created)
		p.Kopf.Ort = paket.Ort{PLZ: plz}
		return p
	}
	first, err := e.client.Sign(build("01067"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.client.SubmitRaw(ctx, first)
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("first: %v %+v", err, res)
	}
	again, err := e.client.SubmitRaw(ctx, first)
	if err != nil || res.Status != http.StatusCreated || again.Status != http.StatusOK || again.SubmissionID != res.SubmissionID {
		t.Fatalf("the same bytes again: %v %+v", err, again)
	}
	// The same signed content in other bytes, as a retry built and signed anew has
	// them (an ECDSA signature differs every time; the test portal's RSA key signs
	// alike, so the bytes differ here outside the signed element): the content
	// digest, not the bytes, makes it the repeat.
	resigned, err := e.client.Sign(build("01067"))
	if err != nil {
		t.Fatal(err)
	}
	resigned = append(resigned, "\n\n"...)
	if bytes.Equal(resigned, first) {
		t.Fatal("the repeat's bytes are the first's: the check below would not reach the content digest")
	}
	if r, err := e.client.SubmitRaw(ctx, resigned); err != nil || r.Status != http.StatusOK || r.SubmissionID != res.SubmissionID {
		t.Fatalf("the same content in other bytes: %v %+v", err, r)
	}
	// Built again after a time-out: another Erstellt, the same application.
	created = created.Add(3 * time.Minute)
	rebuilt, err := e.client.Sign(build("01067"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := e.client.SubmitRaw(ctx, rebuilt); err != nil || r.Status != http.StatusOK || r.SubmissionID != res.SubmissionID {
		t.Fatalf("the same application built again with another Erstellt: %v %+v", err, r)
	}
	other, err := e.client.Sign(build("01069"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.client.SubmitRaw(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusConflict || r.Problem == nil || r.Problem.Type != problem.TypeConflict || !strings.Contains(r.Problem.Detail, "new NachrichtID") {
		t.Fatalf("another application under the used NachrichtID: %d %+v, want 409 conflict", r.Status, r.Problem)
	}
	// Three repeats answered with the first receipt; the refused one is none (it
	// was counted as one, by the store's lookup, before intake refused it).
	resp, err := http.Get(e.g.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "\namtsbote_submissions_duplicate_total 3\n") {
		t.Errorf("amtsbote_submissions_duplicate_total is not 3:\n%s", grepLines(string(metrics), "duplicate"))
	}
}
