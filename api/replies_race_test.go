package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
	"github.com/amtsbote/amtsbote/wire"
)

// raceReplies posts the replies contents[i] at once with the same
// Idempotency-Key, each from its own goroutine released by one barrier, and
// returns the answers in the order of contents. Nothing here may call t.Fatal
// (another goroutine than the test's): a failed request is an answer of code 0.
func (f *replyFixture) raceReplies(id, key string, contents [][]byte) []answer {
	out := make([]answer, len(contents))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range contents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, f.g.URL()+wire.OfficeReplyPostPath(id, wire.ReplyBescheid), bytes.NewReader(c))
			req.Header.Set("Authorization", "Bearer "+pollingToken)
			req.Header.Set("Content-Type", "application/pdf")
			req.Header.Set(wire.HeaderIdempotencyKey, key)
			<-start
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				out[i] = answer{body: []byte(err.Error())}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out[i] = answer{code: resp.StatusCode, body: b, header: resp.Header}
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// TestOfficeReplyRaceWithOneKey: a system whose client sends a reply again
// while the first request is still under way (a retry after its own timeout,
// two workers on one queue) sends the same Idempotency-Key at once. With the
// same bytes one request is told 201 and every other the repeat (200, the
// same reply, Amtsbote-Duplicate), as one after another; with other bytes
// every other is 409 conflict and its bytes are not left in the blob store.
// Both requests were told 201 (the look for the key and the store were not
// one step), and a loser's bytes stayed as a blob no record names.
func TestOfficeReplyRaceWithOneKey(t *testing.T) {
	f := startReplyFixture(t)
	const n = 8
	for round := range 3 { // a race lost is a race not shown: a few rounds
		id := f.delivered()
		same := make([][]byte, n)
		for i := range same {
			same[i] = []byte(fmt.Sprintf("%%PDF-1.4 Bescheid, Runde %d", round))
		}
		created, repeated := 0, 0
		var rep wire.Reply
		for i, a := range f.raceReplies(id, "bescheid-1", same) {
			switch a.code {
			case http.StatusCreated:
				created++
			case http.StatusOK:
				repeated++
				if a.header.Get(wire.HeaderDuplicate) != "true" {
					t.Errorf("round %d, request %d: a repeat without %s", round, i, wire.HeaderDuplicate)
				}
			default:
				t.Fatalf("round %d, request %d: %d %s", round, i, a.code, a.body)
			}
			got := decodeReply(t, a)
			if rep.ID == "" {
				rep = got
			} else if got != rep {
				t.Errorf("round %d, request %d: %+v, want %+v", round, i, got, rep)
			}
		}
		if created != 1 || repeated != n-1 {
			t.Errorf("round %d, the same bytes %d times at once: %d created, %d repeats; want 1 and %d", round, n, created, repeated, n-1)
		}
		if got := f.replies(id); len(got) != 1 || got[0].ID != rep.ID {
			t.Errorf("round %d: the case holds %+v, want the one reply %s", round, got, rep.ID)
		}

		id = f.delivered()
		other := make([][]byte, n)
		for i := range other {
			other[i] = []byte(fmt.Sprintf("%%PDF-1.4 Bescheid, Runde %d, Entwurf %d", round, i))
		}
		answers := f.raceReplies(id, "bescheid-1", other)
		winner := -1
		for i, a := range answers {
			switch a.code {
			case http.StatusCreated:
				if winner >= 0 {
					t.Errorf("round %d: requests %d and %d with other bytes under one key were both stored", round, winner, i)
				}
				winner = i
			case http.StatusConflict:
				if p := a.problem(); p.Type != problem.TypeConflict {
					t.Errorf("round %d, request %d: 409 %s, want %s", round, i, a.body, problem.TypeConflict)
				}
			default:
				t.Fatalf("round %d, request %d: %d %s", round, i, a.code, a.body)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: none of %d replies was stored", round, n)
		}
		if got := f.replies(id); len(got) != 1 || got[0].SHA256 != digestOf(other[winner]) {
			t.Errorf("round %d: the case holds %+v, want request %d's reply", round, got, winner)
		}
		for i, c := range other {
			if i != winner && f.stored(c) {
				t.Errorf("round %d: the bytes of request %d, refused 409, were left in the blob store", round, i)
			}
		}
	}
}
