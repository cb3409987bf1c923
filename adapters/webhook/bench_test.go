package webhook

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
)

// BenchmarkDeliver is one signed POST to a loopback endpoint that answers 204: the
// gateway-side cost of a webhook attempt (JSON, two HMACs, HTTP round trip).
func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	a, err := New(Options{PublicBaseURL: testBase, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	d := adaptertest.NewDelivery(adapters.Target{Endpoint: srv.URL, Secret: NewSecret()})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Deliver(b.Context(), d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerify is the receiver's cost for one notification.
func BenchmarkVerify(b *testing.B) {
	secret := NewSecret()
	ss, _ := parseSecrets(secret)
	d := adaptertest.NewDelivery(adapters.Target{})
	body := mustJSON(b, buildNotification(testBase, d))
	now := time.Now()
	h := http.Header{}
	sign(h, ss, d.ID, now, body)
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(h, body, secret, now, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func mustJSON(b *testing.B, v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return out
}
