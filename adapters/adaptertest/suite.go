package adaptertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
)

// watchdog bounds every wait of the suite. It is a liveness guard (a hung Deliver must
// fail the test instead of the whole run), not a timing assertion: a correct adapter
// is far below it even on a loaded CI machine.
const watchdog = 60 * time.Second

// Run runs the conformance suite against the channel h builds. Call it from a test of
// the adapter's own package, not in parallel with other tests of that package (the
// goroutine-leak case counts goroutines of the whole process).
func Run(t *testing.T, h Harness) {
	t.Helper()
	s := &suite{h: h, f: h.Features(), cap: &capture{}}
	if s.f.Concurrency <= 0 {
		s.f.Concurrency = 32
	}
	s.logger = slog.New(slog.NewTextHandler(s.cap, &slog.HandlerOptions{Level: slog.LevelDebug}))

	t.Run("AcceptedDeliverySeenAsSent", s.testAccept)
	t.Run("StableDeliveryID", s.testStableID)
	t.Run("LateConfirmation", s.testLateConfirmation)
	t.Run("Withdrawal", s.testWithdrawal)
	t.Run("TransientFailure", s.testTransient)
	t.Run("PermanentFailure", s.testPermanent)
	t.Run("AlreadyCancelledContext", s.testAlreadyCancelled)
	if !s.f.NoHang {
		t.Run("CancelWhileReceiverHangs", s.testCancelHang)
		t.Run("DeadlineWhileReceiverHangs", s.testDeadlineHang)
		t.Run("CloseWaitsForRunningDeliver", s.testCloseWaits)
	}
	t.Run("ConcurrentDeliveries", s.testConcurrent)
	t.Run("CloseDuringDeliveries", s.testCloseDuring)
	t.Run("DeliverAfterClose", s.testAfterClose)
	t.Run("CloseIdempotent", s.testCloseIdempotent)
	s.testNoGoroutineLeak(t)
	t.Run("SecretNeverInErrorsOrLogs", s.testSecretNeverLeaks)
}

type suite struct {
	h      Harness
	f      Features
	cap    *capture
	logger *slog.Logger
}

// capture collects every log line and error the suite sees, and every secret it has
// handed out, so the last case can prove none of the secrets escaped.
type capture struct {
	mu      sync.Mutex
	logs    bytes.Buffer
	errs    []string
	secrets []string
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.Write(p)
}

func (c *capture) addErr(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
}

func (c *capture) addSecret(s string) {
	if s == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.secrets = append(c.secrets, s)
}

// adapter builds an adapter that the test closes on cleanup (Close is idempotent, so
// cases that close it themselves are fine).
func (s *suite) adapter(t *testing.T) adapters.Adapter {
	t.Helper()
	a := s.h.NewAdapter(t, s.logger)
	if a == nil {
		t.Fatal("harness returned a nil adapter")
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

func (s *suite) receiver(t *testing.T, m Mode) Receiver {
	t.Helper()
	r := s.h.NewReceiver(t, m)
	if r == nil {
		t.Fatalf("harness returned a nil %s receiver", m)
	}
	s.cap.addSecret(r.Target().Secret)
	return r
}

func (s *suite) delivery(r Receiver) adapters.Delivery {
	d := NewDelivery(r.Target())
	if p, ok := s.h.(DeliveryPreparer); ok {
		p.PrepareDelivery(&d)
	}
	return d
}

type result struct {
	c   adapters.Confirmation
	err error
}

// start runs Deliver in its own goroutine; the caller collects with s.await.
func (s *suite) start(ctx context.Context, a adapters.Adapter, d adapters.Delivery) <-chan result {
	ch := make(chan result, 1)
	go func() {
		c, err := a.Deliver(ctx, d)
		s.cap.addErr(err)
		ch <- result{c, err}
	}()
	return ch
}

func (s *suite) await(t *testing.T, ch <-chan result) (adapters.Confirmation, error) {
	t.Helper()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-time.After(watchdog):
		t.Fatalf("Deliver did not return within %v", watchdog)
		return adapters.Confirmation{}, nil
	}
}

func (s *suite) deliver(t *testing.T, ctx context.Context, a adapters.Adapter, d adapters.Delivery) (adapters.Confirmation, error) {
	t.Helper()
	return s.await(t, s.start(ctx, a, d))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(watchdog)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting (%v) for %s", watchdog, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkNoProblems(t *testing.T, r Receiver) {
	t.Helper()
	for i, got := range r.Received() {
		if got.Problem != "" {
			t.Errorf("receiver found attempt %d defective: %s", i+1, got.Problem)
		}
	}
}

func (s *suite) testAccept(t *testing.T) {
	a := s.adapter(t)
	if a.Channel() == "" {
		t.Error("Channel() is empty")
	}
	r := s.receiver(t, ModeAccept)
	if ch := r.Target().Channel; ch != "" && ch != a.Channel() {
		t.Errorf("harness target channel %q, adapter channel %q", ch, a.Channel())
	}
	d := s.delivery(r)
	c, err := s.deliver(t, t.Context(), a, d)
	if err != nil {
		t.Fatalf("Deliver to an accepting receiver: %v", err)
	}
	if c.Receiver == "" {
		t.Error("Confirmation.Receiver is empty: the broker records who took the package over")
	}
	if c.At.IsZero() {
		t.Error("Confirmation.At is zero")
	}
	got := r.Received()
	if len(got) != 1 {
		t.Fatalf("receiver saw %d attempts, want exactly 1 (one attempt per call)", len(got))
	}
	checkNoProblems(t, r)
	g := got[0]
	if g.DeliveryID != d.ID {
		t.Errorf("receiver saw delivery id %q, want %q", g.DeliveryID, d.ID)
	}
	if g.SubmissionID != d.SubmissionID {
		t.Errorf("receiver saw submission id %q, want %q", g.SubmissionID, d.SubmissionID)
	}
	if g.PackageSHA256 != "" && g.PackageSHA256 != d.PackageSHA256 {
		t.Errorf("receiver saw package digest %s, want %s", g.PackageSHA256, d.PackageSHA256)
	}
	if s.f.CarriesPackage {
		want, err := ReadAll(t.Context(), d.Package)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(g.Package, want) {
			t.Errorf("receiver got %d package bytes (sha256 %s), want the exact %d bytes (sha256 %s)",
				len(g.Package), SHA256Hex(g.Package), len(want), d.PackageSHA256)
		}
	}
	for _, at := range d.Attachments {
		if sum, ok := g.AttachmentSHA256[at.ID]; ok && sum != at.SHA256 {
			t.Errorf("attachment %s: receiver saw digest %s, want %s", at.ID, sum, at.SHA256)
		}
		if !s.f.CarriesAttachments {
			continue
		}
		want, err := ReadAll(t.Context(), at.Open)
		if err != nil {
			t.Fatal(err)
		}
		if b, ok := g.Attachments[at.ID]; !ok || !bytes.Equal(b, want) {
			t.Errorf("attachment %s: receiver got %d bytes (present %v), want the exact %d bytes", at.ID, len(b), ok, len(want))
		}
	}
}

func (s *suite) testStableID(t *testing.T) {
	a := s.adapter(t)
	failing := s.receiver(t, ModeTransient)
	ok := s.receiver(t, ModeAccept)
	d := s.delivery(failing)
	if _, err := s.deliver(t, t.Context(), a, d); err == nil {
		t.Fatal("Deliver to a failing receiver returned nil")
	}
	// The broker retries the same Delivery with a higher Attempt, possibly on another
	// target; at-least-once means the receiver may see it twice.
	d.Target = ok.Target()
	for attempt := 2; attempt <= 3; attempt++ {
		d.Attempt = attempt
		if _, err := s.deliver(t, t.Context(), a, d); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	other := s.delivery(ok)
	if _, err := s.deliver(t, t.Context(), a, other); err != nil {
		t.Fatal(err)
	}
	checkNoProblems(t, failing)
	checkNoProblems(t, ok)
	seen := append(failing.Received(), ok.Received()...)
	if len(seen) < 3 {
		t.Fatalf("receivers saw %d attempts, want at least 3", len(seen))
	}
	last := seen[len(seen)-1]
	for i, g := range seen[:len(seen)-1] {
		if g.DeliveryID != d.ID {
			t.Errorf("attempt %d carried delivery id %q, want the stable %q", i+1, g.DeliveryID, d.ID)
		}
	}
	if last.DeliveryID != other.ID || other.ID == d.ID {
		t.Errorf("a different delivery carried id %q, want its own %q", last.DeliveryID, other.ID)
	}
}

func (s *suite) testTransient(t *testing.T) {
	a := s.adapter(t)
	r := s.receiver(t, ModeTransient)
	_, err := s.deliver(t, t.Context(), a, s.delivery(r))
	if err == nil {
		t.Fatal("Deliver to a transiently failing receiver returned nil")
	}
	if adapters.IsPermanent(err) {
		t.Errorf("transient failure classified permanent: %v", err)
	}
	if errors.Is(err, adapters.ErrClosed) {
		t.Errorf("transient failure reported as ErrClosed: %v", err)
	}
	checkNoProblems(t, r)
}

func (s *suite) testPermanent(t *testing.T) {
	a := s.adapter(t)
	r := s.receiver(t, ModePermanent)
	_, err := s.deliver(t, t.Context(), a, s.delivery(r))
	if err == nil {
		t.Fatal("Deliver to a refusing receiver returned nil")
	}
	if !adapters.IsPermanent(err) {
		t.Errorf("permanent refusal classified transient: %v", err)
	}
	checkNoProblems(t, r)
}

func (s *suite) testAlreadyCancelled(t *testing.T) {
	a := s.adapter(t)
	r := s.receiver(t, ModeAccept)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.deliver(t, ctx, a, s.delivery(r))
	if err == nil {
		t.Fatal("Deliver with a cancelled ctx returned nil")
	}
	if adapters.IsPermanent(err) {
		t.Errorf("a cancelled attempt is not the receiver's fault, yet classified permanent: %v", err)
	}
}

// hangAndCancel starts a delivery to a hanging receiver, waits until the receiver has
// it and returns the pending result.
func (s *suite) hangAndCancel(t *testing.T, a adapters.Adapter, ctx context.Context) (<-chan result, Receiver) {
	t.Helper()
	r := s.receiver(t, ModeHang)
	ch := s.start(ctx, a, s.delivery(r))
	waitFor(t, "the hanging receiver to see the attempt", func() bool { return len(r.Received()) > 0 })
	return ch, r
}

func (s *suite) testCancelHang(t *testing.T) {
	a := s.adapter(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, _ := s.hangAndCancel(t, a, ctx)
	cancel()
	_, err := s.await(t, ch)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: err = %v, want one wrapping context.Canceled (the broker tells shutdown from failure by it)", err)
	}
	if adapters.IsPermanent(err) {
		t.Errorf("cancelled attempt classified permanent: %v", err)
	}
}

func (s *suite) testDeadlineHang(t *testing.T) {
	a := s.adapter(t)
	r := s.receiver(t, ModeHang)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := s.deliver(t, ctx, a, s.delivery(r))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("after deadline: err = %v, want one wrapping context.DeadlineExceeded", err)
	}
	if adapters.IsPermanent(err) {
		t.Errorf("timed-out attempt classified permanent: %v", err)
	}
}

func (s *suite) testCloseWaits(t *testing.T) {
	a := s.adapter(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, _ := s.hangAndCancel(t, a, ctx)
	ok := s.receiver(t, ModeAccept)
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	// A Close that returned now would have abandoned a running Deliver. The check can
	// only miss a wrong implementation, never fail a right one.
	select {
	case <-closed:
		t.Error("Close returned while a Deliver was still running")
	case <-time.After(50 * time.Millisecond):
	}
	// New calls must be refused once Close has begun; wait until it has.
	waitFor(t, "Deliver to report ErrClosed while Close waits", func() bool {
		_, err := s.deliver(t, t.Context(), a, s.delivery(ok))
		return errors.Is(err, adapters.ErrClosed)
	})
	cancel()
	if _, err := s.await(t, ch); err == nil {
		t.Error("the cancelled Deliver returned nil")
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(watchdog):
		t.Fatalf("Close did not return within %v after the running Deliver returned", watchdog)
	}
}

func (s *suite) testConcurrent(t *testing.T) {
	a := s.adapter(t)
	r := s.receiver(t, ModeAccept)
	n := s.f.Concurrency
	ds := make([]adapters.Delivery, n)
	chs := make([]<-chan result, n)
	for i := range ds {
		ds[i] = s.delivery(r)
	}
	for i := range ds {
		chs[i] = s.start(t.Context(), a, ds[i])
	}
	for i := range chs {
		if _, err := s.await(t, chs[i]); err != nil {
			t.Errorf("delivery %d: %v", i, err)
		}
	}
	checkNoProblems(t, r)
	count := map[string]int{}
	for _, g := range r.Received() {
		count[g.DeliveryID]++
	}
	for _, d := range ds {
		if count[d.ID] != 1 {
			t.Errorf("delivery %s seen %d times, want 1", d.ID, count[d.ID])
		}
	}
}

func (s *suite) testCloseDuring(t *testing.T) {
	a := s.adapter(t)
	r := s.receiver(t, ModeAccept)
	n := s.f.Concurrency
	chs := make([]<-chan result, n)
	for i := range chs {
		chs[i] = s.start(t.Context(), a, s.delivery(r))
		if i == n/2 {
			go func() { s.cap.addErr(a.Close()) }()
		}
	}
	for i := range chs {
		if _, err := s.await(t, chs[i]); err != nil && !errors.Is(err, adapters.ErrClosed) {
			t.Errorf("delivery %d racing Close: %v (want nil or ErrClosed)", i, err)
		}
	}
	checkNoProblems(t, r)
}

func (s *suite) testAfterClose(t *testing.T) {
	a := s.adapter(t)
	r := s.receiver(t, ModeAccept)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := s.deliver(t, t.Context(), a, s.delivery(r))
	if !errors.Is(err, adapters.ErrClosed) {
		t.Fatalf("Deliver after Close: err = %v, want ErrClosed", err)
	}
	if adapters.IsPermanent(err) {
		// A closing gateway is no verdict on the office's channel: the broker must
		// retry elsewhere later, not fall back to the mailbox.
		t.Errorf("ErrClosed classified permanent: %v", err)
	}
	if n := len(r.Received()); n != 0 {
		t.Errorf("receiver saw %d attempts after Close", n)
	}
}

func (s *suite) testCloseIdempotent(t *testing.T) {
	a := s.adapter(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- a.Close() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close after Close: %v", err)
	}
}

// testNoGoroutineLeak runs deliveries in every mode in a subtest (whose cleanups tear
// down adapter and receivers) and then demands the goroutine count return to what it
// was before.
func (s *suite) testNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("NoGoroutineLeak", func(t *testing.T) {
		a := s.adapter(t)
		modes := []Mode{ModeAccept, ModeTransient, ModePermanent}
		if !s.f.NoHang {
			modes = append(modes, ModeHang)
		}
		for _, m := range modes {
			r := s.receiver(t, m)
			for range 4 {
				ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
				_, _ = s.deliver(t, ctx, a, s.delivery(r))
				cancel()
			}
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Run("GoroutinesReturned", func(t *testing.T) {
		// This subtest's own goroutine is the one extra allowed: the parent that
		// measured before is blocked in t.Run, as it was then.
		before := before + 1
		deadline := time.Now().Add(watchdog)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				var buf bytes.Buffer
				_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
				t.Fatalf("%d goroutines before, %d after adapter and receivers were closed:\n%s",
					before, runtime.NumGoroutine(), buf.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func (s *suite) testSecretNeverLeaks(t *testing.T) {
	// Provoke every kind of outcome here too, so the case means something when run
	// alone with -run.
	a := s.adapter(t)
	modes := []Mode{ModeAccept, ModeTransient, ModePermanent}
	if !s.f.NoHang {
		modes = append(modes, ModeHang)
	}
	for _, m := range modes {
		r := s.receiver(t, m)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		_, _ = s.deliver(t, ctx, a, s.delivery(r))
		cancel()
	}
	_ = a.Close()
	_, _ = s.deliver(t, t.Context(), a, s.delivery(s.receiver(t, ModeAccept)))

	s.cap.mu.Lock()
	defer s.cap.mu.Unlock()
	if len(s.cap.secrets) == 0 {
		t.Log("the harness's targets carry no secret; nothing to hunt for")
		return
	}
	if s.cap.logs.Len() == 0 && len(s.cap.errs) == 0 {
		t.Fatal("captured neither logs nor errors: the check would be vacuous")
	}
	haystacks := append([]string{s.cap.logs.String()}, s.cap.errs...)
	for _, secret := range s.cap.secrets {
		for _, needle := range secretParts(secret) {
			for _, hay := range haystacks {
				if strings.Contains(hay, needle) {
					t.Fatalf("a secret (or its key part) appears in an error or log line: %q", redact(hay, needle))
				}
			}
		}
	}
}

// secretParts lists the strings that must never appear: the secret, each of several
// whitespace-separated secrets (key rotation), and the key part after a scheme prefix
// such as "whsec_".
func secretParts(secret string) []string {
	parts := []string{secret}
	for _, f := range strings.Fields(secret) {
		parts = append(parts, f)
		if i := strings.LastIndexByte(f, '_'); i >= 0 && len(f)-i-1 >= 8 {
			parts = append(parts, f[i+1:])
		}
	}
	return parts
}

func redact(hay, needle string) string {
	return strings.ReplaceAll(hay, needle, "<SECRET>")
}

// testLateConfirmation: a channel that confirms later says so (Pending), reports no
// confirmation the office did not give, and reports the one it gave — for the right
// delivery only. A channel that does not confirm later never claims Pending.
func (s *suite) testLateConfirmation(t *testing.T) {
	a := s.adapter(t)
	r := s.receiver(t, ModeAccept)
	d := s.delivery(r)
	c, err := s.deliver(t, t.Context(), a, d)
	if err != nil {
		t.Fatalf("Deliver to an accepting receiver: %v", err)
	}
	if !s.f.ConfirmsLater {
		if c.Pending {
			t.Fatal("Confirmation.Pending from a channel whose Features do not say ConfirmsLater")
		}
		return
	}
	if !c.Pending {
		t.Fatal("ConfirmsLater channel answered without Pending: the broker would record a delivery the office has not confirmed")
	}
	cf, ok := a.(adapters.Confirmer)
	if !ok {
		t.Fatal("ConfirmsLater channel does not implement adapters.Confirmer")
	}
	cr, ok := r.(ConfirmingReceiver)
	if !ok {
		t.Fatal("ConfirmsLater harness: receiver does not implement ConfirmingReceiver")
	}
	other := s.delivery(r)
	if _, err := s.deliver(t, t.Context(), a, other); err != nil {
		t.Fatalf("second Deliver: %v", err)
	}
	if _, done, err := cf.Confirmed(t.Context(), d); err != nil || done {
		t.Fatalf("Confirmed before the office confirmed: ok=%v err=%v", done, err)
	}
	cr.Confirm(t, d.ID)
	var got adapters.Confirmation
	waitFor(t, "the confirmation to be reported", func() bool {
		c, done, err := cf.Confirmed(t.Context(), d)
		if err != nil {
			t.Fatalf("Confirmed: %v", err)
		}
		got = c
		return done
	})
	if got.Receiver == "" || got.At.IsZero() {
		t.Errorf("confirmation lacks receiver or time: %+v", got)
	}
	if _, done, err := cf.Confirmed(t.Context(), other); err != nil || done {
		t.Fatalf("Confirmed reports a confirmation for a delivery the office did not confirm: ok=%v err=%v", done, err)
	}
}

// testWithdrawal: a channel whose adapter is an adapters.Withdrawer keeps the
// promises of that contract. A copy the office has not taken is removed and is
// then gone for the office, is never confirmed or handed over, and no later
// attempt hands it over again (a permanent failure wrapping ErrWithdrawn); asked
// again, Withdraw answers "removed before". A copy the office took stays the
// office's: "taken", and its confirmation still counts. A delivery never handed
// over is "none". A channel whose Features do not say KeepsCopy must be no
// Withdrawer, and one that says it must be one: an erasure relies on either.
func (s *suite) testWithdrawal(t *testing.T) {
	a := s.adapter(t)
	w, ok := a.(adapters.Withdrawer)
	switch {
	case !s.f.KeepsCopy && ok:
		t.Fatal("an adapters.Withdrawer whose Features do not say KeepsCopy: its contract would go unchecked")
	case !s.f.KeepsCopy:
		return // the office reads the bytes from the gateway: an erasure removes them there
	case !ok:
		t.Fatal("the channel keeps a copy outside the gateway (KeepsCopy) but is no adapters.Withdrawer: an erasure could not reach it")
	}
	cf, ok := a.(adapters.Confirmer)
	if !s.f.ConfirmsLater || !ok {
		t.Fatal("a Withdrawer's copy waits for the office to take it: its Features must say ConfirmsLater, and it must be an adapters.Confirmer")
	}
	r := s.receiver(t, ModeAccept)
	wr, ok := r.(WithdrawingReceiver)
	if !ok {
		t.Fatal("Withdrawer harness: receiver does not implement WithdrawingReceiver")
	}
	untaken, taken, never := s.delivery(r), s.delivery(r), s.delivery(r)
	for _, d := range []adapters.Delivery{untaken, taken} {
		if _, err := s.deliver(t, t.Context(), a, d); err != nil {
			t.Fatalf("Deliver to an accepting receiver: %v", err)
		}
	}
	if !wr.Waiting(t, untaken.ID) {
		t.Fatal("no copy waits for the office after the hand-over: the withdrawal below would prove nothing")
	}
	wr.Confirm(t, taken.ID)

	got, err := w.Withdraw(t.Context(), untaken)
	if err != nil || got.Outcome != adapters.WithdrawRemoved {
		t.Fatalf("Withdraw of an untaken copy: %+v %v, want removed", got, err)
	}
	if wr.Waiting(t, untaken.ID) {
		t.Error("the office still finds the withdrawn copy")
	}
	if _, done, err := cf.Confirmed(t.Context(), untaken); done || err != nil {
		t.Errorf("Confirmed of a withdrawn delivery: ok=%v err=%v, want not confirmed: the broker would record the erased case as delivered", done, err)
	}
	if hf, ok := a.(adapters.HandOverFinder); ok {
		if _, found, err := hf.HandedOver(t.Context(), untaken); found || err != nil {
			t.Errorf("HandedOver of a withdrawn delivery: ok=%v err=%v, want none", found, err)
		}
	}
	got, err = w.Withdraw(t.Context(), untaken)
	if err != nil || got.Outcome != adapters.WithdrawnBefore {
		t.Errorf("Withdraw asked again: %+v %v, want removed before (idempotent)", got, err)
	}
	again := untaken
	again.Attempt++
	_, err = s.deliver(t, t.Context(), a, again)
	if !errors.Is(err, adapters.ErrWithdrawn) || !adapters.IsPermanent(err) {
		t.Errorf("Deliver of a withdrawn delivery: %v, want a permanent failure wrapping ErrWithdrawn", err)
	}
	if wr.Waiting(t, untaken.ID) {
		t.Error("a Deliver after the withdrawal handed the erased case over again")
	}

	got, err = w.Withdraw(t.Context(), taken)
	if err != nil || got.Outcome != adapters.WithdrawTaken {
		t.Errorf("Withdraw of a copy the office took: %+v %v, want taken", got, err)
	}
	if _, done, err := cf.Confirmed(t.Context(), taken); !done || err != nil {
		t.Errorf("Confirmed of a copy the office took before the withdrawal: ok=%v err=%v, want confirmed", done, err)
	}

	if got, err := w.Withdraw(t.Context(), never); err != nil || got.Outcome != adapters.WithdrawNothing {
		t.Errorf("Withdraw of a delivery never handed over: %+v %v, want none", got, err)
	}
}
