package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/wire"
)

const (
	clusterPortalToken = "cluster-portal-token"
	clusterOfficeToken = "cluster-office-token"
	clusterSecret      = "whsec_Y2x1c3Rlci1zZWNyZXQtY2x1c3Rlci1zZWNyZXQ="
)

// clusterSize is the number of submissions of the short cluster test (make test);
// CLUSTER_SOAK=N runs N (make cluster-soak).
func clusterSize(t *testing.T) int {
	if v := os.Getenv("CLUSTER_SOAK"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return 60
}

// TestClusterKillsLoseNothing: three nats-server processes clustered on loopback,
// three `amtsbote serve` processes on the replicated JetStream store, portal load
// spread over all three and one office webhook. During the run one gateway and one
// NATS node are killed with SIGKILL and restarted. At the end every 201 was
// delivered and accepted, no message was stored twice, the receipts verify, and
// the office's view through any gateway is complete.
func TestClusterKillsLoseNothing(t *testing.T) {
	nodes := natstest.StartCluster(t, 3)
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if out, err := run(t, ctx, dir, "keys", "init", "-data", shared, "-gateway-id", "amtsbote-sn"); err != nil {
		t.Fatalf("keys init: %v\n%s", err, out)
	}
	pki := filepath.Join(shared, "pki")
	office, err := fachverfahren.Start(fachverfahren.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer office.Close()
	office.SetCredentials(clusterOfficeToken, clusterSecret)

	// Fixed ports: a restarted gateway comes back where the links it sent point.
	ports := natstest.FreePorts(t, 3)
	writeCfg := func(i int) string {
		return writeClusterGatewayConfig(t, filepath.Join(dir, fmt.Sprintf("gw%d", i)), ports[i],
			fmt.Sprintf("nats: {url: %q, replicas: 3}\n", nodes.URLs()), "jetstream", pki, office.URL())
	}
	var gws []*proc
	var cfgs []string
	for i := 0; i < 3; i++ {
		cfgs = append(cfgs, writeCfg(i))
		gws = append(gws, serve(t, dir, nil, "-config", cfgs[i]))
	}
	trust, err := signing.LoadTrustStore(filepath.Join(pki, "trust"))
	if err != nil {
		t.Fatal(err)
	}
	office.SetVerifier(signing.NewVerifier(trust, signing.VerifyOptions{}))
	signer, err := signing.LoadSigner(filepath.Join(pki, "portal-amt24-key.pem"), filepath.Join(pki, "portal-amt24.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key := serviceKey(t, "Gewerbe anmelden")
	n := clusterSize(t)

	var mu sync.Mutex
	urls := []string{gws[0].url, gws[1].url, gws[2].url}
	accepted := map[string]string{} // submission id -> NachrichtID
	byMsg := map[string]string{}    // NachrichtID -> submission id
	receipts := map[string][]byte{}
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				msg := paket.NewMessageID()
				p := paket.ExampleWith(key, msg, time.Now())
				p.Kopf.Ort = paket.Ort{PLZ: "01067"}
				// A portal retries another gateway when one does not answer; the same
				// NachrichtID must never become two submissions.
				for try := 0; try < 20; try++ {
					mu.Lock()
					url := urls[(i+try)%3]
					mu.Unlock()
					c := &portal.Client{BaseURL: url, Signer: signer, Token: clusterPortalToken}
					res, err := c.Submit(ctx, p)
					if err != nil || res.Status >= 500 {
						time.Sleep(200 * time.Millisecond)
						continue
					}
					if res.Status != 201 && res.Status != 200 {
						t.Errorf("refused: %d %+v", res.Status, res.Problem)
						break
					}
					mu.Lock()
					if prev, ok := byMsg[msg]; ok && prev != res.SubmissionID {
						t.Errorf("message %s stored twice: %s and %s", msg, prev, res.SubmissionID)
					}
					byMsg[msg], accepted[res.SubmissionID], receipts[res.SubmissionID] = res.SubmissionID, msg, res.Receipt
					mu.Unlock()
					break
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		switch i {
		case n / 3:
			gws[1].kill9(t) // a gateway dies with work in flight
			mu.Lock()
			urls[1] = urls[0]
			mu.Unlock()
		case n / 2:
			nodes.Kill(t, 0) // and a NATS node
		case 2 * n / 3:
			nodes.Restart(t, 0)
			gws[1] = serve(t, dir, nil, "-config", cfgs[1])
			mu.Lock()
			urls[1] = gws[1].url
			mu.Unlock()
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if len(accepted) != n {
		t.Fatalf("%d of %d submissions acknowledged", len(accepted), n)
	}

	deadline := time.Now().Add(3 * time.Minute)
	for {
		done := office.Processed()
		missing := 0
		for id := range accepted {
			if o, ok := done[id]; !ok || !o.Accepted {
				missing++
			}
		}
		if missing == 0 {
			// The queue check heals a package the queue lost; each restore is a defect
			// under it that the log line names.
			for i, g := range gws {
				if n := metricValue(g.url, "amtsbote_queue_restored_total"); n > 0 {
					t.Logf("gateway %d put %d accepted packages back on the queue:\n%s", i, n, g.stderr.String())
				}
			}
			break
		}
		if time.Now().After(deadline) {
			// Say where each missing one stands: the gateways' record, the office's view.
			var why strings.Builder
			for id := range accepted {
				if o, ok := done[id]; ok && o.Accepted {
					continue
				}
				var rec struct {
					Submission struct {
						State string `json:"state"`
					} `json:"submission"`
					Events []struct {
						Type, Channel, Detail, Note string
					} `json:"events"`
				}
				err := getJSON(ctx, gws[0].url+"/v1/admin/submissions/"+id, "admin-token", &rec)
				fmt.Fprintf(&why, "%s: office %+v; record %s (%v), events %+v\n", id, done[id], rec.Submission.State, err, rec.Events)
			}
			t.Fatalf("%d of %d acknowledged packages never reached the office\n%s\n--- gw0\n%s\n--- gw1\n%s\n--- gw2\n%s\n%s", missing, n,
				why.String(), gws[0].stderr.String(), gws[1].stderr.String(), gws[2].stderr.String(), nodes.Logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The queue check runs against the replicated store and queue (every 10 s here).
	for checked := time.Now().Add(30 * time.Second); metricValue(gws[0].url, `amtsbote_queue_checks_total{outcome="ok"}`) <= 0; {
		if time.Now().After(checked) {
			t.Fatalf("no queue check finished on gateway 0:\n%s", gws[0].stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for id, o := range office.Processed() {
		if o.Err != nil {
			t.Errorf("office failed on %s: %v", id, o.Err)
		}
	}
	// Every gateway answers for every submission; receipts verify.
	v := signing.NewVerifier(trust, signing.VerifyOptions{})
	i := 0
	for id := range accepted {
		c := &portal.Client{BaseURL: gws[i%3].url, Signer: signer, Token: clusterPortalToken}
		i++
		st, err := c.Status(ctx, id)
		if err != nil || st.State != wire.StateAccepted {
			t.Fatalf("%s via %s: %v %+v", id, c.BaseURL, err, st)
		}
		if _, err := v.Verify(receipts[id], signing.RoleGateway); err != nil {
			t.Fatalf("receipt of %s: %v", id, err)
		}
	}
	// The office's view through one gateway is complete.
	seen := map[string]bool{}
	after := ""
	for {
		var page wire.OfficeList
		if err := getJSON(ctx, gws[2].url+wire.OfficeListPath(after, 500, ""), clusterOfficeToken, &page); err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Submissions {
			seen[s.ID] = true
		}
		if page.Next == "" || len(page.Submissions) == 0 {
			break
		}
		after = page.Submissions[len(page.Submissions)-1].ID
	}
	for id := range accepted {
		if !seen[id] {
			t.Fatalf("the office's list through gateway 3 lacks %s", id)
		}
	}
}

// metricValue reads one series (name with its labels, as exposed) from a gateway's
// /metrics; -1 if it is not there.
func metricValue(base, series string) int {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\d+)$`).FindSubmatch(body)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func getJSON(ctx context.Context, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestTwoBBoltGatewaysOnOneNATS is the defect from the cluster issue: two gateways,
// each with its own bbolt file, share one nats-server. Gateway B's dispatcher took
// queue messages of packages A had accepted, did not find them in its own file and
// dropped them; they stayed queued until A restarted. Every package must be
// delivered by the gateway that holds it.
func TestTwoBBoltGatewaysOnOneNATS(t *testing.T) {
	srv := natstest.StartSingle(t)
	dir := t.TempDir()
	office, err := fachverfahren.Start(fachverfahren.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer office.Close()
	var gws []*proc
	for i := 0; i < 2; i++ {
		cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
nats: {url: %q}
delivery: {backoff_base: 100ms, backoff_max: 1s, max_attempts: 1000}
offices:
  %s:
    channels:
      webhook: {endpoint: %q, secret: %q}
`, filepath.Join(dir, fmt.Sprintf("gw%d", i)), srv.URLs(), gateway.DemoOfficeID, office.URL(), clusterSecret)
		path := filepath.Join(dir, fmt.Sprintf("gw%d.yaml", i))
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		gws = append(gws, serve(t, dir, nil, "-config", path))
	}
	dc, err := gateway.LoadDevCredentials(filepath.Join(dir, "gw0"))
	if err != nil {
		t.Fatal(err)
	}
	office.SetCredentials(dc.Offices[gateway.DemoOfficeID].Token, clusterSecret)
	client := portalClient(t, filepath.Join(dir, "gw0"), gws[0].url)
	key := serviceKey(t, "Gewerbe anmelden")
	ctx := context.Background()
	var ids []string
	for i := 0; i < 20; i++ {
		res, err := client.Submit(ctx, paket.ExampleWith(key, paket.NewMessageID(), time.Now()))
		if err != nil || res.Status != 201 {
			t.Fatalf("submit: %v %+v", err, res)
		}
		ids = append(ids, res.SubmissionID)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		done := office.Processed()
		missing := 0
		for _, id := range ids {
			if o, ok := done[id]; !ok || !o.Accepted {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d packages of gateway A never reached the office (gateway B took their queue messages?)", missing, len(ids))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeClusterGatewayConfig writes the configuration of one gateway of the cluster
// tests to dataDir+".yaml": the shared dev PKI, the demo office's webhook at hook,
// fast retries; natsLine ("" for embedded NATS) and backend choose the store.
func writeClusterGatewayConfig(t *testing.T, dataDir string, port int, natsLine, backend, pki, hook string) string {
	t.Helper()
	cfg := fmt.Sprintf(`gateway_id: amtsbote-sn
listen: 127.0.0.1:%d
data_dir: %s
%sstore: {backend: %s}
pki: {gateway_key: %s, gateway_cert: %s, trust_dir: %s}
delivery: {backoff_base: 100ms, backoff_max: 1s, max_attempts: 1000, queue_check: 10s}
admin_token: admin-token
portals:
  amt24: {token: %s}
offices:
  %s:
    token: %s
    channels:
      webhook: {endpoint: %q, secret: %q}
`, port, dataDir, natsLine, backend, filepath.Join(pki, "gateway-key.pem"), filepath.Join(pki, "gateway.pem"),
		filepath.Join(pki, "trust"), clusterPortalToken, gateway.DemoOfficeID, clusterOfficeToken, hook, clusterSecret)
	path := dataDir + ".yaml"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
