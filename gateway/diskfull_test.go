package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
)

// smallFS mounts a tmpfs of the given size for the test (root only; CI runs as
// root) and unmounts it afterwards: a real full disk, not a mocked error.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount a %s tmpfs (the disk-full test needs root, as CI has): %v", size, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes a file until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// TestDiskFullAnswers503AndRecovers: on a full disk intake answers 503 with
// Retry-After and a problem document — never a 201 it did not persist — reads keep
// working, and once space returns intake resumes by itself and what was accepted
// before is delivered.
func TestDiskFullAnswers503AndRecovers(t *testing.T) {
	data := smallFS(t, "24m")
	hash := cheapHash(t, "pruefer-passwort")
	f := start(t, func(c *config.Config) {
		c.DataDir = data
		c.Mailbox.Users = []config.MailboxUser{{Name: "anna", Office: DemoOfficeID, PasswordHash: hash}}
	})
	ctx := context.Background()
	before, err := f.portal.Submit(ctx, f.example())
	if err != nil || !before.Accepted() {
		t.Fatalf("submit before: %v %+v", err, before)
	}
	filler := fillUntilRefused(t, f, data)
	// The Retry-After header, seen raw.
	req, _ := http.NewRequest(http.MethodGet, f.g.URL()+"/healthz", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz on a full disk: %v", err)
	} else {
		resp.Body.Close()
	}
	p := f.example()
	body, err := f.portal.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(f.g.URL()+"/v1/submissions", "application/xml", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Reads keep working.
	if st, err := f.portal.Status(ctx, before.SubmissionID); err != nil || st.ID != before.SubmissionID {
		t.Fatalf("status read on a full disk: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	after, err := f.portal.Submit(ctx, f.example())
	if err != nil || after.Status != http.StatusCreated {
		t.Fatalf("after space returned: %v %+v", err, after)
	}
	for _, id := range []string{before.SubmissionID, after.SubmissionID} {
		waitFor(t, "the mailbox hand-over of "+id, func() bool {
			s, err := f.g.Broker.Submission(id)
			return err == nil && s.State == submission.StateHandedOver
		})
	}
}

// TestDiskFullIsNotReady: a single node whose data disk refuses writes says so on
// /readyz (503, a problem naming the disk) instead of "ready", so that a load
// balancer sends portals elsewhere; with nobody writing to it, it tries a write
// itself and is ready again once the disk has room. The room left is on /metrics
// before it runs out.
func TestDiskFullIsNotReady(t *testing.T) {
	data := smallFS(t, "24m")
	f := start(t, func(c *config.Config) { c.DataDir = data })
	ctx := context.Background()
	if code, st := readyStatus(t, f.g.URL()); code != http.StatusOK || st != "ready" {
		t.Fatalf("before: %d %s", code, st)
	}
	if v := scrapeValue(t, f.g.URL(), "amtsbote_data_disk_size_bytes"); v != "2.5165824e+07" {
		t.Fatalf("amtsbote_data_disk_size_bytes of a 24 MiB tmpfs: %q", v)
	}
	if v, err := strconv.ParseFloat(scrapeValue(t, f.g.URL(), "amtsbote_data_disk_available_bytes"), 64); err != nil || v < 1<<20 {
		t.Fatalf("amtsbote_data_disk_available_bytes before filling: %v %v", v, err)
	}
	if res, err := f.portal.Submit(ctx, f.example()); err != nil || !res.Accepted() {
		t.Fatalf("submit before: %v %+v", err, res)
	}
	filler := fillUntilRefused(t, f, data)

	resp, err := http.Get(f.g.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Type, Detail string }
	err = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" ||
		resp.Header.Get("Retry-After") == "" || !strings.HasSuffix(p.Type, "/unavailable") ||
		!strings.Contains(p.Detail, "data disk") || !strings.Contains(p.Detail, "no space left on device") {
		t.Fatalf("/readyz on a full disk: %d %q Retry-After %q %+v %v", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), p, err)
	}
	// Nobody writes now (a load balancer would send nothing), yet the gateway
	// keeps trying: the failures go on rising, and with them the alert.
	failures := func() float64 {
		v, err := strconv.ParseFloat(scrapeValue(t, f.g.URL(), "amtsbote_store_commit_failures_total"), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	n := failures()
	waitFor(t, "a probe write refused", func() bool { return failures() > n })
	waitFor(t, "the gauge to show the disk full", func() bool {
		v, err := strconv.ParseFloat(scrapeValue(t, f.g.URL(), "amtsbote_data_disk_available_bytes"), 64)
		return err == nil && v < 1<<20
	})

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready again without a request that writes", func() bool {
		code, st := readyStatus(t, f.g.URL())
		return code == http.StatusOK && st == "ready"
	})
	if res, err := f.portal.Submit(ctx, f.example()); err != nil || res.Status != http.StatusCreated {
		t.Fatalf("after space returned: %v %+v", err, res)
	}
}

// TestNearlyFullDiskStaysNotReady: on a nearly full disk a small commit fits
// where a larger one did not, and /readyz followed the latest commit: 503 and
// 200 in turn, and a load balancer took the node out and back with each. Once
// refused, the node stays not ready — through commits that succeed and through
// test writes that succeed — until the disk has room again above where it
// refused (a twentieth of this 24 MiB disk, as that is less than a package of
// the largest size).
func TestNearlyFullDiskStaysNotReady(t *testing.T) {
	data := smallFS(t, "24m")
	var logs testenv.Buffer
	f := startLogged(t, slog.New(slog.NewTextHandler(&logs, nil)), func(c *config.Config) { c.DataDir = data })
	ctx := context.Background()
	if res, err := f.portal.Submit(ctx, f.example()); err != nil || !res.Accepted() {
		t.Fatalf("submit before: %v %+v", err, res)
	}
	filler := fillUntilRefused(t, f, data)
	if code, _ := readyStatus(t, f.g.URL()); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with commits refused: %d", code)
	}

	// A little room, less than the node needs to come back: packages fit again.
	fi, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, fi.Size()-640<<10); err != nil {
		t.Fatal(err)
	}
	accepted := false
	for i := 0; i < 20 && !accepted; i++ {
		res, err := f.portal.Submit(ctx, f.example())
		if err != nil {
			t.Fatal(err)
		}
		accepted = res.Status == http.StatusCreated
	}
	if !accepted {
		t.Fatal("no package fitted into the room made")
	}
	if code, _ := readyStatus(t, f.g.URL()); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz after one commit fitted on a nearly full disk: %d, want 503 until there is room", code)
	}
	// The gateway's own test writes succeed too, and still the room is short.
	waitFor(t, "the test writes to succeed", func() bool { return strings.Contains(logs.String(), "has little room") })
	resp, err := http.Get(f.g.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Detail string }
	err = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(p.Detail, "no space left on device") || !strings.Contains(p.Detail, "more room") {
		t.Fatalf("/readyz with writes succeeding but little room: %d %+v %v", resp.StatusCode, p, err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready again once the room is back", func() bool {
		code, st := readyStatus(t, f.g.URL())
		return code == http.StatusOK && st == "ready"
	})
	if n := strings.Count(logs.String(), "the data disk refuses writes"); n != 1 {
		t.Fatalf("%d log lines that the disk refuses writes for one outage:\n%s", n, logs.String())
	}
}

// fillUntilRefused fills data's file system (a file "filler", returned for the
// test to remove) and submits until the gateway refuses a package for want of
// room: 503 unavailable. Packages that still fit are durable all the same;
// bbolt may have free pages left for a few.
func fillUntilRefused(t *testing.T, f *fixture, data string) string {
	t.Helper()
	filler := filepath.Join(data, "filler")
	fill(t, filler)
	for i := 0; i < 20; i++ {
		res, err := f.portal.Submit(context.Background(), f.example())
		if err != nil {
			t.Fatal(err)
		}
		switch res.Status {
		case http.StatusCreated:
			continue
		case http.StatusServiceUnavailable:
			if !strings.HasSuffix(res.Problem.Type, "/unavailable") {
				t.Fatalf("503 with type %q", res.Problem.Type)
			}
			return filler
		default:
			t.Fatalf("on a full disk: status %d %+v", res.Status, res.Problem)
		}
	}
	t.Fatal("the disk never got full enough to refuse a package")
	return ""
}
