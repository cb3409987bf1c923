package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/store"
	"github.com/amtsbote/amtsbote/wire"
)

// maxGatewayHWM is the bound of the gateway's peak resident memory while it takes
// and serves an attachment of any size: memory must not grow with attachments.
const maxGatewayHWM = 100 << 20

// prngReader yields n deterministic pseudo-random bytes (ChaCha8 from seed): an
// attachment of gigabytes that is never stored on the client's side, and the same
// bytes again for every pass.
type prngReader struct {
	src  *rand.ChaCha8
	left int64
}

func newPRNG(seed byte, n int64) *prngReader {
	var s [32]byte
	s[0] = seed
	return &prngReader{src: rand.NewChaCha8(s), left: n}
}

func (r *prngReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, _ := r.src.Read(p) // ChaCha8.Read never fails
	r.left -= int64(n)
	return n, nil
}

func (r *prngReader) Close() error { return nil }

// vmHWM reads the peak resident set size of a process (Linux).
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("VmHWM: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// TestBigAttachmentBoundedMemory is the promise of streamed attachments: a portal
// sends a package with one attachment of E2E_BIGFILE_BYTES (default 2 GiB) by
// reference as multipart/related to the real binary, the office
// downloads it through the API (whole, and one range) and gets the signed digest,
// an online backup carries it whole (checked as it arrives), and the gateway's peak
// RSS (VmHWM) stays under 100 MB all along. The gateway is
// the build without the race detector (plainBinary): that is what is measured.
// The 2 GiB blob lives in the test's data folder, removed at the end.
func TestBigAttachmentBoundedMemory(t *testing.T) {
	size := int64(envInt(t, "E2E_BIGFILE_BYTES", 2<<30))
	bin := bigfileBinary(t)
	dir := t.TempDir()
	needDisk(t, dir, size, "E2E_BIGFILE_BYTES")
	p := serveBinary(t, bin, dir, []string{"AMTSBOTE_LISTEN=127.0.0.1:0", "AMTSBOTE_LOG_LEVEL=warn"})
	dataDir := filepath.Join(dir, "data")
	bigAttachment(t, p, dataDir, size, true, func(digest string) {
		// The blob is where the store keeps it, complete.
		blob := filepath.Join(dataDir, "blobs", digest[:2], digest)
		if info, err := os.Stat(blob); err != nil || info.Size() != size {
			t.Fatalf("blob file: %v %v", info, err)
		}
	})
}

// bigfileBinary is the gateway build the bigfile tests measure: without the race
// detector, whose shadow memory would be measured instead.
func bigfileBinary(t *testing.T) string {
	t.Helper()
	buildStart := time.Now()
	bin := plainBinary(t)
	t.Logf("bigfile: binary without -race ready in %s", time.Since(buildStart).Round(time.Millisecond))
	return bin
}

// needDisk says plainly when the disk under dir cannot hold the test's blob,
// instead of failing somewhere in the upload with a 503 (the disk-full answer).
func needDisk(t *testing.T, dir string, size int64, knob string) {
	t.Helper()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err == nil {
		if free := int64(fs.Bavail) * int64(fs.Bsize); free < size+512<<20 {
			t.Fatalf("the test needs %d MiB free under %s for its blob, there are %d MiB (set TMPDIR elsewhere, or %s smaller for a local run)", (size+512<<20)>>20, dir, free>>20, knob)
		}
	}
}

// bigAttachment sends a package with one attachment of size bytes by reference to
// the gateway p, lets the office download it (whole, and one range) and checks the
// signed digest and the gateway's VmHWM; stored checks where the bytes are; with
// backup, an online backup is taken and checked too (single node only).
func bigAttachment(t *testing.T, p *proc, dataDir string, size int64, backup bool, stored func(digest string)) {
	t.Helper()
	pid := p.cmd.Process.Pid
	idle := vmHWM(t, pid)
	client := portalClient(t, dataDir, p.url)
	dc, err := gateway.LoadDevCredentials(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	officeToken := dc.Offices[gateway.DemoOfficeID].Token
	if officeToken == "" {
		t.Fatalf("no dev token for office %s", gateway.DemoOfficeID)
	}

	const seed = 42
	start := time.Now()
	a, part, err := portal.StreamedAnlage("gross", "gross.bin", "application/octet-stream",
		func() (io.ReadCloser, error) { return newPRNG(seed, size), nil })
	if err != nil {
		t.Fatal(err)
	}
	hashTook := time.Since(start)
	if a.Groesse != size {
		t.Fatalf("first pass: %d bytes, want %d", a.Groesse, size)
	}
	pk := paket.ExampleWith(serviceKey(t, "Gewerbe anmelden"), paket.NewMessageID(), time.Now())
	pk.Kopf.Ort = paket.Ort{PLZ: "01067"}
	pk.Anlagen = append(pk.Anlagen, a)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start = time.Now()
	res, err := client.SubmitParts(ctx, pk, []portal.Part{part})
	if err != nil {
		t.Fatalf("upload: %v\n%s", err, p.stderr.String())
	}
	uploadTook := time.Since(start)
	if res.Status != 201 {
		t.Fatalf("upload: %d %+v", res.Status, res.Problem)
	}
	afterUpload := vmHWM(t, pid)
	stored(a.SHA256)

	get := func(rng string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+wire.OfficeAttachmentPath(res.SubmissionID, "gross"), nil)
		req.Header.Set("Authorization", "Bearer "+officeToken)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	start = time.Now()
	resp := get("")
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	downloadTook := time.Since(start)
	if err != nil || resp.StatusCode != 200 || n != size || hex.EncodeToString(h.Sum(nil)) != a.SHA256 {
		t.Fatalf("download: %d, %d of %d bytes, %v, digest %x want %s\n%s", resp.StatusCode, n, size, err, h.Sum(nil), a.SHA256, p.stderr.String())
	}
	// One range in the middle, compared with the same bytes of the generator.
	from := size/2 + 12345
	const length = 1 << 20
	resp = get(fmt.Sprintf("bytes=%d-%d", from, from+length-1))
	got, err := io.ReadAll(resp.Body)
	want := make([]byte, length)
	g := newPRNG(seed, size)
	if _, err := io.CopyN(io.Discard, g, from); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(g, want); err != nil {
		t.Fatal(err)
	}
	if err != nil || resp.StatusCode != 206 || !bytes.Equal(got, want) ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", from, from+length-1, size) {
		t.Fatalf("range: %d %q, %d bytes, equal %v, %v", resp.StatusCode, resp.Header.Get("Content-Range"), len(got), bytes.Equal(got, want), err)
	}

	var backupTook time.Duration
	if backup {
		start = time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/v1/admin/backup", nil)
		req.Header.Set("Authorization", "Bearer "+dc.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.CheckBackup(ctx, resp.Body, nil)
		resp.Body.Close()
		backupTook = time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK || st.Blobs != 1 || st.BlobBytes != size {
			t.Fatalf("backup: %d, %+v, %v\n%s", resp.StatusCode, st, err, p.stderr.String())
		}
	}

	peak := vmHWM(t, pid)
	t.Logf("bigfile: %d MiB: VmHWM idle %.1f MB, after upload %.1f MB, after download and backup %.1f MB; client hash pass %s, upload %s (%.0f MB/s), download+hash %s, backup+check %s",
		size>>20, float64(idle)/1e6, float64(afterUpload)/1e6, float64(peak)/1e6,
		hashTook.Round(time.Millisecond), uploadTook.Round(time.Millisecond), float64(size)/1e6/uploadTook.Seconds(), downloadTook.Round(time.Millisecond),
		backupTook.Round(time.Millisecond))
	if peak >= maxGatewayHWM {
		t.Fatalf("gateway VmHWM %d bytes (%.1f MB), want < %d: memory grows with the attachment", peak, float64(peak)/1e6, maxGatewayHWM)
	}
	// Free the disk now rather than at the end of the whole run.
	if err := p.terminate(t, 30*time.Second); err != nil {
		t.Logf("exit after SIGTERM: %v", err)
	}
	if err := os.RemoveAll(dataDir); err != nil {
		t.Logf("cleanup: %v", err)
	}
}

// TestSubmitAttachStreams: `amtsbote submit -attach` sends a file over -inline-max by
// reference (multipart/related), the small one inline, and the office gets both
// byte for byte.
func TestSubmitAttachStreams(t *testing.T) {
	dir := t.TempDir()
	p := serve(t, dir, []string{"AMTSBOTE_LISTEN=127.0.0.1:0", "AMTSBOTE_LOG_LEVEL=warn"})
	dataDir := filepath.Join(dir, "data")
	big := filepath.Join(dir, "bauplan.pdf")
	small := filepath.Join(dir, "notiz.txt")
	bigContent, err := io.ReadAll(newPRNG(7, 6<<20+3))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, bigContent, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(small, []byte("klein und inline"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := run(t, ctx, dir, "submit", "-url", p.url, "-data", dataDir, "-service", "Gewerbe anmelden", "-place", "01067",
		"-inline-max", "1048576", "-attach", big, "-attach", small)
	if err != nil || !strings.HasPrefix(out, "201 accepted") {
		t.Fatalf("submit: %v\n%s\n%s", err, out, p.stderr.String())
	}
	m := regexp.MustCompile(`submission: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no submission id in:\n%s", out)
	}
	dc, err := gateway.LoadDevCredentials(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	// officeGet reads a path of the office API as the demo office.
	officeGet := func(path string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+dc.Offices[gateway.DemoOfficeID].Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// The package names the big file by reference and carries the small one inline.
	_, pkg := officeGet(wire.OfficePackagePath(m[1]))
	if !bytes.Contains(pkg, []byte(`Referenz="cid:anlage-1@`)) || bytes.Contains(pkg, []byte(`Referenz="cid:anlage-2@`)) {
		t.Fatalf("package does not reference anlage-1 and inline anlage-2:\n%.2000s", pkg)
	}
	for aid, want := range map[string][]byte{"anlage-1": bigContent, "anlage-2": []byte("klein und inline")} {
		status, got := officeGet(wire.OfficeAttachmentPath(m[1], aid))
		if status != 200 || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d, %d bytes, want %d", aid, status, len(got), len(want))
		}
	}
}
