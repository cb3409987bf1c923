package portal_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"testing"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/wire"
)

// TestLargeReplyIsReadWhole: an office's reply may have up to 64 MiB (the
// office API takes one up to limits.max_body_bytes, 32 MiB by default), and
// Reply handed the portal its first 16 MiB without an error — a Bescheid cut
// off, whose size and sha256 differ from what the status lists.
func TestLargeReplyIsReadWhole(t *testing.T) {
	const officeToken = "office-token"
	g, pki := startGateway(t, func(c *config.Config) {
		c.Offices = map[string]config.OfficeClient{gateway.DemoOfficeID: {Token: officeToken}}
	})
	c := &portal.Client{BaseURL: g.URL(), Signer: pki.Portal.Signer, Token: "portal-token"}
	p := paket.Example(gewerbe(t).Key)
	p.Kopf.Ort = paket.Ort{PLZ: "01067"}
	ctx := context.Background()
	res, err := c.Submit(ctx, p)
	if err != nil || !res.Accepted() {
		t.Fatalf("submit: %v %+v", err, res)
	}
	// The office takes the package: only then may it answer.
	req, _ := http.NewRequest(http.MethodGet, g.URL()+wire.OfficePackagePath(res.SubmissionID), nil)
	req.Header.Set("Authorization", "Bearer "+officeToken)
	pkg, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, pkg.Body)
	_ = pkg.Body.Close()
	if pkg.StatusCode != http.StatusOK {
		t.Fatalf("the office's package: %d", pkg.StatusCode)
	}
	big := make([]byte, 20<<20)
	_, _ = rand.Read(big)
	rep, err := g.Broker.Reply(ctx, gateway.DemoOfficeID, res.SubmissionID, broker.ReplyIn{
		Kind: "Bescheid", ContentType: "application/pdf", Content: big, Actor: "test", Channel: "api"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx, res.SubmissionID)
	if err != nil || len(st.Replies) != 1 || st.Replies[0].ID != rep.ID {
		t.Fatalf("status: %v %+v", err, st)
	}
	got, err := c.Reply(ctx, res.SubmissionID, rep.ID)
	sum := sha256.Sum256(got)
	if err != nil || int64(len(got)) != st.Replies[0].Size || hex.EncodeToString(sum[:]) != st.Replies[0].SHA256 || !bytes.Equal(got, big) {
		t.Fatalf("Reply: %d bytes (%v), want the %d bytes of sha256 %s the status lists", len(got), err, st.Replies[0].Size, st.Replies[0].SHA256)
	}
}
