package pull

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
	"github.com/amtsbote/amtsbote/channel"
)

// TestHandOverWithoutIO: Deliver hands the package to the pull API, where it
// already is: Pending, naming the office's pull API, the package never opened.
// It is idempotent (at-least-once: the broker may call again), refuses after
// Close and with a cancelled ctx, and a configured address, secret or parameter
// is a permanent misconfiguration that names the field, never the secret.
func TestHandOverWithoutIO(t *testing.T) {
	a := New()
	var opened atomic.Int64
	d := adaptertest.NewDelivery(adapters.Target{Channel: channel.API})
	d.Package = adaptertest.CountingOpener(d.Package, &opened)
	for i := range d.Attachments {
		d.Attachments[i].Open = func(context.Context) (io.ReadCloser, error) {
			opened.Add(1)
			return nil, errors.New("not to be opened")
		}
	}
	for range 2 {
		c, err := a.Deliver(context.Background(), d)
		if err != nil || !c.Pending || c.Receiver != "pull API of office "+d.OfficeID || c.At.IsZero() {
			t.Fatalf("Deliver: %+v %v", c, err)
		}
	}
	if n := opened.Load(); n != 0 {
		t.Errorf("the package or an attachment was opened %d times", n)
	}
	if a.Channel() != channel.API {
		t.Errorf("channel %q", a.Channel())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Deliver(ctx, d); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}

	for _, c := range []struct {
		t     adapters.Target
		field string
	}{
		{adapters.Target{Channel: channel.API, Endpoint: "https://fachverfahren.example/hook"}, "endpoint"},
		{adapters.Target{Channel: channel.API, Secret: "s3cret-value"}, "secret"},
		{adapters.Target{Channel: channel.API, Params: map[string]string{"mode": "push"}}, "params"},
	} {
		var te *adapters.TargetError
		if err := a.CheckTarget(c.t); !errors.As(err, &te) || te.Field != c.field {
			t.Errorf("CheckTarget(%v): %v, want a TargetError for %s", c.t, err, c.field)
		}
		bad := d
		bad.Target = c.t
		_, err := a.Deliver(context.Background(), bad)
		var pe *adapters.PermanentError
		if !errors.As(err, &pe) || strings.Contains(err.Error(), "s3cret-value") {
			t.Errorf("Deliver to %v: %v, want a permanent error without the secret", c.t, err)
		}
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deliver(context.Background(), d); !errors.Is(err, adapters.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
