package loadtest

// The machinery of the open-loop mode that does not need a gateway: arrival
// schedules, the dispatcher that sends each arrival at its scheduled time whatever
// the earlier ones are doing, and the recorder that measures every latency from the
// SCHEDULED send time. A closed-loop client that waits for its previous answer
// before sending the next one hides a stall: while the gateway stands still, the
// client sends nothing, so only the one request in flight sees the stall. Here the
// arrivals keep coming and each one that waits counts the wait.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Arrival processes of the open-loop mode.
const (
	ArrivalConstant = "constant" // one arrival every 1/rate
	ArrivalPoisson  = "poisson"  // exponential inter-arrival times with mean 1/rate
)

// TargetShare is where issue #12 puts the open loop's latency target: at an
// arrival rate of a quarter of the verification-only baseline of the same run.
const TargetShare = 0.25

// maxShare bounds a step given as a share of the baseline: ten times what the
// machine verifies is no measurement, only a queue.
const maxShare = 10

// Rate is one step of the ladder: PerSec arrivals per second, or, with Share set,
// that share of the verification-only baseline measured before the ladder. A
// fixed rate means something else on every machine (1,000/s is a quarter of one
// quiet VM's baseline and most of a slow one's); "0.25x" is the target
// rate wherever the bench runs.
type Rate struct {
	PerSec float64
	Share  float64
}

func (r Rate) String() string {
	if r.Share > 0 {
		return strconv.FormatFloat(r.Share, 'g', -1, 64) + "x"
	}
	return strconv.FormatFloat(r.PerSec, 'g', -1, 64)
}

// perSec is the step's arrivals per second against baseline (verifications per
// second before the ladder). A share is rounded up to whole arrivals per second:
// the step runs at the target's rate or just above it, never below.
func (r Rate) perSec(baseline float64) float64 {
	if r.Share > 0 {
		return max(1, math.Ceil(r.Share*baseline))
	}
	return r.PerSec
}

// ParseRates reads a ladder written as on the command line: comma-separated
// arrivals per second ("200") or shares of the baseline ("0.25x").
func ParseRates(s string) ([]Rate, error) {
	var out []Rate
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		num, share := strings.CutSuffix(f, "x")
		v, err := strconv.ParseFloat(num, 64)
		switch {
		case err != nil || !(v > 0) || math.IsInf(v, 0):
			return nil, fmt.Errorf("%q is neither a positive rate nor a share of the baseline like 0.25x", f)
		case share && v > maxShare:
			return nil, fmt.Errorf("%q: a share of the baseline above %dx is no measurement", f, maxShare)
		case share:
			out = append(out, Rate{Share: v})
		default:
			out = append(out, Rate{PerSec: v})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no rates")
	}
	return out, nil
}

// ratesLine is a ladder's rates as the command line writes them: 50,100,333.
func ratesLine(rates []float64) string {
	out := make([]string, len(rates))
	for i, r := range rates {
		out[i] = strconv.FormatFloat(r, 'g', -1, 64)
	}
	return strings.Join(out, ",")
}

// expectedArrivals is how many packages a ladder of fixed rates sends, on average.
func expectedArrivals(rates []Rate, step time.Duration) int {
	n := 0.0
	for _, r := range rates {
		n += r.PerSec * step.Seconds()
	}
	return int(math.Ceil(n))
}

// checkArrivals refuses an arrival process that is neither of the two ("" is
// constant arrivals).
func checkArrivals(kind string) error {
	switch kind {
	case ArrivalConstant, ArrivalPoisson, "":
		return nil
	}
	return fmt.Errorf("arrivals %q: want %s or %s", kind, ArrivalConstant, ArrivalPoisson)
}

// arrivalOffsets returns the scheduled send times of one step, as offsets from the
// step's start, all before d.
func arrivalOffsets(kind string, rate float64, d time.Duration, rng *rand.Rand) ([]time.Duration, error) {
	if rate <= 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("rate %v: must be positive", rate)
	}
	var offs []time.Duration
	switch kind {
	case ArrivalConstant, "":
		n := int(math.Floor(rate*d.Seconds() + 1e-9))
		offs = make([]time.Duration, 0, n)
		for k := range n {
			offs = append(offs, time.Duration(float64(k)/rate*float64(time.Second)))
		}
	case ArrivalPoisson:
		offs = make([]time.Duration, 0, int(rate*d.Seconds()*1.1)+8)
		t := 0.0
		for {
			t += rng.ExpFloat64() / rate
			off := time.Duration(t * float64(time.Second))
			if off >= d {
				break
			}
			offs = append(offs, off)
		}
	default:
		return nil, checkArrivals(kind)
	}
	return offs, nil
}

// clock is time as the dispatcher and the recorder see it; tests use a fake one.
type clock interface {
	Now() time.Time
	// SleepUntil returns at t, at once if t has passed, or early when ctx ends.
	SleepUntil(ctx context.Context, t time.Time)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// gapTracker measures the longest time without an event while something is
// outstanding: up marks one more outstanding thing (the first one starts the
// clock), down an event that answers one of them. The caller locks.
type gapTracker struct {
	n    int
	last time.Time
	max  time.Duration // since the last cut
}

func (g *gapTracker) up(now time.Time) {
	if g.n == 0 {
		g.last = now
	}
	g.n++
}

func (g *gapTracker) down(now time.Time) {
	if g.n <= 0 {
		return
	}
	if d := now.Sub(g.last); d > g.max {
		g.max = d
	}
	g.last = now
	g.n--
}

// cut returns the longest gap since the last cut, including one still open at now,
// and starts a new period.
func (g *gapTracker) cut(now time.Time) time.Duration {
	m := g.max
	if g.n > 0 {
		if d := now.Sub(g.last); d > m {
			m = d
		}
	}
	g.max = 0
	return m
}

// lockedGaps is a gapTracker for events from many goroutines (the broker's observers).
type lockedGaps struct {
	clk clock
	mu  sync.Mutex
	g   gapTracker
}

func (l *lockedGaps) up() {
	l.mu.Lock()
	l.g.up(l.clk.Now())
	l.mu.Unlock()
}

func (l *lockedGaps) down() {
	l.mu.Lock()
	l.g.down(l.clk.Now())
	l.mu.Unlock()
}

func (l *lockedGaps) cut() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.g.cut(l.clk.Now())
}

// stepRec is what the recorder holds about the arrivals scheduled in one step,
// whenever their answers come.
type stepRec struct {
	scheduled, sent, dropped, created int
	lat                               []time.Duration // scheduled send time to answer, every sent request
	errs                              map[string]int  // by status ("503"), "timeout", "transport", "cap"
	maxLag                            time.Duration   // how late the dispatcher sent, at most
}

// recorder collects the outcome of every arrival.
type recorder struct {
	clk         clock
	cap         int // at most this many requests in flight; arrivals beyond are dropped and counted
	mu          sync.Mutex
	steps       []*stepRec
	inFlight    int
	maxInFlight int // since the last cutInFlight
	created     int64
	answers     gapTracker // outstanding requests; an event is an answer of any kind
}

func newRecorder(clk clock, maxInFlight int) *recorder {
	return &recorder{clk: clk, cap: maxInFlight}
}

func (r *recorder) addStep(scheduled int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, &stepRec{scheduled: scheduled, errs: map[string]int{}})
	return len(r.steps) - 1
}

// trySend is called when an arrival scheduled at `at` is about to be sent; false
// means the safety cap is reached and the arrival is dropped (and counted).
func (r *recorder) trySend(step int, at time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.steps[step]
	if r.cap > 0 && r.inFlight >= r.cap {
		s.dropped++
		s.errs["cap"]++
		return false
	}
	now := r.clk.Now()
	if lag := now.Sub(at); lag > s.maxLag {
		s.maxLag = lag
	}
	s.sent++
	r.inFlight++
	r.maxInFlight = max(r.maxInFlight, r.inFlight)
	r.answers.up(now)
	return true
}

// done records the answer to an arrival scheduled at `at`: its latency runs from
// `at`, not from when it was actually sent.
func (r *recorder) done(step int, at time.Time, status int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clk.Now()
	s := r.steps[step]
	s.lat = append(s.lat, now.Sub(at))
	switch {
	case err != nil:
		s.errs[errClass(err)]++
	case status == http.StatusCreated:
		s.created++
		r.created++
	default:
		s.errs[strconv.Itoa(status)]++
	}
	r.inFlight--
	r.answers.down(now)
}

func errClass(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "transport"
}

// window is read at the start and the end of each step.
type window struct {
	created     int64
	noAnswerGap time.Duration
	maxInFlight int
}

func (r *recorder) cut() window {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := window{created: r.created, noAnswerGap: r.answers.cut(r.clk.Now()), maxInFlight: r.maxInFlight}
	r.maxInFlight = r.inFlight
	return w
}

// latencyStats of the arrivals scheduled in one step.
type latencyStats struct {
	Scheduled, Sent, Dropped, Created int
	P50, P99, P999, Max               time.Duration
	Errors                            map[string]int
	MaxLag                            time.Duration
}

func (r *recorder) stats(step int) latencyStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.steps[step]
	lat := slices.Clone(s.lat)
	slices.Sort(lat)
	st := latencyStats{Scheduled: s.scheduled, Sent: s.sent, Dropped: s.dropped, Created: s.created,
		P50: quantile(lat, 0.50), P99: quantile(lat, 0.99), P999: quantile(lat, 0.999), MaxLag: s.maxLag,
		Errors: map[string]int{}}
	if len(lat) > 0 {
		st.Max = lat[len(lat)-1]
	}
	for k, v := range s.errs {
		st.Errors[k] = v
	}
	return st
}

// quantile of sorted values, nearest rank: the smallest value with at least q of
// all at or below it.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// dispatcher sends every arrival at its scheduled time, each as its own request,
// without waiting for earlier answers.
type dispatcher struct {
	clk   clock
	rec   *recorder
	spawn func(func()) // go f() in real runs; tests may run f at once
	send  func(ctx context.Context, seq int) (status int, err error)
	seq   int
	wg    sync.WaitGroup
}

func (d *dispatcher) runStep(ctx context.Context, step int, start time.Time, offs []time.Duration) {
	for _, off := range offs {
		at := start.Add(off)
		d.clk.SleepUntil(ctx, at)
		if ctx.Err() != nil {
			return
		}
		if !d.rec.trySend(step, at) {
			continue
		}
		seq := d.seq
		d.seq++
		d.wg.Add(1)
		d.spawn(func() {
			defer d.wg.Done()
			status, err := d.send(ctx, seq)
			d.rec.done(step, at, status, err)
		})
	}
}

// wait returns when every request sent has its answer (or its error).
func (d *dispatcher) wait() { d.wg.Wait() }
