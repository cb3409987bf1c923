package loadtest

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"math"
	"strings"
	"testing"
)

// TestShortRun is the short version of `make bench` inside `make test`: the whole
// path under concurrent load, every package accepted and delivered, and a report.
func TestShortRun(t *testing.T) {
	res, err := Run(context.Background(), Options{N: 60, Concurrency: 6, Gateway: Gateway{DataDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 60 || res.Delivered != 60 {
		t.Fatalf("accepted %d delivered %d of 60", res.Accepted, res.Delivered)
	}
	if res.PackageBytes < 8<<10 || res.PackageBytes > 16<<10 {
		t.Errorf("package is %d bytes, want about 10 KB", res.PackageBytes)
	}
	// The whole path allocates more than its verification does; both are counted.
	if res.VerifyAllocPerPkg == 0 || res.AllocPerPkg <= res.VerifyAllocPerPkg {
		t.Errorf("allocated per package %d, per verification %d", res.AllocPerPkg, res.VerifyAllocPerPkg)
	}
	// The baseline is measured on both sides of the run, and the ratio is against
	// their mean.
	if len(res.VerifyRates) != 2 || res.VerifyRates[0] <= 0 || res.VerifyRates[1] <= 0 {
		t.Fatalf("baseline measurements %v, want one before and one after the run", res.VerifyRates)
	}
	if mean := (res.VerifyRates[0] + res.VerifyRates[1]) / 2; math.Abs(res.VerifyPerSec-mean) > 1e-6*mean ||
		math.Abs(res.DeliveredRatio-res.DeliveredPerSec/mean) > 1e-9 {
		t.Errorf("baseline %v of %v, ratio %v", res.VerifyPerSec, res.VerifyRates, res.DeliveredRatio)
	}
	var b strings.Builder
	res.Report(&b)
	// The gateway on its defaults may yield to delivery wherever it has two
	// verification slots or more; the report says whether it did.
	if res.YieldOff != (res.VerifySlots < 2) {
		t.Errorf("yield off %v with %d verification slots", res.YieldOff, res.VerifySlots)
	}
	// The gateway's own stage times: every package went through each stage (and
	// many goroutines through the run queue).
	for _, st := range res.Stages {
		if st.N < 60 || st.P50 > st.P99 {
			t.Errorf("stage %+v: want every package counted", st)
		}
	}
	if len(res.Stages) != 5 {
		t.Errorf("%d stages timed, want 5", len(res.Stages))
	}
	for _, want := range []string{"accepted", "delivered", "p99", "baseline", "before the run", "ratio", "allocated per package", "yield", "inside the gateway", "store wait"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestProfileSpansTheRunOnly: -cpuprofile promises the gateway's work from the
// first post to the last delivery. Until 2026-12-03 the profile was stopped when
// Run returned, so the baseline measured after the run (verification alone, a
// good half of the samples of a 5,000-package profile) was in it too. 400
// packages give the baseline after the run about a tenth of a second of
// verification on each CPU, so a profile that ran into it has its frames.
func TestProfileSpansTheRunOnly(t *testing.T) {
	var prof bytes.Buffer
	if _, err := Run(context.Background(), Options{N: 400, Concurrency: 8, CPUProfile: &prof, Gateway: Gateway{DataDir: t.TempDir()}}); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&prof)
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	// The profile's string table names every sampled function.
	if !bytes.Contains(raw, []byte("intake.(*Pipeline).SubmitParts")) {
		t.Error("the profile has no sample of the gateway's intake")
	}
	if bytes.Contains(raw, []byte("loadtest.(*bench).verifyRate")) {
		t.Error("the profile has samples of the baseline measured after the run")
	}
}
