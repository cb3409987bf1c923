package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/adaptertest"
)

// harness runs the conformance suite against real folders. The receiver is the
// office's side: it decodes what is on disk (index files, package, attachments, each
// checked against the digests) and never looks at what Deliver returned. Its Confirm
// is the office's import: it finds the case folder by the delivery id in index.json,
// as an import would, and moves it away, deletes it or writes the marker.
type harness struct {
	importBy string // "move", "delete" or "marker"
}

func (h *harness) Features() adaptertest.Features {
	return adaptertest.Features{CarriesPackage: true, CarriesAttachments: true, NoHang: true, ConfirmsLater: true, KeepsCopy: true}
}

func (h *harness) NewAdapter(t testing.TB, logger *slog.Logger) adapters.Adapter {
	a, err := New(Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (h *harness) NewReceiver(t testing.TB, mode adaptertest.Mode) adaptertest.Receiver {
	base := t.TempDir()
	r := &folderReceiver{importBy: h.importBy, importDir: filepath.Join(base, "imported"), seen: map[string]*seenCase{}}
	switch mode {
	case adaptertest.ModeAccept:
		r.dir = filepath.Join(base, "office")
		mustMkdir(t, r.dir)
		prepareOffice(t, r.dir)
		mustMkdir(t, r.importDir)
	case adaptertest.ModeTransient:
		// The share is not mounted: its mount point is an empty folder of the local
		// disk, without the ledger folder. The share may come back.
		r.dir = filepath.Join(base, "mount-point")
		mustMkdir(t, r.dir)
	case adaptertest.ModePermanent:
		// Configured to a file: no retry can make it a folder.
		r.dir = filepath.Join(base, "a-file")
		if err := os.WriteFile(r.dir, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("transfer has no receiver that can %s", mode)
	}
	return r
}

// prepareOffice runs the gateway's start-up check on dir, which creates the ledger
// folder in a new (empty) office folder.
func prepareOffice(t testing.TB, dir string) {
	t.Helper()
	a, err := New(Options{Logger: slog.New(slog.DiscardHandler), NoWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.CheckTarget(adapters.Target{Channel: Channel, Endpoint: dir}); err != nil {
		t.Fatalf("start-up check of %s: %v", dir, err)
	}
}

func mustMkdir(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o750); err != nil {
		t.Fatal(err)
	}
}

type folderReceiver struct {
	dir, importDir, importBy string

	mu   sync.Mutex
	seen map[string]*seenCase // by case folder name; kept after the import took it
}

type seenCase struct {
	got Received
	at  time.Time
}

// Received is adaptertest.Received plus what the receiver needs to order it.
type Received = adaptertest.Received

func (r *folderReceiver) Target() adapters.Target {
	return adapters.Target{Channel: Channel, Endpoint: r.dir}
}

// Received lists one entry per hand-over: a case folder is decoded from disk once
// (it is immutable once renamed into place); a repeated hand-over of the same case
// (at-least-once) leaves no new folder, so the count of hand-overs comes from the
// ledger record in the office folder.
func (r *folderReceiver) Received() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scanLocked()
	handovers := r.ledgerHandovers()
	type entry struct {
		g  Received
		at time.Time
	}
	var all []entry
	for _, c := range r.seen {
		all = append(all, entry{c.got, c.at})
		for _, at := range handovers[c.got.DeliveryID] {
			all = append(all, entry{c.got, at})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	out := make([]Received, len(all))
	for i, e := range all {
		out[i] = e.g
	}
	return out
}

// ledgerHandovers maps delivery id to the times of repeated hand-overs (the first is
// the case folder itself).
func (r *folderReceiver) ledgerHandovers() map[string][]time.Time {
	out := map[string][]time.Time{}
	ents, _ := os.ReadDir(filepath.Join(r.dir, LedgerDir))
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.dir, LedgerDir, e.Name()))
		if err != nil {
			continue
		}
		var rec struct {
			DeliveryID string `json:"delivery_id"`
			Handovers  []struct {
				At time.Time `json:"at"`
			} `json:"handovers"`
		}
		if json.Unmarshal(b, &rec) != nil {
			continue
		}
		for i, h := range rec.Handovers {
			if i > 0 {
				out[rec.DeliveryID] = append(out[rec.DeliveryID], h.At)
			}
		}
	}
	return out
}

func (r *folderReceiver) scanLocked() {
	for _, root := range []string{r.dir, r.importDir} {
		ents, err := os.ReadDir(root)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue // temporary folders and the ledger are not cases
			}
			if _, ok := r.seen[e.Name()]; ok {
				continue
			}
			g, at := decodeCase(filepath.Join(root, e.Name()))
			r.seen[e.Name()] = &seenCase{got: g, at: at}
		}
	}
}

// decodeCase reads a case folder as an office's import would and reports every
// defect as Problem.
func decodeCase(dir string) (Received, time.Time) {
	g := Received{Attachments: map[string][]byte{}, AttachmentSHA256: map[string]string{}}
	var problems []string
	bad := func(f string, args ...any) { problems = append(problems, fmt.Sprintf(f, args...)) }
	defer func() { g.Problem = strings.Join(problems, "; ") }()

	jb, err := os.ReadFile(filepath.Join(dir, IndexJSONFile))
	if err != nil {
		bad("no index.json: %v", err)
		return g, time.Time{}
	}
	var ix Index
	if err := json.Unmarshal(jb, &ix); err != nil {
		bad("index.json: %v", err)
		return g, time.Time{}
	}
	g.DeliveryID, g.SubmissionID = ix.DeliveryID, ix.SubmissionID
	if ix.Format != IndexFormat || ix.Case != filepath.Base(dir) {
		bad("index.json: format %q, case %q in folder %q", ix.Format, ix.Case, filepath.Base(dir))
	}
	xb, err := os.ReadFile(filepath.Join(dir, IndexXMLFile))
	if err != nil {
		bad("no index.xml: %v", err)
	} else {
		var ixx Index
		if err := xml.Unmarshal(xb, &ixx); err != nil {
			bad("index.xml: %v", err)
		} else if a, b := mustJSON(ixx), mustJSON(ix); a != b {
			bad("index.xml and index.json differ:\n%s\n%s", a, b)
		}
		if !bytes.Contains(xb, []byte(`xmlns="`+IndexNamespace+`"`)) {
			bad("index.xml lacks its namespace")
		}
	}
	listed := map[string]bool{IndexJSONFile: true, IndexXMLFile: true}
	for _, f := range ix.Files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) {
			bad("file path %q leaves the case folder", f.Path)
			continue
		}
		listed[f.Path] = true
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			bad("listed file missing: %v", err)
			continue
		}
		s := sha256.Sum256(b)
		sum := hex.EncodeToString(s[:])
		if int64(len(b)) != f.Size || sum != f.SHA256 {
			bad("file %q: %d bytes sha256 %s, index says %d bytes %s", f.Path, len(b), sum, f.Size, f.SHA256)
		}
		switch f.Role {
		case RolePackage:
			g.Package, g.PackageSHA256 = b, sum
		case RoleAttachment:
			if _, dup := g.Attachments[f.AttachmentID]; dup {
				bad("attachment id %q twice", f.AttachmentID)
			}
			g.Attachments[f.AttachmentID], g.AttachmentSHA256[f.AttachmentID] = b, sum
			if name := strings.TrimPrefix(f.Path, AttachmentsDir+"/"); SafeName(name, 0) != name {
				bad("attachment file name %q is not safe", name)
			}
		case RoleSummary:
			if !bytes.HasPrefix(b, []byte("%PDF-")) {
				bad("summary is not a PDF")
			}
		default:
			bad("unknown role %q", f.Role)
		}
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if !listed[filepath.ToSlash(rel)] {
			bad("file %q on disk is not in the index", rel)
		}
		return nil
	})
	return g, ix.WrittenAt
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// casesOf lists the case folders of a delivery by their index.json, as an
// import finds them; dot names are the gateway's and not looked at.
func (r *folderReceiver) casesOf(t testing.TB, deliveryID string) []string {
	t.Helper()
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if owner, _ := caseOwner(filepath.Join(r.dir, e.Name())); owner == deliveryID {
			out = append(out, e.Name())
		}
	}
	return out
}

// caseOf finds the case folder of a delivery by its index.json, as an import would.
func (r *folderReceiver) caseOf(t testing.TB, deliveryID string) string {
	t.Helper()
	names := r.casesOf(t, deliveryID)
	if len(names) == 0 {
		t.Fatalf("no case folder for delivery %s in %s", deliveryID, r.dir)
	}
	return names[0]
}

// Confirm is the office's import taking the case.
func (r *folderReceiver) Confirm(t testing.TB, deliveryID string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scanLocked() // the office read it before taking it
	name := r.caseOf(t, deliveryID)
	p := filepath.Join(r.dir, name)
	var err error
	switch r.importBy {
	case "move", "":
		err = os.Rename(p, filepath.Join(r.importDir, name))
	case "delete":
		err = os.RemoveAll(p)
	case "marker":
		err = os.WriteFile(p+MarkerSuffix, nil, 0o640)
	default:
		err = errors.New("unknown import " + r.importBy)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Waiting is what the office's import would pick up of the delivery: a case
// folder of it (casesOf) in the office folder that is not marked imported.
func (r *folderReceiver) Waiting(t testing.TB, deliveryID string) bool {
	t.Helper()
	for _, name := range r.casesOf(t, deliveryID) {
		if _, err := os.Lstat(filepath.Join(r.dir, name) + MarkerSuffix); errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

var _ adaptertest.WithdrawingReceiver = (*folderReceiver)(nil)

func TestConformance(t *testing.T) {
	adaptertest.Run(t, &harness{importBy: "move"})
}

func TestConformanceImportByMarker(t *testing.T) {
	adaptertest.Run(t, &harness{importBy: "marker"})
}
