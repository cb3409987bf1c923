package loadtest

import (
	"fmt"
	"io"
	"math"
	"runtime/metrics"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Where a step's latency goes inside the gateway, from the gateway's own
// histograms (what an operator's Prometheus scrapes): read at the step's start
// and end, the difference is the step's. The client's p99 minus these is time
// outside intake: HTTP on both sides and goroutines waiting to run.

// The series the bench reads, by the name it prints. The last is the runtime's
// own (runtime/metrics, read directly for its fine buckets; the gateway exposes
// it as go_sched_latencies_seconds): how long goroutines waited for a CPU once
// runnable — the process's, so the bench's goroutines too, which share the
// scheduler.
var stageSeries = []struct{ name, metric, stage string }{
	{"slot wait", "amtsbote_intake_stage_seconds", "slot_wait"},
	{"verify", "amtsbote_intake_stage_seconds", "verify"},
	{"accept", "amtsbote_intake_stage_seconds", "accept"},
	{"store wait", "amtsbote_store_write_wait_seconds", ""},
	{"run queue", schedLatencies, ""},
}

const schedLatencies = "/sched/latencies:seconds"

// histSnap holds the cumulative bucket counts of each series of stageSeries.
type histSnap [][]bucket

type bucket struct {
	le float64
	n  uint64
}

// snapHists reads every series of stageSeries now. If the gateway's metrics
// cannot be gathered it returns nil, and the report has no stage times, nothing
// else: they explain a run, they are not its measure.
func snapHists(g prometheus.Gatherer) histSnap {
	fams, err := g.Gather()
	if err != nil {
		return nil
	}
	snap := make(histSnap, len(stageSeries))
	for i, s := range stageSeries {
		if s.metric == schedLatencies {
			snap[i] = runtimeHist(s.metric)
			continue
		}
		for _, f := range fams {
			if f.GetName() != s.metric {
				continue
			}
			for _, m := range f.GetMetric() {
				if s.stage != "" && label(m, "stage") != s.stage {
					continue
				}
				for _, b := range m.GetHistogram().GetBucket() {
					snap[i] = append(snap[i], bucket{b.GetUpperBound(), b.GetCumulativeCount()})
				}
				snap[i] = append(snap[i], bucket{math.Inf(1), m.GetHistogram().GetSampleCount()})
			}
		}
	}
	return snap
}

// runtimeHist reads a histogram of runtime/metrics as cumulative buckets.
func runtimeHist(name string) []bucket {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	h := s[0].Value.Float64Histogram()
	out := make([]bucket, 0, len(h.Counts))
	var n uint64
	for k, c := range h.Counts {
		n += c
		out = append(out, bucket{h.Buckets[k+1], n})
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// StageTimes are quantiles of one stage over one step, from bucket counts:
// interpolated within a bucket as Prometheus's histogram_quantile does, so only
// as fine as the buckets (2.5 ms near 10 ms). N is the count.
type StageTimes struct {
	Name     string
	N        uint64
	P50, P99 time.Duration
	Finest   time.Duration // the lowest bucket's bound: a quantile under it says only that
}

// stageTimes returns the quantiles of what happened between a and b.
func stageTimes(a, b histSnap) []StageTimes {
	out := make([]StageTimes, 0, len(stageSeries))
	for i, s := range stageSeries {
		if i >= len(a) || i >= len(b) || len(a[i]) != len(b[i]) || len(b[i]) == 0 {
			continue // not gathered, or not exposed
		}
		d := make([]bucket, len(b[i]))
		for k := range d {
			d[k] = bucket{b[i][k].le, b[i][k].n - a[i][k].n}
		}
		out = append(out, StageTimes{Name: s.name, N: d[len(d)-1].n, P50: bucketQuantile(0.5, d), P99: bucketQuantile(0.99, d), Finest: secs(d[0].le)})
	}
	return out
}

// bucketQuantile is histogram_quantile over cumulative buckets sorted by le, the
// last one +Inf: the q-quantile interpolated linearly in the bucket it falls in;
// in the +Inf bucket, the highest finite bound.
func bucketQuantile(q float64, bs []bucket) time.Duration {
	total := bs[len(bs)-1].n
	if total == 0 {
		return 0
	}
	// The first bucket holding the rank; there is one, as rank ≤ total, and it
	// holds at least one observation more than the bucket below.
	rank := q * float64(total)
	i, _ := slices.BinarySearchFunc(bs, rank, func(b bucket, r float64) int {
		if float64(b.n) < r {
			return -1
		}
		return 1
	})
	if math.IsInf(bs[i].le, 1) {
		if i == 0 {
			return 0
		}
		return secs(bs[i-1].le)
	}
	lo, below := 0.0, uint64(0)
	if i > 0 {
		lo, below = bs[i-1].le, bs[i-1].n
	}
	return secs(lo + (bs[i].le-lo)*(rank-float64(below))/float64(bs[i].n-below))
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// writeStages prints the stage table of the open loop: p50/p99 of each stage
// per step.
func writeStages(w io.Writer, steps []Step) {
	if len(steps) == 0 || len(steps[0].Stages) == 0 {
		return
	}
	fmt.Fprintf(w, "  %7s", "rate/s")
	for _, st := range steps[0].Stages {
		fmt.Fprintf(w, " %19s", st.Name+" p50/p99")
	}
	fmt.Fprintln(w)
	for _, s := range steps {
		fmt.Fprintf(w, "  %7g", s.Rate)
		for _, st := range s.Stages {
			fmt.Fprintf(w, " %19s", st.fmt(st.P50)+"/"+st.fmt(st.P99))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "  stages: inside the gateway over the step's window, from its histograms (amtsbote_intake_stage_seconds, amtsbote_store_write_wait_seconds; interpolated in buckets 2.5–5 ms wide near 10 ms): slot wait for a verification slot, verify (pre-scan, signature, parse), accept (routing, the durable write, the receipt), store wait (a write queued to durable, deliveries' writes too), run queue (a goroutine's wait for a CPU once runnable, every goroutine of the process, the bench's too: runtime/metrics /sched/latencies); the latency's p99 beyond the gateway's stages is HTTP and such waits")
}

// fmt shows a quantile, or "<" the lowest bucket's bound when it is in that
// bucket (interpolating there would show half the bound for a wait of nothing).
func (st StageTimes) fmt(d time.Duration) string {
	if d <= st.Finest {
		return "<" + fmtDur(st.Finest)
	}
	return fmtDur(d)
}
