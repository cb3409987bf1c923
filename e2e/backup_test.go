package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/store"
)

// TestBackupRestoresOnTheBinary: online backups fetched from the running binary
// while portals keep submitting — with plain HTTP (GET /v1/admin/backup, as curl
// would; tar unpacks it, manifest last) and with `amtsbote store backup`, which
// checks it as it arrives — and `amtsbote store restore` into an empty data folder
// give a gateway that holds every package acknowledged before the backup began:
// with the office down until then, they were all still waiting, and the restored
// gateway delivers them — package and a 1 MiB attachment (a blob file, not inline),
// each checked by the office against its digest — and returns every
// Eingangsbestaetigung byte for byte. A second restore over it is refused.
func TestBackupRestoresOnTheBinary(t *testing.T) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Fatal("tar is needed to unpack the backup as an operator would: ", err)
	}
	g := startWithOfficeDown(t)
	dir, office, dataDir, p, dc, client, key := g.dir, g.office, g.dataDir, g.p, g.dc, g.client, g.key
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	receipts := map[string][]byte{} // submission id -> Eingangsbestaetigung
	for i := 0; i < 5; i++ {
		res, err := client.Submit(ctx, paket.ExampleWith(key, paket.NewMessageID(), time.Now()))
		if err != nil || res.Status != http.StatusCreated {
			t.Fatalf("submit: %v %+v", err, res)
		}
		receipts[res.SubmissionID] = res.Receipt
	}
	const size = 1 << 20 // over the inline limit: a blob file
	a, part, err := portal.StreamedAnlage("plan", "plan.bin", "application/octet-stream",
		func() (io.ReadCloser, error) { return newPRNG(7, size), nil })
	if err != nil {
		t.Fatal(err)
	}
	pk := paket.ExampleWith(key, paket.NewMessageID(), time.Now())
	pk.Kopf.Ort = paket.Ort{PLZ: "01067"}
	pk.Anlagen = append(pk.Anlagen, a)
	res, err := client.SubmitParts(ctx, pk, []portal.Part{part})
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit with attachment: %v %+v", err, res)
	}
	receipts[res.SubmissionID] = res.Receipt
	withAttachment := res.SubmissionID

	// Portals go on submitting during the backup.
	var wg sync.WaitGroup
	during, stopDuring := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for during.Err() == nil {
			_, _ = client.Submit(during, paket.ExampleWith(key, paket.NewMessageID(), time.Now()))
		}
	}()
	// As an operator with curl would, and with the binary's own command, which
	// checks the backup as it arrives.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/v1/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+dc.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "backup.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, resp.Body)
	resp.Body.Close()
	f.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("backup: %d, %d bytes, %v\n%s", resp.StatusCode, n, err, p.stderr.String())
	}
	checked := filepath.Join(dir, "checked.tar")
	out, err := run(t, ctx, dir, "store", "backup", "-config", g.cfgPath, "-url", p.url, "-out", checked)
	stopDuring()
	wg.Wait()
	if err != nil || !strings.Contains(out, "checked") {
		t.Fatalf("amtsbote store backup: %v\n%s", err, out)
	}
	if err := p.terminate(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// Restore: keys and credentials come from the operator's configuration, the
	// store from the backup. The curl archive unpacks with tar, manifest last; the
	// checked one goes in with the binary's own command.
	scratch := t.TempDir()
	if out, err := exec.Command(tarBin, "-xf", archive, "-C", scratch).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	list, err := exec.Command(tarBin, "-tf", archive).Output()
	if names := strings.Fields(string(list)); err != nil || len(names) < 3 || names[len(names)-1] != store.BackupManifest {
		t.Fatalf("tar -t: %v, %q", err, list)
	}
	var manifest store.BackupStats
	if b, err := os.ReadFile(filepath.Join(scratch, store.BackupManifest)); err != nil || json.Unmarshal(b, &manifest) != nil || !manifest.Complete || manifest.Blobs < 1 {
		t.Fatalf("manifest %+v, %v", manifest, err)
	}
	dir2 := t.TempDir()
	data2 := filepath.Join(dir2, "data")
	if err := os.MkdirAll(data2, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(dataDir, "pki"), filepath.Join(dataDir, gateway.DevCredentialsFile), data2).CombinedOutput(); err != nil {
		t.Fatalf("copy keys: %v\n%s", err, out)
	}
	cfg2 := writeConfig(t, dir2, office.URL())
	if out, err := run(t, ctx, dir2, "store", "restore", "-config", cfg2, "-in", checked); err != nil || !strings.Contains(out, "restored into") {
		t.Fatalf("amtsbote store restore: %v\n%s", err, out)
	}
	if out, err := run(t, ctx, dir2, "store", "restore", "-config", cfg2, "-in", checked); err == nil {
		t.Fatalf("a second restore over the restored store succeeded:\n%s", out)
	}
	// Every package and attachment of the restored store reads back whole.
	if out, err := run(t, ctx, dir2, "store", "verify", "-config", cfg2); err != nil || !regexp.MustCompile(`verify: ([6-9]|\d\d+) submissions, \d+ blobs read, 0 unreadable`).MatchString(out) {
		t.Fatalf("amtsbote store verify: %v\n%s", err, out)
	}
	office.SetFailFirst(0)
	p2 := serve(t, dir2, nil, "-config", cfg2)
	client.BaseURL = p2.url
	waitAccepted(t, office, maps.Keys(receipts), 90*time.Second, p2)
	for id, want := range receipts {
		o := office.Processed()[id]
		if o.Err != nil {
			t.Fatalf("office on %s: %v", id, o.Err)
		}
		if id == withAttachment && o.Attachments != len(pk.Anlagen) {
			t.Fatalf("the attachment package reached the office with %d of %d attachments", o.Attachments, len(pk.Anlagen))
		}
		got, err := client.Receipt(ctx, id, "eingang")
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("restored receipt of %s: %v, same bytes %v", id, err, bytes.Equal(got, want))
		}
	}
}
