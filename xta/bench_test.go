package xta

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// benchPost sends one request and reads the whole answer, failing on a fault.
func benchPost(b *testing.B, c *http.Client, url, ct string, body []byte) int64 {
	resp, err := c.Post(url, ct, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("HTTP %d, %v", resp.StatusCode, err)
	}
	return n
}

func report(b *testing.B, start time.Time) {
	el := time.Since(start)
	b.ReportMetric(float64(el.Microseconds())/1000/float64(b.N), "ms/op")
	b.ReportMetric(float64(b.N)/el.Seconds(), "ops/s")
}

// BenchmarkGetMessage1MB: getMessage of a 1 MB package over HTTPS on loopback with
// client certificates and a real broker behind the desk (bbolt, blob files).
func BenchmarkGetMessage1MB(b *testing.B) {
	for _, tc := range []struct {
		name      string
		threshold int64
	}{{"mtom", 64 << 10}, {"inline-base64", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			e := startEnv(b, func(o *Options) { o.MTOMThreshold = tc.threshold })
			pkg := pkgBytes(1 << 20)
			sub := e.submit(b, officeA, pkg)
			c := e.client("office-a")
			req := soapUIRequest(xtaA, "", fetchBody(MessageID("amtsbote", sub.ID)))
			url, ct := e.base+PathRecipient, actionCT(portRecipient, "getMessage")
			benchPost(b, c, url, ct, req) // warm the connection
			b.SetBytes(int64(len(pkg)))
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				benchPost(b, c, url, ct, req)
			}
			report(b, start)
		})
	}
}

// BenchmarkOperations: latency of each operation (small messages) over HTTPS.
func BenchmarkOperations(b *testing.B) {
	e := startEnv(b, nil)
	sub := e.submit(b, officeA, pkgBytes(4000))
	for range 20 {
		e.submit(b, officeA, pkgBytes(4000))
	}
	xtaID := MessageID("amtsbote", sub.ID)
	c := e.client("office-a")
	rec, snd, tb := e.base+PathRecipient, e.base+PathSender, e.base+PathTransportBase
	// The case must be delivered before replies are accepted.
	benchPost(b, c, rec, actionCT(portRecipient, "close"), soapUIRequest(xtaA, "", fetchBody(xtaID)))
	bescheid := base64.StdEncoding.EncodeToString([]byte(`<Bescheid>Genehmigt</Bescheid>`))
	replyID := NewMessageID("bench")
	ops := []struct {
		name, url, ct string
		body          []byte
	}{
		{"getStatusList-20", rec, actionCT(portRecipient, "getStatusList"), soapUIRequest(xtaA, "", statusListBody(false, 100, zeroTime, zeroTime))},
		{"getMessage-4KB", rec, actionCT(portRecipient, "getMessage"), soapUIRequest(xtaA, "", fetchBody(xtaID))},
		{"close-repeat", rec, actionCT(portRecipient, "close"), soapUIRequest(xtaA, "", fetchBody(xtaID))},
		{"createMessageID", snd, actionCT(portSender, "createMessageID"), soapUIRequest(xtaA, "", "")},
		{"lookupService", snd, actionCT(portSender, "lookupService"), soapUIRequest(xtaA, "", `<ns:LookupQuery><ns:LookupService><ns:Reader><ns:Identifier>`+gatewayID+`</ns:Identifier></ns:Reader></ns:LookupService></ns:LookupQuery>`)},
		{"sendMessage-repeat", snd, actionCT(portSender, "sendMessage"), soapUIRequest(xtaA, replyHeader(replyID, xtaA, xtaID, "Bescheid"), `<ns:ContentContainer><ns:Message id="m">`+bescheid+`</ns:Message></ns:ContentContainer>`)},
		{"checkAccountActive", tb, actionCT(portTransportBase, "checkAccountActive"), soapUIRequest(xtaA, "", "")},
		{"getTransportReport", tb, actionCT(portTransportBase, "getTransportReport"), soapUIRequest(xtaA, "", `<ns:XTAMessageID id="q">`+xtaID+`</ns:XTAMessageID>`)},
	}
	for _, op := range ops {
		b.Run(op.name, func(b *testing.B) {
			benchPost(b, c, op.url, op.ct, op.body)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				benchPost(b, c, op.url, op.ct, op.body)
			}
			report(b, start)
		})
	}
}

// BenchmarkGetMessageWithBacklog: getMessage of one message while 1,000 wait in
// the office's box and 1,000 in another office's. MessagesPending is counted on
// every call; it read every waiting record of the gateway until the store's
// waiting entries named the office (docs/performance.md, "XTA with a backlog").
func BenchmarkGetMessageWithBacklog(b *testing.B) {
	e := startEnv(b, nil)
	var ids []string
	for range 1000 {
		ids = append(ids, e.receive(b, officeA, pkgBytes(2000)))
		e.receive(b, officeB, pkgBytes(2000))
	}
	sub := e.wait(b, ids[len(ids)-1], submission.StateHandedOver)
	for _, id := range ids {
		e.wait(b, id, submission.StateHandedOver)
	}
	c := e.client("office-a")
	req := soapUIRequest(xtaA, "", fetchBody(MessageID("amtsbote", sub.ID)))
	url, ct := e.base+PathRecipient, actionCT(portRecipient, "getMessage")
	benchPost(b, c, url, ct, req)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		benchPost(b, c, url, ct, req)
	}
	report(b, start)
}
