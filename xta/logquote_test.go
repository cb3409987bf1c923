package xta

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/testenv"
)

// TestRefusedMTOMIsLoggedWithoutWhatItQuoted: a refusal of an MTOM request
// that quotes a part's Content-ID or a MIME header line goes to the caller
// whole, but the log line "xta request refused" leaves the quoted words out:
// some stacks make a part's Content-ID of its file name, and a file name is
// the applicant's data (docs/operations.md, "Personal data"). Before, the log
// repeated "two MIME parts with Content-ID \"Personalausweis_…\"" as sent.
func TestRefusedMTOMIsLoggedWithoutWhatItQuoted(t *testing.T) {
	const marker = "Quellenmeyer-Zyxw"
	var logs testenv.Buffer
	e := startEnv(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	seen := 0 // the log's length before the case: each looks at its own lines
	env := string(soapUIRequest(xtaA, "", fetchBody(NewMessageID("amtsbote"))))
	ct := `multipart/related; type="application/xop+xml"; start="<root>"; start-info="application/soap+xml"; boundary="b"; action="` + Action(portRecipient, "getMessage") + `"`
	root := "--b\r\nContent-Type: application/xop+xml; charset=utf-8; type=\"application/soap+xml\"\r\nContent-ID: <root>\r\n\r\n" + env + "\r\n"
	for name, body := range map[string]string{
		"two parts of one Content-ID": root +
			"--b\r\nContent-ID: <Personalausweis_" + marker + ".pdf>\r\n\r\nA\r\n" +
			"--b\r\nContent-ID: <Personalausweis_" + marker + ".pdf>\r\n\r\nB\r\n--b--\r\n",
		"a header line that does not parse": root +
			"--b\r\nContent-ID: <a>\r\nPersonalausweis_" + marker + ".pdf\r\n\r\nA\r\n--b--\r\n",
		// The multipart reader quotes a line after a part that is neither
		// a boundary nor the end.
		"a line after a part that is no boundary": root +
			"--b Personalausweis_" + marker + ".pdf\r\n\r\nA\r\n--b--\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			r := post(t, e.client("office-a"), e.base+PathRecipient, ct, []byte(body))
			if r.status != http.StatusBadRequest {
				t.Fatalf("HTTP %d, want 400\n%s", r.status, r.root)
			}
			if !strings.Contains(r.text("//Fault/Reason/Text"), marker) {
				t.Errorf("the fault says %q; the caller should read what it sent", r.text("//Fault/Reason/Text"))
			}
			// The line is written after the fault and the drain of the
			// rest: the client may read the fault first.
			var mine string
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				all := logs.String()
				if mine = all[seen:]; strings.Contains(mine, "xta request refused") {
					seen = len(all)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no refusal logged:\n%s", mine)
				}
			}
			if strings.Contains(mine, marker) {
				t.Errorf("the log quotes the request:\n%s", mine)
			}
		})
	}
}
