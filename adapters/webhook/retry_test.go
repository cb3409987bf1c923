package webhook

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/internal/testenv"
)

// TestRetryAfterReachesTheBroker: 429 and 503 carry the receiver's Retry-After in the
// StatusError, read through adapters.RetryAfter; other answers carry none.
func TestRetryAfterReachesTheBroker(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		code   int
		header string
		want   time.Duration
		ok     bool
	}{
		{429, "30", 30 * time.Second, true},
		{503, now.Add(2 * time.Hour).Format(http.TimeFormat), 2 * time.Hour, true},
		{503, "", 0, false},
		{500, "garbage", 0, false},
	}
	a := newAdapter(t, Options{Now: func() time.Time { return now }})
	for _, c := range cases {
		t.Run(fmt.Sprint(c.code, c.header), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.header != "" {
					w.Header().Set("Retry-After", c.header)
				}
				w.WriteHeader(c.code)
			}))
			t.Cleanup(srv.Close)
			_, err := a.Deliver(t.Context(), adaptertest.NewDelivery(adapters.Target{Channel: Channel, Endpoint: srv.URL, Secret: NewSecret()}))
			if err == nil || adapters.IsPermanent(err) {
				t.Fatalf("err = %v, want transient", err)
			}
			got, ok := adapters.RetryAfter(err)
			if got != c.want || ok != c.ok {
				t.Errorf("RetryAfter = %s, %v; want %s, %v", got, ok, c.want, c.ok)
			}
			if adapters.Gone(err) {
				t.Error("a transient answer says the endpoint is gone")
			}
		})
	}
}

// TestGoneIsItsOwnClass: 410 is permanent and says the endpoint is gone (the broker
// disables the channel); 404 is permanent but not gone.
func TestGoneIsItsOwnClass(t *testing.T) {
	a := newAdapter(t, Options{})
	for _, c := range []struct {
		code int
		gone bool
	}{{410, true}, {404, false}, {400, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(c.code) }))
		_, err := a.Deliver(t.Context(), adaptertest.NewDelivery(adapters.Target{Channel: Channel, Endpoint: srv.URL, Secret: NewSecret()}))
		srv.Close()
		if !adapters.IsPermanent(err) || adapters.Gone(err) != c.gone {
			t.Errorf("HTTP %d: permanent %v, gone %v; want permanent, gone %v", c.code, adapters.IsPermanent(err), adapters.Gone(err), c.gone)
		}
		if c.gone && adapters.PublicReason(err) != "receiver answered HTTP 410" {
			t.Errorf("public reason %q", adapters.PublicReason(err))
		}
	}
}

// TestFailedAttemptIsTheBrokersToLog: the broker logs every failed attempt with
// its cause and the next try; the adapter's own WARN said it a second time. At
// info the adapter says nothing about an attempt, at debug it gives its details.
func TestFailedAttemptIsTheBrokersToLog(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	t.Cleanup(srv.Close)
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var logs testenv.Buffer
		a := newAdapter(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: level}))})
		if _, err := a.Deliver(t.Context(), adaptertest.NewDelivery(adapters.Target{Channel: Channel, Endpoint: srv.URL, Secret: NewSecret()})); err == nil {
			t.Fatal("503 delivered")
		}
		if got := strings.Contains(logs.String(), "webhook delivery failed"); got != (level == slog.LevelDebug) {
			t.Errorf("log level %s: %q", level, logs.String())
		}
	}
}

// TestNotificationCarriesNoFileNames: an attachment's file name is the citizen's
// choice and may name them ("ausweis_erika_mustermann.pdf"); the notification
// discloses ids only, so it carries ids, types, sizes and digests, never names.
func TestNotificationCarriesNoFileNames(t *testing.T) {
	d := adaptertest.NewDelivery(adapters.Target{Channel: Channel})
	d.Attachments = []adapters.Attachment{{ID: "a1", FileName: "ausweis_erika_mustermann.pdf", MimeType: "application/pdf", Size: 3, SHA256: "ab"}}
	b, err := json.Marshal(buildNotification("https://gw.example", d))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "mustermann") || !strings.Contains(string(b), `"id":"a1"`) {
		t.Fatalf("notification: %s", b)
	}
}
