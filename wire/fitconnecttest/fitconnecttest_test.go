package fitconnecttest

import "testing"

// TestCheckRefuses: the check is as strict as a FIT-Connect client on what matters
// (required members, UUIDs, the type URI), so a pass of the emitters' tests means
// something.
func TestCheckRefuses(t *testing.T) {
	const id = "0190f1c2-7d1e-7cc3-9c52-3a7c1f0e5b21"
	good := `{"type":"https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions",` +
		`"submissionIds":["` + id + `"],"submissions":[{"destinationId":"2e0cf242-17b6-54c8-8e5a-79f2b889f885","submissionId":"` + id + `","caseId":"` + id + `"}],"extra":1}`
	if err := Check(t, "CallbackNewSubmissions", []byte(good)); err != nil {
		t.Fatalf("a conforming body was refused: %v", err)
	}
	for name, body := range map[string]string{
		"destinationId not a UUID": `{"submissions":[{"destinationId":"dresden-allgemeine-verwaltung","submissionId":"` + id + `","caseId":"` + id + `"}]}`,
		"caseId missing":           `{"submissions":[{"destinationId":"` + id + `","submissionId":"` + id + `"}]}`,
		"wrong type":               `{"type":"https://schema.fitko.de/fit-connect/submission-api/callbacks/new-events"}`,
		"empty list":               `{"submissionIds":[]}`,
	} {
		if err := Check(t, "CallbackNewSubmissions", []byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
