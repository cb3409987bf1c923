package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/paket"
)

func envInt(t *testing.T, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return n
	}
	return def
}

// TestSoak is promise 1 under a storm: the real binary under portal load, SIGKILLed
// at random moments (also while it recovers), an office whose endpoint fails 10 % of
// the requests and sometimes hangs. Afterwards every acknowledged package was
// delivered, no NachrichtID became two submissions, and the recovery times are
// printed. make test runs a short storm (5 kills); make soak runs ≥ 50 kills and
// ≥ 20,000 submissions (SOAK_KILLS, SOAK_N).
func TestSoak(t *testing.T) {
	kills := envInt(t, "SOAK_KILLS", 5)
	target := envInt(t, "SOAK_N", 300)
	dir := t.TempDir()
	const secret = "whsec_c29hay1zZWNyZXQtc29hay1zZWNyZXQtc29haw=="

	var mu sync.Mutex
	delivered := map[string]bool{} // submission ids the office answered 2xx for
	var hits, failed, hung atomic.Int64
	office := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(r.Header, body, secret, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, "signature", http.StatusUnauthorized)
			return
		}
		hits.Add(1)
		switch x := rand.IntN(100); {
		case x < 10:
			failed.Add(1)
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		case x < 12:
			hung.Add(1)
			select { // longer than the gateway's attempt timeout
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		var n webhook.Notification
		_ = json.Unmarshal(body, &n)
		mu.Lock()
		for _, id := range n.SubmissionIDs {
			delivered[id] = true
		}
		mu.Unlock()
	}))
	defer office.Close()

	port := natstest.FreePorts(t, 1)[0]
	cfg := filepath.Join(dir, "amtsbote.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s
delivery: {backoff_base: 100ms, backoff_max: 1s, max_attempts: 100000, attempt_timeout: 2s, breaker_threshold: -1}
offices:
  %s:
    channels:
      webhook: {endpoint: %q, secret: %q}
`, port, filepath.Join(dir, "data"), gateway.DemoOfficeID, office.URL, secret)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := serve(t, dir, nil, "-config", cfg)
	client := portalClient(t, filepath.Join(dir, "data"), p.url)
	key := serviceKey(t, "Gewerbe anmelden")

	acked := map[string]string{} // NachrichtID -> submission id
	var dup atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && int(sent.Load()) < target {
				msg := paket.NewMessageID()
				pk := paket.ExampleWith(key, msg, time.Now())
				// A portal retries with the same NachrichtID until it has an answer.
				for ctx.Err() == nil {
					res, err := client.Submit(context.Background(), pk)
					if err != nil || res.Status >= 500 {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					if res.Status != 201 && res.Status != 200 {
						t.Errorf("refused: %d %+v", res.Status, res.Problem)
						return
					}
					mu.Lock()
					if prev, ok := acked[msg]; ok && prev != res.SubmissionID {
						dup.Add(1)
					}
					acked[msg] = res.SubmissionID
					mu.Unlock()
					sent.Add(1)
					break
				}
			}
		}()
	}
	var recoveries []time.Duration
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(200+rand.IntN(1500)) * time.Millisecond)
		p.kill9(t)
		start := time.Now()
		p = serve(t, dir, nil, "-config", cfg) // waits until /readyz answers
		recoveries = append(recoveries, time.Since(start))
		if rand.IntN(3) == 0 { // sometimes kill again right in the recovery
			time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
			p.kill9(t)
			k++
			start = time.Now()
			p = serve(t, dir, nil, "-config", cfg)
			recoveries = append(recoveries, time.Since(start))
		}
	}
	for int(sent.Load()) < target && !t.Failed() {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()

	// The backlog drains at the pace the office allows: with the default per-office
	// cap (2 attempts at once) and 2 % of requests hanging past the 2 s attempt
	// timeout, about 50 packages a second. So wait while deliveries make progress;
	// a package is lost when delivery stands still for a minute, or after 20.
	drainStart := time.Now()
	deadline := drainStart.Add(20 * time.Minute)
	var lost []string
	progress, last := time.Now(), -1
	for {
		mu.Lock()
		lost = lost[:0]
		for _, id := range acked {
			if !delivered[id] {
				lost = append(lost, id)
			}
		}
		mu.Unlock()
		if len(lost) != last {
			progress, last = time.Now(), len(lost)
		}
		if len(lost) == 0 || time.Now().After(deadline) || time.Since(progress) > time.Minute {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	drained := time.Since(drainStart)
	sort.Slice(recoveries, func(i, j int) bool { return recoveries[i] < recoveries[j] })
	med, worst := recoveries[len(recoveries)/2], recoveries[len(recoveries)-1]
	t.Logf("soak: %d kills, %d acknowledged, %d delivered, %d lost, %d duplicate submissions; office answered %d requests, failed %d, hung %d; recovery (start to ready) median %s, max %s; backlog after the load drained in %s",
		len(recoveries), len(acked), len(acked)-len(lost), len(lost), dup.Load(), hits.Load(), failed.Load(), hung.Load(), med.Round(time.Millisecond), worst.Round(time.Millisecond), drained.Round(time.Second))
	if len(lost) > 0 || dup.Load() > 0 {
		t.Fatalf("%d acknowledged packages never delivered, %d duplicates\n%s", len(lost), dup.Load(), p.stderr.String())
	}
}
