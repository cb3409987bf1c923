package adaptertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/internal/testenv"
)

// memAdapter is a minimal in-process channel that carries the bytes. It exists to
// prove that a correct adapter passes Run and that each seeded defect fails it.
type memAdapter struct {
	h      *memHarness
	defect string
	logger *slog.Logger

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

func (a *memAdapter) Channel() string { return "memory" }

func (a *memAdapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Confirmation, error) {
	a.mu.RLock()
	if a.closed && a.defect != "ignores-close" {
		a.mu.RUnlock()
		return adapters.Confirmation{}, adapters.ErrClosed
	}
	a.wg.Add(1)
	a.mu.RUnlock()
	defer a.wg.Done()

	if err := ctx.Err(); err != nil {
		return adapters.Confirmation{}, fmt.Errorf("memory: %w", err)
	}
	r := a.h.lookup(d.Target.Endpoint)
	if r == nil {
		return adapters.Confirmation{}, adapters.Permanent("unknown endpoint", nil)
	}
	r.mu.Lock()
	withdrawn := r.withdrawn[d.ID]
	r.mu.Unlock()
	if withdrawn && a.defect != "delivers-after-withdrawal" {
		return adapters.Confirmation{}, adapters.Permanent("withdrawn", adapters.ErrWithdrawn)
	}
	pkg, err := ReadAll(ctx, d.Package)
	if err != nil {
		return adapters.Confirmation{}, fmt.Errorf("memory: read package: %w", err)
	}
	got := Received{DeliveryID: d.ID, SubmissionID: d.SubmissionID, Package: pkg, PackageSHA256: SHA256Hex(pkg),
		Attachments: map[string][]byte{}, AttachmentSHA256: map[string]string{}}
	if a.defect == "unstable-id" {
		got.DeliveryID = fmt.Sprintf("%s-%d", d.ID, d.Attempt)
	}
	for _, at := range d.Attachments {
		b, err := ReadAll(ctx, at.Open)
		if err != nil {
			return adapters.Confirmation{}, fmt.Errorf("memory: read attachment: %w", err)
		}
		got.Attachments[at.ID] = b
		got.AttachmentSHA256[at.ID] = SHA256Hex(b)
	}
	if d.Target.Secret != r.target.Secret {
		got.Problem = "wrong secret"
	}
	a.logger.Debug("delivering", "delivery", d.ID, "target", d.Target)
	err = r.take(ctx, got)
	switch {
	case err == nil:
		return adapters.Confirmation{Receiver: "memory:" + d.Target.Endpoint, At: time.Now(), Pending: a.h.later}, nil
	case errors.Is(err, errRefused) || a.defect == "transient-as-permanent":
		return adapters.Confirmation{}, adapters.Permanent("receiver refused", err)
	case a.defect == "leak-secret":
		return adapters.Confirmation{}, fmt.Errorf("memory: deliver with secret %s: %w", d.Target.Secret, err)
	default:
		return adapters.Confirmation{}, fmt.Errorf("memory: %w", err)
	}
}

func (a *memAdapter) Close() error {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.wg.Wait()
	return nil
}

var (
	errRefused = errors.New("refused")
	errFull    = errors.New("receiver full")
)

type memReceiver struct {
	mode    Mode
	target  adapters.Target
	release chan struct{}

	mu        sync.Mutex
	got       []Received
	confirmed map[string]bool
	taken     map[string]bool // accepted: a copy waits for the office unless confirmed or withdrawn
	withdrawn map[string]bool
}

func (r *memReceiver) Target() adapters.Target { return r.target }

func (r *memReceiver) Received() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Received(nil), r.got...)
}

func (r *memReceiver) take(ctx context.Context, got Received) error {
	r.mu.Lock()
	r.got = append(r.got, got)
	if r.mode == ModeAccept {
		if r.taken == nil {
			r.taken = map[string]bool{}
		}
		r.taken[got.DeliveryID] = true
	}
	r.mu.Unlock()
	switch r.mode {
	case ModeTransient:
		return errFull
	case ModePermanent:
		return errRefused
	case ModeHang:
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.release:
			return errFull
		}
	}
	return nil
}

type memHarness struct {
	defect string
	later  bool // the office confirms after the hand-over
	mu     sync.Mutex
	n      int
	rs     map[string]*memReceiver
}

func (h *memHarness) lookup(ep string) *memReceiver {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rs[ep]
}

func (h *memHarness) Features() Features {
	return Features{CarriesPackage: true, CarriesAttachments: true, ConfirmsLater: h.later, KeepsCopy: h.later}
}

func (h *memHarness) NewAdapter(t testing.TB, logger *slog.Logger) adapters.Adapter {
	a := &memAdapter{h: h, defect: h.defect, logger: logger}
	if h.later {
		return &memLaterAdapter{a}
	}
	return a
}

// memLaterAdapter is the memory channel in its confirm-later form: the receiver's
// Confirm marks a delivery confirmed, as a folder import would.
type memLaterAdapter struct{ *memAdapter }

func (a *memLaterAdapter) Confirmed(_ context.Context, d adapters.Delivery) (adapters.Confirmation, bool, error) {
	r := a.h.lookup(d.Target.Endpoint)
	if r == nil {
		return adapters.Confirmation{}, false, errors.New("memory: unknown endpoint")
	}
	r.mu.Lock()
	done := r.confirmed[d.ID] && !r.withdrawn[d.ID] || r.withdrawn[d.ID] && a.defect == "withdrawn-confirms"
	r.mu.Unlock()
	if !done && a.defect != "confirms-early" {
		return adapters.Confirmation{}, false, nil
	}
	return adapters.Confirmation{Receiver: "memory import", At: time.Now()}, true, nil
}

// Withdraw is the memory channel's adapters.Withdrawer: a copy accepted and
// not confirmed by the office is withdrawn.
func (a *memLaterAdapter) Withdraw(_ context.Context, d adapters.Delivery) (adapters.Withdrawal, error) {
	r := a.h.lookup(d.Target.Endpoint)
	if r == nil {
		return adapters.Withdrawal{}, errors.New("memory: unknown endpoint")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.withdrawn == nil {
		r.withdrawn = map[string]bool{}
	}
	switch {
	case r.withdrawn[d.ID] && a.defect == "withdraw-not-idempotent":
		return adapters.Withdrawal{}, errors.New("memory: already withdrawn")
	case r.withdrawn[d.ID]:
		return adapters.Withdrawal{Outcome: adapters.WithdrawnBefore}, nil
	case !r.taken[d.ID]:
		return adapters.Withdrawal{Outcome: adapters.WithdrawNothing}, nil
	case r.confirmed[d.ID] && a.defect != "withdraw-takes-taken":
		return adapters.Withdrawal{Outcome: adapters.WithdrawTaken}, nil
	}
	r.withdrawn[d.ID] = true
	return adapters.Withdrawal{Outcome: adapters.WithdrawRemoved}, nil
}

func (r *memReceiver) Waiting(_ testing.TB, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.taken[id] && !r.confirmed[id] && !r.withdrawn[id]
}

func (a *memLaterAdapter) Changes() <-chan struct{} { return nil }

func (r *memReceiver) Confirm(_ testing.TB, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.confirmed == nil {
		r.confirmed = map[string]bool{}
	}
	r.confirmed[id] = true
}

func (h *memHarness) NewReceiver(t testing.TB, mode Mode) Receiver {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	ep := fmt.Sprintf("mem://%d", h.n)
	r := &memReceiver{mode: mode, release: make(chan struct{}),
		target: adapters.Target{Channel: "memory", Endpoint: ep, Secret: fmt.Sprintf("whsec_secretkey%05dXYZ", h.n)}}
	if h.rs == nil {
		h.rs = map[string]*memReceiver{}
	}
	h.rs[ep] = r
	t.Cleanup(func() { close(r.release) })
	return r
}

func TestMemoryAdapterConforms(t *testing.T) {
	Run(t, &memHarness{})
}

func TestConfirmLaterAdapterConforms(t *testing.T) {
	Run(t, &memHarness{later: true})
}

// TestSeededDefectsFail proves the suite has teeth: each defect, planted in an
// otherwise correct adapter, must make the named case fail. The suite runs in a child
// process because a failing *testing.T cannot be contained in this one.
func TestSeededDefectsFail(t *testing.T) {
	if os.Getenv("ADAPTERTEST_DEFECT") != "" {
		return // this is the child process itself
	}
	cases := map[string]string{
		"leak-secret":            "SecretNeverInErrorsOrLogs",
		"unstable-id":            "StableDeliveryID",
		"transient-as-permanent": "TransientFailure",
		"ignores-close":          "DeliverAfterClose",
		"confirms-early":         "LateConfirmation",
		"pending-not-declared":   "LateConfirmation",
		// The Withdrawer contract (adapters.Withdrawer).
		"withdraw-takes-taken":      "Withdrawal",
		"withdrawn-confirms":        "Withdrawal",
		"withdraw-not-idempotent":   "Withdrawal",
		"delivers-after-withdrawal": "Withdrawal",
		"copy-not-withdrawable":     "Withdrawal",
	}
	testenv.PlantedDefects(t, "ADAPTERTEST_DEFECT", "an adapter", cases)
}

// TestDefectChild is the child of TestSeededDefectsFail and does nothing on its own.
func TestDefectChild(t *testing.T) {
	defect := os.Getenv("ADAPTERTEST_DEFECT")
	if defect == "" {
		return
	}
	switch defect {
	case "confirms-early", "withdraw-takes-taken", "withdrawn-confirms", "withdraw-not-idempotent", "delivers-after-withdrawal":
		Run(t, &memHarness{defect: defect, later: true})
	case "pending-not-declared":
		// Hands over and confirms later, but its harness claims it confirms at once.
		Run(t, &undeclaredLater{memHarness{defect: defect, later: true}})
	case "copy-not-withdrawable":
		// A copy waits at the receiver, but the adapter cannot withdraw it.
		Run(t, &unwithdrawable{memHarness{defect: defect, later: true}})
	default:
		Run(t, &memHarness{defect: defect})
	}
}

type undeclaredLater struct{ memHarness }

// unwithdrawable is the confirm-later memory channel without its Withdraw.
type unwithdrawable struct{ memHarness }

func (h *unwithdrawable) NewAdapter(t testing.TB, logger *slog.Logger) adapters.Adapter {
	return &memAdapter{h: &h.memHarness, defect: h.defect, logger: logger}
}

func (h *undeclaredLater) Features() Features {
	f := h.memHarness.Features()
	f.ConfirmsLater = false
	return f
}
