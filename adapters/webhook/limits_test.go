package webhook

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
)

// TestEndlessAnswerIsCutOff: the adapter reads at most maxResponseBytes of an
// answer and drains at most maxDrainBytes, then drops the connection; an
// endpoint that keeps talking cannot make the gateway read (and buffer) all it
// sends. The receiver offers far more than loopback's socket buffers hold and
// must find its connection cut before it could write it all.
func TestEndlessAnswerIsCutOff(t *testing.T) {
	const offered = 64 << 20
	done := make(chan int64, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		chunk := bytes.Repeat([]byte("A"), 64<<10)
		var n int64
		for n < offered {
			k, err := w.Write(chunk)
			n += int64(k)
			if err != nil {
				break
			}
		}
		done <- n
	}))
	t.Cleanup(srv.Close)
	a := newAdapter(t, Options{})
	_, err := a.Deliver(t.Context(), adaptertest.NewDelivery(adapters.Target{Endpoint: srv.URL, Secret: NewSecret()}))
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want a *StatusError 503", err)
	}
	select {
	case n := <-done:
		if n >= offered {
			t.Fatalf("the receiver wrote all %d bytes of its answer: the adapter read it whole", n)
		}
	case <-time.After(time.Minute): // liveness guard, not a timing assertion
		t.Fatal("the receiver's handler never ended: the adapter kept the connection")
	}
}

// TestEchoedKeyIsScrubbed: a receiver may echo the key part of the secret alone
// (its own configuration stores the base64 key without "whsec_"); the snippet
// the error keeps for the operator scrubs it as it scrubs the whole secret.
func TestEchoedKeyIsScrubbed(t *testing.T) {
	secret := NewSecret()
	key := strings.TrimPrefix(secret, SecretPrefix)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "signature does not verify under key "+key, http.StatusBadRequest)
	}))
	t.Cleanup(srv.Close)
	a := newAdapter(t, Options{})
	_, err := a.Deliver(t.Context(), adaptertest.NewDelivery(adapters.Target{Endpoint: srv.URL, Secret: secret}))
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusBadRequest || !strings.Contains(se.Snippet, "under key [secret]") {
		t.Fatalf("err = %v, want a *StatusError 400 with the key scrubbed", err)
	}
	if strings.Contains(err.Error(), key) {
		t.Fatalf("the echoed key survived into the error: %v", err)
	}
}

// TestTimeoutBoundsTheAttemptWithTheCallersClient: Options.Timeout bounds one
// attempt in addition to the caller's ctx, also when the caller brings its own
// client (which has no response header timeout of ours). The attempt ends by
// the adapter's own deadline, transient, while the caller's ctx is still live.
func TestTimeoutBoundsTheAttemptWithTheCallersClient(t *testing.T) {
	o := newOffice(t, adaptertest.ModeHang)
	a := newAdapter(t, Options{Client: &http.Client{}, Timeout: 100 * time.Millisecond})
	// The caller's deadline is only a liveness guard for a wrong adapter.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := a.Deliver(ctx, adaptertest.NewDelivery(o.Target()))
	if ctx.Err() != nil {
		t.Fatalf("the attempt ran until the caller's deadline: Options.Timeout did not bound it (%v)", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || adapters.IsPermanent(err) {
		t.Fatalf("err = %v, want a transient error wrapping DeadlineExceeded", err)
	}
}
