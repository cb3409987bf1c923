package mailbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/broker"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/amtsbote/amtsbote/submission"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fetchedMeanwhile is the in-memory desk with the office's system fetching a
// case through the pull API between the takeover's check (its Admit, on the
// record the desk read) and the clerk's pickup.
type fetchedMeanwhile struct {
	*memDesk
	id string
}

func (d fetchedMeanwhile) OpenPackage(ctx context.Context, office, id string, p broker.Pickup) (*submission.Submission, io.ReadCloser, error) {
	if id == d.id && p.Channel == channel.Mailbox && p.Admit != nil {
		cur, err := d.Get(ctx, office, id)
		if err != nil {
			return nil, nil, err
		}
		if err := p.Admit(cur); err != nil {
			return nil, nil, err
		}
		if _, err := d.Confirm(ctx, office, id, broker.Pickup{Channel: channel.API, Receiver: "office amt-a (pull API)"}); err != nil {
			return nil, nil, err
		}
		p.Admit = nil // asked above, before the system's fetch
	}
	return d.memDesk.OpenPackage(ctx, office, id, p)
}

// TestTakeoverSaysWhatHappened: the takeover told the clerk "übernommen" (the
// Fachverfahren would not get the case) also when the system had fetched the
// case between the takeover's check and her pickup, which then changed
// nothing: the system had it, and both processed it. Now the page says so
// only when the pickup was the takeover (submission.TakenOverFrom), and
// otherwise shows the case as it is. Its log line names the case, the office,
// the system's channel and the clerk, as the decision's line does (section 7 of
// docs/mailbox.md: logs name users, never applicant data).
func TestTakeoverSaysWhatHappened(t *testing.T) {
	mem := newMemDesk()
	addBound(mem, submission.StateHandedOver, channel.XTA, "uebernommen", "abgeholt")
	var logs testenv.Buffer
	m := annasMailbox(t, Options{Desk: fetchedMeanwhile{memDesk: mem, id: "abgeholt"},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")

	take := func(id string) *http.Response {
		t.Helper()
		csrf := csrfFrom(t, c.get("/postfach/s/"+id).Body.String())
		return c.post("/postfach/s/"+id+"/uebernehmen", url.Values{"csrf": {csrf}}).Result()
	}
	if res := take("uebernommen"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/postfach/s/uebernommen?meldung=uebernommen" {
		t.Fatalf("the takeover: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if s, _ := mem.Get(context.Background(), "amt-a", "uebernommen"); s.TakenOverFrom != channel.XTA {
		t.Fatalf("the takeover is not recorded: taken over from %q", s.TakenOverFrom)
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "taken over from the office's system") {
			line = l
		}
	}
	if !strings.Contains(line, "submission=uebernommen") || !strings.Contains(line, "channel=xta") || !strings.Contains(line, "user=anna") {
		t.Errorf("the takeover's log line: %q, want the case, the channel and the clerk", line)
	}

	res := take("abgeholt")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/postfach/s/abgeholt" {
		t.Errorf("a takeover the system's fetch came before: %d to %q, want the case's page without \"übernommen\"", res.StatusCode, res.Header.Get("Location"))
	}
	if s, _ := mem.Get(context.Background(), "amt-a", "abgeholt"); s.DeliveredVia != channel.API || s.TakenOverFrom != "" {
		t.Errorf("the case the system fetched: delivered via %q, taken over from %q", s.DeliveredVia, s.TakenOverFrom)
	}
	if n := strings.Count(logs.String(), "taken over from the office's system"); n != 1 {
		t.Errorf("%d takeovers logged, want the one that happened:\n%s", n, logs.String())
	}
	// Counted for the operator too, by the system it was on its way to: a
	// rising count is an office's Fachverfahren down.
	series := make(chan prometheus.Metric, 8)
	m.metrics.takeovers.Collect(series)
	close(series)
	var counted []string
	for c := range series {
		var d dto.Metric
		if err := c.Write(&d); err != nil {
			t.Fatal(err)
		}
		counted = append(counted, fmt.Sprintf("%s=%v", d.GetLabel()[0].GetValue(), d.GetCounter().GetValue()))
	}
	if len(counted) != 1 || counted[0] != "xta=1" {
		t.Errorf("amtsbote_mailbox_takeovers_total: %v, want xta=1 (the case the system fetched is no takeover)", counted)
	}

	// The case's page says so for good, not only in the flash after the
	// takeover: a colleague opening it later sees why the Fachverfahren does
	// not have it, in its header data and its history. The case the system
	// fetched first says nothing of the kind.
	page := c.get("/postfach/s/uebernommen").Body.String()
	for _, want := range []string{"<dt>Übernommen</dt>", "war für Ihr Fachverfahren (XTA) bestimmt, das ihn nicht mehr erhält",
		"Im Behördenpostfach übernommen; war für Ihr Fachverfahren (XTA) bestimmt", "anna (Behördenpostfach)"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page of the case taken over lacks %q", want)
		}
	}
	if page := c.get("/postfach/s/abgeholt").Body.String(); strings.Contains(page, "Übernommen") || strings.Contains(page, "übernommen; war") {
		t.Errorf("the page of the case the system fetched speaks of a takeover")
	}
}

// TestHandOverAfterTakeoverIsOnThePage: when a transfer attempt the takeover
// could not stop puts the case folder into the office's share after all, the
// clerk who took the case over is told on its page — a warning that the
// Fachverfahren may import it too, what to do, and the history's entry — and
// the header no longer claims the Fachverfahren does not get it. Before, the
// page said "das ihn nicht mehr erhält" while the import had it. A takeover
// without such a hand-over shows no warning.
//
// The warning is a section with its own heading (a screen reader's list of
// headings finds it; it was a paragraph under role "note", the role of
// asides), names the time as when the gateway found the folder — which, after
// a crash, is long after the folder came, and that came before the takeover:
// it said "nach Ihrer Übernahme am <time>", the time read as the takeover's —
// speaks to whoever reads the page, not only the clerk who took the case over,
// and gives the Vorgangsnummer the folder's name holds.
func TestHandOverAfterTakeoverIsOnThePage(t *testing.T) {
	mem := newMemDesk()
	addBound(mem, submission.StateQueued, channel.Transfer, "ordner", "ruhig")
	m := annasMailbox(t, Options{Desk: mem})
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	for _, id := range []string{"ordner", "ruhig"} {
		csrf := csrfFrom(t, c.get("/postfach/s/"+id).Body.String())
		if res := c.post("/postfach/s/"+id+"/uebernehmen", url.Values{"csrf": {csrf}}).Result(); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the takeover of %s: %d", id, res.StatusCode)
		}
	}
	mem.HandOverAfterTakeover(t, "ordner")

	page := c.get("/postfach/s/ordner").Body.String()
	for _, want := range []string{
		"war für Ihr Übergabeverzeichnis bestimmt, das ihn trotzdem erhalten hat",
		`<section class="meldung fehler" aria-labelledby="h-doppelt" id="doppelt">`,
		`<h2 id="h-doppelt">Achtung, möglicherweise doppelt</h2>`,
		"trotz der Übernahme auch in den Übergabeordner Ihres Fachverfahrens gelangt (festgestellt am ",
		"sein Name enthält die Vorgangsnummer ordner",
		"Trotz der Übernahme auch in den Übergabeordner gelangt",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page of the case handed over after the takeover lacks %q", want)
		}
	}
	if strings.Contains(page, "das ihn nicht mehr erhält") || strings.Contains(page, "Bereitgestellt, wartet auf Öffnung</td><td data-label=\"Weg\">Übergabeordner") {
		t.Errorf("the page still says the Fachverfahren does not get the case, or calls the hand-over an ordinary one")
	}
	// The address the takeover led to, as the page after it (the hand-over
	// known at once) or a reload later shows it: its message says the
	// Fachverfahren does not get the case no more.
	flashed := c.get("/postfach/s/ordner?meldung=uebernommen").Body.String()
	if strings.Contains(flashed, "dorthin geht er nicht mehr") || !strings.Contains(flashed, "Sie haben den Eingang übernommen") ||
		!strings.Contains(flashed, "trotzdem auch in den Übergabeordner gelangt") {
		t.Errorf("the takeover's message beside the warning says the Fachverfahren does not get the case, or lacks the takeover:\n%s", flashed)
	}
	if strings.Contains(page, "Ihrer Übernahme") || strings.Contains(page, `role="note"`) {
		t.Errorf("the warning dates the takeover by the hand-over's time, or is marked up as an aside")
	}
	if strings.Contains(page, "ist die Löschung vollständig") {
		t.Errorf("the warning of a case not erased speaks of its erasure")
	}
	page = c.get("/postfach/s/ruhig").Body.String()
	if !strings.Contains(page, "das ihn nicht mehr erhält") || strings.Contains(page, "möglicherweise doppelt") {
		t.Errorf("the page of a takeover without a late hand-over warns of one, or lost its header line")
	}
	// Erased since: the case folder holds what the erasure removed here.
	mem.Erase(t, "ordner")
	if page := c.get("/postfach/s/ordner").Body.String(); !strings.Contains(page, "Erst wenn er entfernt ist, ist die Löschung vollständig") {
		t.Errorf("the warning of an erased case does not say its case folder still holds the erased files")
	}
}

// addBound adds to mem one case of anna's office per id, in state st on its
// way to the office's system on ch, with the mailbox as the fallback: cases a
// clerk can take over.
func addBound(mem *memDesk, st submission.State, ch string, ids ...string) {
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for _, id := range ids {
		mem.Add(&submission.Submission{ID: id, OfficeID: "amt-a", ServiceName: "Gewerbe anmelden", Place: "Dresden",
			Sender: "amt24", State: st, ReceivedAt: at,
			Targets: []submission.Target{{Channel: ch}, {Channel: channel.Mailbox}}}, []byte("<Antragspaket/>"), nil)
	}
}

// TestTakeoverClickedTwiceSaysSo: a double click on "Eingang hier übernehmen
// und öffnen" sends the form twice, and the browser shows the second answer.
// The first took the case over; the second found nothing left to take over
// and led to the case without a word, so the clerk was not told what her
// click did. The second answer says "übernommen" too — hers, not a
// colleague's: his click after hers leads to the case without it.
func TestTakeoverClickedTwiceSaysSo(t *testing.T) {
	mem := newMemDesk()
	addBound(mem, submission.StateHandedOver, channel.XTA, "doppelt")
	m, err := New(Options{Desk: mem, DataDir: t.TempDir(), Users: []User{
		{Name: "anna", Office: "amt-a", PasswordHash: fastHash(t, "anna-passwort")},
		{Name: "bernd", Office: "amt-a", PasswordHash: fastHash(t, "bernd-passwort")}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	anna, bernd := newClient(t, m.Handler()), newClient(t, m.Handler())
	anna.mustLogin("anna", "anna-passwort")
	bernd.mustLogin("bernd", "bernd-passwort")
	annaForm := url.Values{"csrf": {csrfFrom(t, anna.get("/postfach/s/doppelt").Body.String())}}
	berndForm := url.Values{"csrf": {csrfFrom(t, bernd.get("/postfach/s/doppelt").Body.String())}}
	const taken = "/postfach/s/doppelt?meldung=uebernommen"
	for i := range 2 {
		if res := anna.post("/postfach/s/doppelt/uebernehmen", annaForm).Result(); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != taken {
			t.Errorf("anna's takeover, sent %d. time: %d to %q, want %q", i+1, res.StatusCode, res.Header.Get("Location"), taken)
		}
	}
	if res := bernd.post("/postfach/s/doppelt/uebernehmen", berndForm).Result(); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/postfach/s/doppelt" {
		t.Errorf("bernd's takeover after anna's: %d to %q, want the case without \"übernommen\"", res.StatusCode, res.Header.Get("Location"))
	}
}

// TestFetchAfterTakeoverIsOnThePage: an XTA getMessage under way when the
// clerk took the case over gave the Fachverfahren the application all the
// same; the desk records that fetch after the takeover
// (xta.TestGetMessageUnderWayAtTheTakeoverIsRecorded). The page said the
// Fachverfahren does not get the case; it says now that it got it, and the
// history names the fetch as one after the takeover.
func TestFetchAfterTakeoverIsOnThePage(t *testing.T) {
	mem := newMemDesk()
	addBound(mem, submission.StateHandedOver, channel.XTA, "geholt", "ruhig")
	m := annasMailbox(t, Options{Desk: mem})
	c := newClient(t, m.Handler())
	c.mustLogin("anna", "anna-passwort")
	for _, id := range []string{"geholt", "ruhig"} {
		csrf := csrfFrom(t, c.get("/postfach/s/"+id).Body.String())
		if res := c.post("/postfach/s/"+id+"/uebernehmen", url.Values{"csrf": {csrf}}).Result(); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the takeover of %s: %d", id, res.StatusCode)
		}
	}
	if _, err := mem.RecordFetch(context.Background(), "amt-a", "geholt", channel.XTA, time.Now()); err != nil {
		t.Fatal(err)
	}
	page := c.get("/postfach/s/geholt").Body.String()
	for _, want := range []string{
		"war für Ihr Fachverfahren (XTA) bestimmt, das ihn trotzdem erhalten hat",
		"Trotz der Übernahme auch vom Fachverfahren abgerufen",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page of the case fetched after the takeover lacks %q", want)
		}
	}
	if strings.Contains(page, "das ihn nicht mehr erhält") {
		t.Errorf("the page still says the Fachverfahren does not get the case")
	}
	if page := c.get("/postfach/s/ruhig").Body.String(); !strings.Contains(page, "das ihn nicht mehr erhält") || strings.Contains(page, "Trotz der Übernahme") {
		t.Errorf("the page of a takeover without a fetch after it says the Fachverfahren got it")
	}
}
