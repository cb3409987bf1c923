package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/gateway"
	"github.com/amtsbote/amtsbote/mailbox/mailboxclient"
	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/portal"
	"github.com/amtsbote/amtsbote/wire"
	"github.com/amtsbote/amtsbote/xta/xtaclient"
)

// The applicant of TestPersonalDataStaysOutOfLogsMetricsAndQueue: every value is
// a string no id, digest, time or configuration of the gateway contains, so a
// find is a leak and no accident.
const (
	piiName     = "Quellenmeyer-Zyxw"
	piiGiven    = "Hildtraut"
	piiStreet   = "Vogelbeerzyxwgasse"
	piiBirth    = "1961-04-13"
	piiEmail    = "h.quellenmeyer-zyxw@example.org"
	piiFile     = "Personalausweis_" + piiName + ".pdf"
	piiScanText = "Ausweisscan Hildtraut Quellenmeyer-Zyxw"
	piiReason   = "Frau " + piiName + " hat die Unterschrift vergessen"
	piiBescheid = "Bescheid an Frau Hildtraut " + piiName + ", " + piiStreet + " 17"
	piiOffice   = "Der Antrag von " + piiName + ", geboren " + piiBirth + ", hat keine Gewerbeart"
	piiPlace    = "Zyxwhausen bei Quellenmeyer"
	piiNote     = "Loeschersuchen von Frau " + piiName
	piiErased   = "Erasminaqx"
)

// piiMarkers are the pieces a leak would show: the surname's first half (a
// log that cut or escaped the whole would still show it), the given name,
// street, birth date, e-mail, file name, and the words of the office, the
// clerk and the operator. Each has 8 characters at least: the data folder's
// keys and tokens are base64, where a shorter one could turn up by chance.
var piiMarkers = []string{"Quellenmeyer", piiGiven, piiStreet, piiBirth, "h.quellenmeyer", "Personalausweis_", "Unterschrift vergessen", "keine Gewerbeart", "Loeschersuchen"}

// piiForms are the ways a marker may be written down: as it is, and in base64
// at each of the three alignments (a JSON []byte, a NATS header, a MIME part).
func piiForms(m string) []string {
	forms := []string{m, strings.ToLower(m)}
	for pad := range 3 {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x00", pad) + m))
		// Drop the characters the padding and the cut at the end touch.
		first, last := (pad*8+5)/6+1, len(enc)-4
		if last-first >= 8 {
			forms = append(forms, enc[first:last])
		}
	}
	return forms
}

// findPII returns the markers (in any of their forms) that text holds.
func findPII(text []byte) []string {
	var found []string
	for _, m := range piiMarkers {
		for _, f := range piiForms(m) {
			if bytes.Contains(text, []byte(f)) {
				found = append(found, fmt.Sprintf("%q", f))
				break
			}
		}
	}
	return found
}

// piiPackage is the Gewerbe-anmelden package of the applicant for the place with
// area key ars: her name, e-mail and address in the Antragsteller, her birth
// date and name in the form, and an ID scan whose file name has her name.
func piiPackage(key, ars string) *paket.Paket {
	p := paket.ExampleWith(key, paket.NewMessageID(), time.Now().UTC().Truncate(time.Second))
	p.Kopf.Ort = paket.Ort{ARS: ars}
	p.Antragsteller = &paket.Antragsteller{GivenName: piiGiven, FamilyName: piiName, Email: piiEmail,
		Address: &paket.Address{Street: piiStreet, HouseNo: "17", PostalCode: "01067", City: "Dresden", Country: "DE"}}
	form := etree.NewElement("g:Gewerbeanmeldung")
	form.CreateAttr("xmlns:g", "urn:amtsbote:test:gewerbe:1")
	form.CreateElement("g:Name").SetText(piiGiven + " " + piiName)
	form.CreateElement("g:Geburtsdatum").SetText(piiBirth)
	form.CreateElement("g:Anschrift").SetText(piiStreet + " 17, 01067 Dresden")
	p.Fachdaten = paket.FachdatenXML("urn:amtsbote:test:gewerbe:1", form)
	p.Anlagen = []paket.Anlage{paket.NewAnlage("anlage-1", piiFile, "application/pdf", paket.ExamplePDF(piiScanText))}
	return p
}

// TestPersonalDataStaysOutOfLogsMetricsAndQueue checks the record of processing
// activities (docs/operations.md, "Personal data: where it lives and when it
// goes") on the built binary: an applicant whose name, address, birth date,
// e-mail and file names are unmistakable goes through every path a gateway
// sees — webhook delivery with an acceptance, a rejection and a Bescheid, a
// webhook office whose endpoint fails with words that quote the application
// and whose clerk then replies and rejects in the web mailbox, an attachment
// as a part of its own, the pull API, a transfer folder, refused packages, a
// malformed XTA request, paths that name her, an erasure by the operator —
// with the log at debug level, as JSON and as text. Then no marker
// may be in the log, in /metrics or in the files of jetstream/, while the
// store and the offices must hold them (so the data did flow, and a marker
// the test looked for the wrong way would fail there first).
func TestPersonalDataStaysOutOfLogsMetricsAndQueue(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	transferDir := filepath.Join(dir, "transfer")
	if err := os.MkdirAll(transferDir, 0o700); err != nil {
		t.Fatal(err)
	}

	// Dresden (the demo office) takes webhooks: it rejects the packages whose
	// form has "ablehnen" and sends a Bescheid for the others.
	var officeSaw atomic.Int64 // packages the offices read with the markers in them
	dresden, err := fachverfahren.Start(fachverfahren.Options{
		Decide: func(_ webhook.Notification, pkg []byte) (bool, string) {
			if bytes.Contains(pkg, []byte(piiName)) {
				officeSaw.Add(1)
			}
			if bytes.Contains(pkg, []byte("ablehnen")) {
				return false, piiReason
			}
			return true, ""
		},
		Bescheid: func(webhook.Notification, []byte) fachverfahren.Reply {
			// Named as a clerk names it: the applicant's name must not go
			// into a log with it.
			return fachverfahren.Reply{Kind: "Bescheid", ContentType: "application/pdf", FileName: "Bescheid " + piiName + ".pdf", Content: paket.ExamplePDF(piiBescheid)}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dresden.Close() })
	// Freiberg's endpoint fails with words that quote the application, as a
	// Fachverfahren's validation does: first as a 503 (tried again), then 422.
	var failed atomic.Int64
	freiberg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if failed.Add(1) < 3 {
			w.WriteHeader(503)
		} else {
			w.WriteHeader(422)
		}
		fmt.Fprintf(w, "%s; Anlage %s; Rückfragen an %s", piiOffice, piiFile, piiEmail)
	}))
	t.Cleanup(freiberg.Close)

	overlay := filepath.Join(dir, "directory.yaml")
	const gewerbe = "99050012104000"
	dirYAML := fmt.Sprintf(`offices:
  - id: pii-freiberg
    name: "Stadt Freiberg, Gewerbeamt"
    hausanschrift: {strasse: "Obermarkt 24", plz: "09599", ort: Freiberg}
    kanaele: [{kind: %s}]
  - id: pii-leipzig
    name: "Stadt Leipzig, Gewerbeamt"
    hausanschrift: {strasse: "Martin-Luther-Ring 4", plz: "04109", ort: Leipzig}
    kanaele: [{kind: %s}]
  - id: pii-chemnitz
    name: "Stadt Chemnitz, Gewerbeamt"
    hausanschrift: {strasse: "Markt 1", plz: "09111", ort: Chemnitz}
    kanaele: [{kind: %s}]
responsibilities:
  - {leistung: "%s", gebiet: "145220180180", stelle: pii-freiberg}
  - {leistung: "%s", gebiet: "147130000000", stelle: pii-leipzig}
  - {leistung: "%s", gebiet: "145110000000", stelle: pii-chemnitz}
`, channel.Webhook, channel.API, channel.Transfer, gewerbe, gewerbe, gewerbe)
	if err := os.WriteFile(overlay, []byte(dirYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	// Freiberg's clerk works in the web mailbox, where the package goes when
	// the office's endpoint refuses it for good.
	const clerkPassword = "pii-clerk-password-0123456789"
	hash, err := bcrypt.GenerateFromPassword([]byte(clerkPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	clerkHash := string(hash)
	const leipzigToken = "pii-leipzig-token-0123456789abcdef0123456789"
	writeCfg := func(format string) string {
		cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
log_level: debug
log_format: %s
delivery:
  backoff_base: 50ms
  backoff_max: 200ms
  max_attempts: 3
xta:
  listen: 127.0.0.1:0
directory:
  files: [%q]
offices:
  %s:
    webhook:
      url: %s
    channels:
      xta: {endpoint: %q, params: {mode: pull}}
  pii-freiberg:
    channels:
      webhook: {endpoint: %q, secret: %q}
  pii-leipzig:
    token: %q
    channels:
      api: {}
  pii-chemnitz:
    channels:
      transfer: {endpoint: %q}
mailbox:
  users:
    - {name: clerk.freiberg, office: pii-freiberg, password_hash: %q}
`, dataDir, format, overlay, gateway.DemoOfficeID, dresden.URL(), xtaDresden, freiberg.URL, webhook.NewSecret(), leipzigToken, transferDir, clerkHash)
		path := filepath.Join(dir, "amtsbote-"+format+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	// Part one, the log as JSON.
	p := serve(t, dir, nil, "-config", writeCfg("json"))
	dc, err := gateway.LoadDevCredentials(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	oc := dc.Offices[gateway.DemoOfficeID]
	dresden.SetCredentials(oc.Token, oc.Channels[channel.Webhook].Secret)
	client := portalClient(t, dataDir, p.url)
	key := serviceKey(t, "Gewerbe anmelden")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	submit := func(pk *paket.Paket) string {
		t.Helper()
		res, err := client.Submit(ctx, pk)
		if err != nil || res.Status != 201 {
			t.Fatalf("submit: %v %+v %+v", err, res, res.Problem)
		}
		return res.SubmissionID
	}
	// The case the operator erases later has a second given name and a file
	// of its own, which no other case has: after the erasure the store must
	// not hold them any more (the table: bytes go on erasure, freed pages are
	// overwritten; file names go with the bytes).
	erasable := piiPackage(key, "146120000000")
	erasable.Antragsteller.GivenName += " " + piiErased
	erasable.Fachdaten.XML[0].CreateElement("g:Zweitname").SetText(piiErased)
	erasable.Anlagen = append(erasable.Anlagen, paket.NewAnlage("anlage-2", "Meldebescheinigung_"+piiErased+".pdf", "application/pdf",
		paket.ExamplePDF("Meldebescheinigung "+piiErased+" "+piiName)))
	accepted := submit(erasable)
	rej := piiPackage(key, "146120000000")
	rej.Fachdaten.XML[0].CreateElement("g:Wunsch").SetText("ablehnen")
	rejected := submit(rej)
	toFreiberg := submit(piiPackage(key, "145220180180"))
	toLeipzig := submit(piiPackage(key, "147130000000"))
	toChemnitz := submit(piiPackage(key, "145110000000"))

	// An attachment sent as a part of its own (multipart/related), whose
	// Content-ID the portal made of its file name; once as declared, once with
	// other bytes than the signed digest says (refused).
	multi := func(content []byte) *portal.Result {
		t.Helper()
		pk := piiPackage(key, "146120000000")
		scan := paket.ExamplePDF(piiScanText + " Rueckseite")
		an, part, err := portal.StreamedAnlage("anlage-2", "Rueckseite_"+piiFile, "application/pdf",
			func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(scan)), nil })
		if err != nil {
			t.Fatal(err)
		}
		an.Referenz, part.ContentID = "cid:"+piiFile+"@amt24.example", piiFile+"@amt24.example"
		if content != nil {
			part.Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil }
		}
		pk.Anlagen = append(pk.Anlagen, an)
		res, err := client.SubmitParts(ctx, pk, []portal.Part{part})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := multi(nil)
	if res.Status != 201 {
		t.Fatalf("multipart: %d %+v", res.Status, res.Problem)
	}
	multipart := res.SubmissionID
	if res := multi(paket.ExamplePDF("Quellenmeyer-Zyxw, andere Seite")); res.Status != 422 {
		t.Fatalf("multipart with another part: %d %+v", res.Status, res.Problem)
	} else {
		t.Logf("refused: %s %s %v", res.Problem.Type, res.Problem.Detail, res.Problem.Extra)
	}

	// Refused packages: a place nobody knows (the place is echoed to the
	// portal), an attachment whose digest does not match (its file name is).
	unknown := piiPackage(key, "")
	unknown.Kopf.Ort = paket.Ort{Name: piiPlace}
	badDigest := piiPackage(key, "146120000000")
	badDigest.Anlagen[0].SHA256 = strings.Repeat("ab", 32)
	for _, pk := range []*paket.Paket{unknown, badDigest} {
		res, err := client.Submit(ctx, pk)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != 422 || res.Problem == nil {
			t.Fatalf("refusal: %d %+v", res.Status, res.Problem)
		}
		// The problem goes back to the portal that sent the package; it may
		// quote what the portal sent.
		t.Logf("refused: %s %s %v", res.Problem.Type, res.Problem.Detail, res.Problem.Extra)
	}

	// Leipzig's system fetches by the pull API.
	leipzig, err := fachverfahren.Start(fachverfahren.Options{Token: leipzigToken,
		Decide: func(_ webhook.Notification, pkg []byte) (bool, string) {
			if bytes.Contains(pkg, []byte(piiName)) {
				officeSaw.Add(1)
			}
			return true, ""
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leipzig.Close() })
	waitState := func(id string, want ...wire.State) *wire.StatusView {
		t.Helper()
		for {
			st, err := client.Status(context.Background(), id)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			for _, w := range want {
				if st.State == w {
					return st
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: state %s, want %v\n%s", id, st.State, want, quiet(p.stderr.String()))
			}
			if id == toLeipzig {
				leipzig.Poll(ctx, p.url)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitState(accepted, wire.StateAccepted)
	waitState(rejected, wire.StateRejected)
	waitState(multipart, wire.StateAccepted) // its office downloaded the part
	waitState(toLeipzig, wire.StateAccepted)
	waitState(toChemnitz, wire.StateHandedOver, wire.StateDelivered) // delivered once the office confirms the import
	// Freiberg's endpoint answered 503 twice and then 422: the package went on
	// to the web mailbox, where the clerk opens it, sends a Bescheid whose
	// file name has the applicant's name, and rejects it with a reason that
	// names her.
	st := waitState(toFreiberg, wire.StateHandedOver)
	if failed.Load() < 3 {
		t.Fatalf("Freiberg's endpoint was called %d times, state %s", failed.Load(), st.State)
	}
	clerk := mailboxclient.New(p.url + gateway.MailboxPath + "/")
	if _, err := clerk.Login(ctx, "clerk.freiberg", clerkPassword); err != nil {
		t.Fatal(err)
	}
	if page, err := clerk.Open(ctx, toFreiberg); err != nil || !strings.Contains(page, piiName) {
		t.Fatalf("the clerk's page of the case: %v", err)
	}
	if _, err := clerk.Reply(ctx, toFreiberg, "Bescheid", "Bescheid_"+piiName+".pdf", paket.ExamplePDF(piiBescheid)); err != nil {
		t.Fatal(err)
	}
	if _, err := clerk.Decide(ctx, toFreiberg, false, piiReason+" (Gewerbeamt Freiberg)"); err != nil {
		t.Fatal(err)
	}
	waitState(toFreiberg, wire.StateRejected)
	// Wait until the Bescheid is stored (it is sent after the acceptance).
	for {
		st := waitState(accepted, wire.StateAccepted)
		if len(st.Replies) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no Bescheid")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := officeSaw.Load(); n < 3 {
		t.Fatalf("the offices read %d packages with the applicant's name", n)
	}
	// The case folder in Chemnitz's transfer folder has the file and its name.
	var inFolder bool
	filepath.WalkDir(transferDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == piiFile {
			inFolder = true
		}
		return nil
	})
	if !inFolder {
		t.Fatalf("no %s in the transfer folder", piiFile)
	}

	// Dresden's system on XTA sends a reply whose metadata an unescaped "&"
	// broke just before the applicant's name: the XML parser's error quotes
	// what follows it.
	m := regexp.MustCompile(`XTA 2 transport service listening.*"addr":"([^"]+)"`).FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no XTA listener in the log")
	}
	pkiDir := filepath.Join(dataDir, "pki")
	office := xtaclient.Party{Identifier: xtaDresden, Scheme: "xoev", Name: "Stadt Dresden", Directory: "DVDV"}
	xc, err := xtaclient.New(xtaclient.Options{BaseURL: "https://" + strings.Trim(m[1], `"`) + "/services/XTACore/", Party: office,
		TLS: devTLS(t, pkiDir, filepath.Join(pkiDir, "tls-client-"+gateway.DemoOfficeID+".pem"), filepath.Join(pkiDir, "tls-client-"+gateway.DemoOfficeID+"-key.pem"))})
	if err != nil {
		t.Fatal(err)
	}
	defer xc.CloseIdleConnections()
	broken := "\n      <ns:MessageMetaData><ns:Qualifier><ns:Subject>Bescheid Hildtraut &" + piiName + " " + piiBirth + "</ns:Subject></ns:Qualifier></ns:MessageMetaData>"
	r, err := xc.Post(ctx, xtaclient.PortSender, xtaclient.ContentType(xtaclient.Action(xtaclient.PortSender, "sendMessage")), xtaclient.Envelope(office, broken, ""))
	if err != nil || r.Fault == nil {
		t.Fatalf("a malformed sendMessage: %v %+v", err, r)
	}
	// The fault goes back to the office's system, which sent the words.
	t.Logf("XTA fault: %+v", r.Fault)

	metrics := func(url string) []byte {
		t.Helper()
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte("amtsbote_")) {
			t.Fatalf("/metrics: %d\n%.300s", resp.StatusCode, b)
		}
		return b
	}
	metricsJSON := metrics(p.url)
	scanDataFolder(t, "while running", dataDir, transferDir)
	if err := p.terminate(t, 30*time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	logJSON := p.stderr.String() + p.stdout.String()
	// It is JSON and has debug lines, or the check below would prove little.
	if !strings.Contains(logJSON, `"level":"DEBUG"`) || !strings.Contains(logJSON, `"msg":"webhook delivery failed"`) {
		t.Fatalf("no JSON debug lines of the failed webhook:\n%s", logJSON)
	}
	if !strings.Contains(logJSON, `"msg":"xta request refused"`) {
		t.Fatalf("the malformed XTA request is not in the log:\n%s", quiet(logJSON))
	}

	// Part two, the log as text: the operator erases the accepted case and
	// the portal sends one more refused package.
	p2 := serve(t, dir, nil, "-config", writeCfg("text"))
	client.BaseURL = p2.url
	body, _ := json.Marshal(map[string]string{"operator": "Operator Test", "note": piiNote})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p2.url+"/v1/admin/submissions/"+accepted+"/erase", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+dc.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	eraseAnswer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("erase: %d %s", resp.StatusCode, eraseAnswer)
	}
	if res, err := client.Submit(ctx, unknown); err != nil || res.Status != 422 {
		t.Fatalf("refusal after the restart: %v %+v", err, res)
	}
	// Paths that name the applicant (a portal that put a file name in a URL,
	// a mistyped link): the log and the metrics have the route, not the path.
	for _, path := range []string{"/v1/submissions/" + piiFile, "/" + piiFile + "?name=" + piiName, "/v1/resolve?leikaKey=" + gewerbe + "&place=" + piiStreet} {
		resp, err := http.Get(p2.url + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	metricsText := metrics(p2.url)
	if err := p2.terminate(t, 30*time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	logText := p2.stderr.String() + p2.stdout.String()
	if !strings.Contains(logText, "level=DEBUG") || !strings.Contains(logText, "case erased") {
		t.Fatalf("no text debug lines or no erasure in the log:\n%s", logText)
	}

	// The store holds the applicant (the table says so): the markers are
	// found where they must be, so a test that looked for them the wrong way
	// fails here.
	db, err := os.ReadFile(filepath.Join(dataDir, "amtsbote.db"))
	if err != nil {
		t.Fatal(err)
	}
	if got := findPII(db); len(got) != len(piiMarkers) {
		t.Fatalf("the store holds only %v of the markers: the data did not flow", got)
	}
	// The erased case's own data (its second given name, in the package and
	// in the file name of its own attachment): the erasure removed it from the
	// record and the events, and no copy is left in the file but in the
	// blobs; its two blobs no other case shares were written seconds before,
	// so the erasure left them to the retention's sweep (blobsLeft,
	// docs/operations.md "Erasing one case on request"). Whether free pages
	// are overwritten is not told apart here (in this run bbolt reuses the
	// freed pages anyway): store.TestWipeFreeUnderLoad and
	// broker.TestEraseAgainWipesWhatAFailedWipeLeft check the wipe.
	var erased struct{ BlobsDeleted, BlobsLeft int }
	if err := json.Unmarshal(eraseAnswer, &erased); err != nil || erased.BlobsDeleted+erased.BlobsLeft != 2 {
		t.Errorf("erase answer %s: want 2 blobs deleted or left (the package and its own attachment)", eraseAnswer)
	}
	inBlobs, elsewhere := erasedCopies(t, filepath.Join(dataDir, "amtsbote.db"), []byte(piiErased))
	if len(elsewhere) > 0 {
		t.Errorf("after the erasure the store's records still hold %q: %v", piiErased, elsewhere)
	}
	if n := bytes.Count(db, []byte(piiErased)); n != inBlobs || inBlobs > 2*erased.BlobsLeft {
		t.Errorf("the file holds %q %d times, the %d blobs left to the sweep %d times: the rest is in pages nothing overwrote", piiErased, n, erased.BlobsLeft, inBlobs)
	}

	for name, text := range map[string][]byte{
		"log (JSON, debug)": []byte(logJSON), "log (text, debug)": []byte(logText),
		"/metrics (first run)": metricsJSON, "/metrics (second run)": metricsText,
	} {
		if got := findPII(text); len(got) > 0 {
			t.Errorf("%s holds personal data %v:\n%s", name, got, linesWith(text, got))
		}
	}
	scanDataFolder(t, "after the stop", dataDir, transferDir)
}

// scanDataFolder fails t for every file of the data folder but the store and
// its blobs (the table's first rows) that holds a marker — jetstream/ (the
// queue names ids only), mailbox/, pki/ — and for a record of the transfer
// folder's ledger (.amtsbote/) that does.
func scanDataFolder(t *testing.T, when, dataDir, transferDir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dataDir, "jetstream")); err != nil {
		t.Fatal(err)
	}
	var others []string
	var queueFiles, ledgers int
	for _, root := range []string{dataDir, filepath.Join(transferDir, ".amtsbote")} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dataDir, path)
			if rel == "amtsbote.db" || strings.HasPrefix(rel, "blobs"+string(filepath.Separator)) {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			switch {
			case root != dataDir:
				ledgers++
			case strings.HasPrefix(rel, "jetstream"+string(filepath.Separator)):
				queueFiles++
			default:
				others = append(others, rel)
			}
			if got := findPII(b); len(got) > 0 {
				t.Errorf("%s: %s holds personal data %v", when, path, got)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if ledgers == 0 {
		t.Errorf("%s: no ledger record in the transfer folder's .amtsbote/", when)
	}
	if !slices.Contains(others, filepath.Join("mailbox", "mailbox.db")) {
		t.Errorf("%s: no mailbox/mailbox.db among %v", when, others)
	}
	t.Logf("%s: read %d files of jetstream/, %d ledger records and, besides the store, %v", when, queueFiles, ledgers, others)
}

// erasedCopies opens the stopped gateway's store and counts the copies of m in
// the values of the blobs bucket, and names every other bucket and key whose
// key or value holds it.
func erasedCopies(t *testing.T, path string, m []byte) (inBlobs int, elsewhere []string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var walk func(path string, b *bolt.Bucket) error
	walk = func(path string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(path+"/"+string(k), b.Bucket(k))
			}
			switch {
			case strings.HasPrefix(path, "blobs"):
				inBlobs += bytes.Count(v, m)
			case bytes.Contains(k, m) || bytes.Contains(v, m):
				elsewhere = append(elsewhere, fmt.Sprintf("%s %q", path, k))
			}
			return nil
		})
	}
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(string(name), b) })
	}); err != nil {
		t.Fatal(err)
	}
	return inBlobs, elsewhere
}

// linesWith returns the lines of text that hold one of the quoted forms.
func linesWith(text []byte, quoted []string) string {
	var out []string
	for _, l := range strings.Split(string(text), "\n") {
		for _, q := range quoted {
			var f string
			json.Unmarshal([]byte(q), &f)
			if strings.Contains(l, f) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// quiet is a log without its lines for each HTTP request.
func quiet(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `"msg":"http"`) && !strings.Contains(l, "msg=http ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
