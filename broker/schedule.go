package broker

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
)

// StandardSchedule is the default retry schedule of a gateway (Standard Webhooks
// style): the delay before each retry on one channel. With the first attempt that
// makes ten attempts spread over about three days, so an office that is down for a
// day still gets its packages on the channel it chose; after the last the package
// moves to the office's next channel (finally the mailbox) or is held.
var StandardSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// Schedule names understood by ParseSchedule.
const (
	ScheduleStandard    = "standard"    // StandardSchedule
	ScheduleExponential = "exponential" // BackoffBase doubling up to BackoffMax, MaxAttempts attempts
)

// ParseSchedule reads a schedule as configured: "standard", "exponential" (nil: the
// exponential backoff of Config) or a comma-separated list of delays ("5s,1m,1h").
func ParseSchedule(s string) ([]time.Duration, error) {
	switch strings.TrimSpace(s) {
	case ScheduleStandard:
		return append([]time.Duration(nil), StandardSchedule...), nil
	case ScheduleExponential:
		return nil, nil
	}
	var out []time.Duration
	for _, p := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("schedule: %q is neither %q, %q nor a list of durations: %w", s, ScheduleStandard, ScheduleExponential, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("schedule: delay %s must be positive", d)
		}
		out = append(out, d)
	}
	return out, nil
}

// maxRetryAfter caps how long a receiver's Retry-After can hold a package.
const maxRetryAfter = 24 * time.Hour

// maxAttempts is the number of attempts on one channel before falling back.
func (b *Broker) maxAttempts() int {
	if len(b.cfg.Schedule) > 0 {
		return len(b.cfg.Schedule) + 1
	}
	return b.cfg.MaxAttempts
}

// retryDelay is the nominal (unscaled) delay before the attempt after the n-th failed
// one: the schedule's (±10 % jitter) or the exponential backoff's, and never earlier
// than the receiver asked (Retry-After, capped at 24 hours).
func (b *Broker) retryDelay(n int, cause error) time.Duration {
	var d time.Duration
	if len(b.cfg.Schedule) > 0 {
		d = b.cfg.Schedule[min(max(n, 1), len(b.cfg.Schedule))-1]
		d = time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
		if d >= time.Minute {
			d = d.Round(time.Second)
		}
	} else {
		d = b.backoff(n)
	}
	if ra, ok := adapters.RetryAfter(cause); ok {
		d = max(d, min(ra, maxRetryAfter))
	}
	return d
}

// maxRetryDelay is the longest nominal delay retryDelay can give after the n-th
// failed attempt: the schedule's with its jitter, or the exponential backoff's,
// or a receiver's Retry-After at its cap.
func (b *Broker) maxRetryDelay(n int) time.Duration {
	var d time.Duration
	if len(b.cfg.Schedule) > 0 {
		d = b.cfg.Schedule[min(max(n, 1), len(b.cfg.Schedule))-1]
		d = time.Duration(float64(d)*1.1) + time.Second // jitter, rounding
	} else {
		d = b.cfg.BackoffBase
		for i := 1; i < n && d < b.cfg.BackoffMax; i++ {
			d *= 2
		}
		d = time.Duration(float64(min(d, b.cfg.BackoffMax)) * 1.2) // jitter
	}
	return max(d, maxRetryAfter)
}

// scaled turns a nominal delay into the real one (Config.TimeScale; 1 in production).
func (b *Broker) scaled(d time.Duration) time.Duration {
	if b.cfg.TimeScale == 1 {
		return d
	}
	return time.Duration(float64(d) * b.cfg.TimeScale)
}

// unscaled is the nominal delay of a real one (scaled's inverse): what an event
// states of a wait the broker measures in real time, such as a breaker's cool-down.
func (b *Broker) unscaled(d time.Duration) time.Duration {
	if b.cfg.TimeScale == 1 {
		return d
	}
	return time.Duration(float64(d) / b.cfg.TimeScale)
}

// ScheduleFor is ParseSchedule for a specification checked already (the gateway's
// configuration is validated at load): an unreadable one gives StandardSchedule.
func ScheduleFor(spec string) []time.Duration {
	s, err := ParseSchedule(spec)
	if err != nil {
		return append([]time.Duration(nil), StandardSchedule...)
	}
	return s
}
