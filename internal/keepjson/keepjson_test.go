package keepjson_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/keepjson"
)

// record has the shapes a stored record has: plain fields, an omitted empty one,
// a time, bytes, a pointer to a struct, lists by position and by key, a map, an
// embedded struct, a field left out of JSON.
type record struct {
	ID        string            `json:"id"`
	State     string            `json:"state"`
	Processed bool              `json:"processed,omitempty"`
	At        time.Time         `json:"at"`
	Blob      []byte            `json:"blob,omitempty"`
	Decision  *decision         `json:"decision,omitempty"`
	Targets   []target          `json:"targets"`
	Events    []event           `json:"events,omitempty"`
	Receipts  map[string]target `json:"receipts,omitempty"`
	Any       any               `json:"any,omitempty"`
	Internal  string            `json:"-"`
	embedded
}

type embedded struct {
	Origin string `json:"origin,omitempty"`
}

type decision struct {
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
}

type target struct {
	Channel string `json:"channel"`
}

type event struct {
	Seq  uint64 `json:"seq"`
	Type string `json:"type"`
}

var keys = keepjson.Keys{reflect.TypeFor[event](): "seq"}

func decode(t *testing.T, data string) (record, bool) {
	t.Helper()
	var r record
	unknown, err := keepjson.Decode([]byte(data), &r)
	if err != nil {
		t.Fatalf("Decode(%s): %v", data, err)
	}
	return r, unknown
}

// TestDecodeTellsUnknownKeys: a key the type lacks is seen at every depth the
// type describes, and the value decodes as json.Unmarshal decodes it.
func TestDecodeTellsUnknownKeys(t *testing.T) {
	for _, c := range []struct {
		doc     string
		unknown bool
	}{
		{`{"id":"a","state":"queued","targets":[{"channel":"api"}]}`, false},
		{`{"ID":"a","origin":"x","decision":null,"any":{"whatever":1}}`, false}, // case, embedded, interface
		{`{"id":"a","takenOverFrom":"api"}`, true},
		{`{"id":"a","decision":{"outcome":"accepted","recordedAt":"2026-12-06T00:00:00Z"}}`, true},
		{`{"id":"a","targets":[{"channel":"api"},{"channel":"xta","priority":2}]}`, true},
		{`{"id":"a","receipts":{"intake":{"channel":"x","size":3}}}`, true},
		{`{"id":"a","events":[{"seq":1,"type":"received","by":"x"}]}`, true},
	} {
		got, unknown := decode(t, c.doc)
		if unknown != c.unknown {
			t.Errorf("Decode(%s): unknown = %v, want %v", c.doc, unknown, c.unknown)
		}
		var want record
		if err := json.Unmarshal([]byte(c.doc), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%s) = %+v, json.Unmarshal gives %+v", c.doc, got, want)
		}
	}
}

// TestDecodeFailsAsUnmarshal: an unknown key does not hide a fault after it,
// nor does the decoder's stream reading accept what follows the value.
func TestDecodeFailsAsUnmarshal(t *testing.T) {
	for _, doc := range []string{
		`{"future":1,"state":7}`,
		`{"id":"a"} {"id":"b"}`,
		`{"id":"a"} x`,
		`{"id":`,
		``,
	} {
		var r record
		_, err := keepjson.Decode([]byte(doc), &r)
		werr := json.Unmarshal([]byte(doc), &record{})
		if err == nil || werr == nil || err.Error() != werr.Error() {
			t.Errorf("Decode(%q) error %v, json.Unmarshal %v", doc, err, werr)
		}
	}
}

// TestMergeKeepsWhatTheTypeDoesNotKnow: the older build's rewrite keeps the
// newer keys everywhere, and every key it knows is its own — the ones it
// changed, and the ones it cleared.
func TestMergeKeepsWhatTheTypeDoesNotKnow(t *testing.T) {
	stored := `{"id":"a","state":"delivered","processed":true,"takenOverFrom":"api",` +
		`"decision":{"outcome":"accepted","recordedAt":"2026-12-06T10:00:00Z"},` +
		`"targets":[{"channel":"api","priority":1},{"channel":"mailbox"}],` +
		`"events":[{"seq":1,"type":"received","by":"p"},{"seq":2,"type":"delivered","via":"api"}],` +
		`"receipts":{"intake":{"channel":"x","kind":"E"},"gone":{"channel":"y","kind":"Z"}},` +
		`"at":"2026-12-06T10:00:00Z","blob":"AQI=","any":{"k":1}}`
	r, unknown := decode(t, stored)
	if !unknown {
		t.Fatal("Decode saw no unknown key")
	}
	// The older build's change: a reason, processed withdrawn, an event more, the
	// older events moved away (only the newest stays), a receipt removed.
	r.State = "accepted"
	r.Processed = false
	r.Decision.Reason = "ok"
	r.Events = []event{r.Events[1], {Seq: 3, Type: "accepted"}}
	delete(r.Receipts, "gone")
	cur, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := keepjson.Merge(reflect.TypeFor[record](), []byte(stored), cur, keys)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(merged, &m); err != nil {
		t.Fatalf("merged is not JSON: %v\n%s", err, merged)
	}
	want := map[string]any{
		"id": "a", "state": "accepted", "takenOverFrom": "api",
		"decision": map[string]any{"outcome": "accepted", "reason": "ok", "recordedAt": "2026-12-06T10:00:00Z"},
		"targets":  []any{map[string]any{"channel": "api", "priority": 1.0}, map[string]any{"channel": "mailbox"}},
		"events":   []any{map[string]any{"seq": 2.0, "type": "delivered", "via": "api"}, map[string]any{"seq": 3.0, "type": "accepted"}},
		"receipts": map[string]any{"intake": map[string]any{"channel": "x", "kind": "E"}},
		"at":       "2026-12-06T10:00:00Z",
		"blob":     "AQI=",
		"any":      map[string]any{"k": 1.0},
	}
	if !reflect.DeepEqual(m, want) {
		got, _ := json.MarshalIndent(m, "", " ")
		t.Fatalf("merged:\n%s", got)
	}
	// What this build reads from it is what it wrote.
	var back record
	if err := json.Unmarshal(merged, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("merged reads as %+v, want %+v", back, r)
	}
}

// TestMergeWithoutUnknownKeysIsCur: a document of this build's keys only is
// written as encoded, byte for byte.
func TestMergeWithoutUnknownKeysIsCur(t *testing.T) {
	stored := `{"id":"a","state":"queued","decision":{"outcome":"accepted"},"targets":[{"channel":"api"}]}`
	cur := []byte(`{"id":"a","state":"delivered","targets":[{"channel":"api"}],"events":[{"seq":1,"type":"x"}]}`)
	got, err := keepjson.Merge(reflect.TypeFor[record](), []byte(stored), cur, keys)
	if err != nil || !bytes.Equal(got, cur) {
		t.Fatalf("Merge = %s, %v; want cur unchanged", got, err)
	}
}

// TestMergeOfAClearedObjectKeepsNothingOfIt: an object this build removed (a
// pointer set to nil) takes the newer keys it held with it, as does an element
// matched by key that is no longer there.
func TestMergeOfAClearedObjectKeepsNothingOfIt(t *testing.T) {
	stored := `{"id":"a","decision":{"outcome":"accepted","future":1},"events":[{"seq":1,"type":"x","future":1}]}`
	cur := []byte(`{"id":"a","state":"","at":"0001-01-01T00:00:00Z","targets":null,"events":[{"seq":2,"type":"y"}]}`)
	got, err := keepjson.Merge(reflect.TypeFor[record](), []byte(stored), cur, keys)
	if err != nil || strings.Contains(string(got), "future") {
		t.Fatalf("Merge = %s, %v; want no key of the removed objects", got, err)
	}
}

// FuzzMerge: whatever the stored document, the merged one reads as cur reads
// for this build (Merge never changes a known field), and every key the type
// does not know at the top of a stored object survives.
func FuzzMerge(f *testing.F) {
	f.Add(`{"id":"a","future":{"x":[1,2]},"decision":{"outcome":"r","f":1},"targets":[{"channel":"c","p":1}],"events":[{"seq":1,"type":"t","g":2}]}`,
		`{"id":"b","state":"s","targets":[{"channel":"d"}],"events":[{"seq":1,"type":"u"}],"processed":true}`)
	f.Add(`{"ID":"a","Processed":true,"decision":null,"receipts":{"a":{"channel":"x","k":2}}}`, `{"id":"a","receipts":{"a":{"channel":"y"}}}`)
	f.Add(`{"id":"a","origin":"o","blob":"AA==","any":{"z":1},"x\u00e9":1}`, `{"id":"a"}`)
	typ := reflect.TypeFor[record]()
	f.Fuzz(func(t *testing.T, stored, encoded string) {
		var r record
		if _, err := keepjson.Decode([]byte(encoded), &r); err != nil {
			return
		}
		cur, err := json.Marshal(r) // what this build writes: only its keys
		if err != nil {
			return
		}
		merged, err := keepjson.Merge(typ, []byte(stored), cur, keys)
		if err != nil {
			if json.Valid([]byte(stored)) {
				t.Fatalf("Merge of valid JSON: %v", err)
			}
			return
		}
		var back, want record
		if err := json.Unmarshal(merged, &back); err != nil {
			t.Fatalf("merged does not decode: %v\n%s", err, merged)
		}
		if err := json.Unmarshal(cur, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, want) {
			t.Fatalf("merged reads as\n%+v\nwant\n%+v\nmerged %s", back, want, merged)
		}
		var old, out map[string]json.RawMessage
		if json.Unmarshal([]byte(stored), &old) != nil {
			return
		}
		if err := json.Unmarshal(merged, &out); err != nil {
			t.Fatal(err)
		}
		known := func(k string) bool {
			for _, name := range []string{"id", "state", "processed", "at", "blob", "decision", "targets", "events", "receipts", "any", "origin"} {
				if strings.EqualFold(k, name) {
					return true
				}
			}
			return false
		}
		for k := range old {
			if _, ok := out[k]; !ok && !known(k) {
				t.Fatalf("unknown key %q lost\nstored %s\nmerged %s", k, stored, merged)
			}
		}
	})
}

// fresh counts the types TestMergeOfANewTypeConcurrently makes, so that every
// run (also with -count) asks about types no earlier Merge has seen.
var fresh atomic.Int64

// TestMergeOfANewTypeConcurrently: the first Merges of a type, at once (an
// older gateway's first writes of newer records after its start, outside the
// store's transaction), each keep the newer keys. Whether a type holds structs
// is worked out once and remembered; a "no" written while it was being worked
// out, for a recursive type's sake, was read by the Merges beside it, which
// then wrote cur as it was and dropped every newer key.
func TestMergeOfANewTypeConcurrently(t *testing.T) {
	// Writers that run at the same time, also on a machine of one CPU: with
	// one P they take turns and never meet in the middle of the work.
	defer runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 4))
	const rounds, writers = 2000, 8
	lost := 0
	for range rounds {
		name := fmt.Sprintf("c%d", fresh.Add(1))
		elem := reflect.StructOf([]reflect.StructField{{Name: "C", Type: reflect.TypeFor[string](), Tag: reflect.StructTag(`json:"` + name + `"`)}})
		typ := reflect.StructOf([]reflect.StructField{{Name: "L", Type: reflect.SliceOf(elem), Tag: `json:"l"`}})
		stored := []byte(`{"l":[{"` + name + `":"x","future":1}]}`)
		cur := []byte(`{"l":[{"` + name + `":"y"}]}`)
		want := `{"l":[{"` + name + `":"y","future":1}]}`
		var wg sync.WaitGroup
		var mu sync.Mutex
		start := make(chan struct{})
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got, err := keepjson.Merge(typ, stored, cur, nil)
				if err != nil || string(got) != want {
					mu.Lock()
					lost++
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	if lost > 0 {
		t.Fatalf("%d of %d first Merges of a type dropped the newer key", lost, rounds*writers)
	}
}

// The field rules of encoding/json that a type can meet: a field hides one of
// the same name deeper down (Go's rule for embedded fields), whatever comes
// first; a tag that is no valid name leaves the field its Go name.
type (
	shadowed struct {
		promoted
		Decision *decision `json:"decision"` // hides promoted's
		//lint:ignore SA5008 a tag that is no valid name, on purpose: the field keeps its Go name
		Odd string `json:"odd\\,omitempty"`
	}
	promoted struct {
		Decision *target `json:"decision"`
	}
)

// TestMergeKnowsTheFieldsAsEncodingJSON: Merge takes for known exactly the keys
// encoding/json decodes into a field, so a key this build cleared is not written
// back from the stored document. With the embedded field's type for "decision"
// (first in the struct, but hidden), the decision's reason counted as a newer
// key and came back; "Odd" counted as a newer key and came back.
func TestMergeKnowsTheFieldsAsEncodingJSON(t *testing.T) {
	stored := `{"decision":{"outcome":"accepted","reason":"gone","future":1},"Odd":"gone","future":2}`
	var r shadowed
	if _, err := keepjson.Decode([]byte(stored), &r); err != nil || r.Decision == nil || r.Odd != "gone" {
		t.Fatalf("Decode = %+v, %v", r, err)
	}
	r.Decision.Reason, r.Odd = "", "" // this build clears them
	cur, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := keepjson.Merge(reflect.TypeFor[shadowed](), []byte(stored), cur, nil)
	if err != nil {
		t.Fatal(err)
	}
	var back shadowed
	if err := json.Unmarshal(merged, &back); err != nil {
		t.Fatal(err)
	}
	if back.Decision == nil || back.Decision.Reason != "" || back.Odd != "" {
		t.Errorf("merged %s reads as %+v %+v: a cleared field came back", merged, back, back.Decision)
	}
	var m struct {
		Future   int `json:"future"`
		Decision struct {
			Future int `json:"future"`
		} `json:"decision"`
	}
	if err := json.Unmarshal(merged, &m); err != nil || m.Future != 2 || m.Decision.Future != 1 {
		t.Errorf("merged %s lost a newer key", merged)
	}
}
