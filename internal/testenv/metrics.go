package testenv

import (
	"maps"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Sample is one series as /metrics shows it: its metric's name, its labels and
// its value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples reads g as /metrics would: each series of the metrics named, counters,
// gauges and untyped alike, in /metrics' order. The tests that read a registry
// each had their own copy of this walk.
func Samples(tb testing.TB, g prometheus.Gatherer, names ...string) []Sample {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var out []Sample
	for _, mf := range mfs {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		for _, m := range mf.GetMetric() {
			s := Sample{Name: mf.GetName(), Labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.Labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				s.Value = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				s.Value = m.GetGauge().GetValue()
			default:
				s.Value = m.GetUntyped().GetValue()
			}
			out = append(out, s)
		}
	}
	return out
}

// Series is Samples keyed by the metric's name and its labels as "name
// label=value label=value", the labels in /metrics' order (by name):
// `amtsbote_endpoint_breaker_state channel=webhook office=dd`. A metric
// without series is absent.
func Series(tb testing.TB, g prometheus.Gatherer, names ...string) map[string]float64 {
	tb.Helper()
	out := map[string]float64{}
	for _, s := range Samples(tb, g, names...) {
		key := s.Name
		for _, l := range slices.Sorted(maps.Keys(s.Labels)) {
			key += " " + l + "=" + s.Labels[l]
		}
		out[key] = s.Value
	}
	return out
}
