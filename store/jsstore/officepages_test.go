package jsstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/store/jsstore"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestOfficeListingOverPagesFromAMemberBehind: the pages of an office of more
// than 100,000 keys are separate stream info requests, and while a stream's
// group has no leader (a leader lost between two pages) every member answers
// one from its own state, which may lag the first page's. Keys written between
// the two states, in a later page's range, were missing from that page, and
// catchUp, going on from the first page's sequence, did not meet them either:
// cases an office never saw in its listing on that gateway. The listing goes on
// from the oldest state of its pages (and lists again if that is older than
// its mark), so it has every key.
//
// The member behind is played by a relay between the store's client (its own
// API prefix, which subjectsAt must follow) and the server: it answers the
// first later page as of a sequence before the last keys.
func TestOfficeListingOverPagesFromAMemberBehind(t *testing.T) {
	ctx := context.Background()
	// A server of its own: the relay passes on answers of 100,000 subjects
	// (some 8 MB), over the embedded server's payload limit for a client.
	srv, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true,
		MaxPayload: 32 << 20, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	direct, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := jsstore.Open(ctx, direct, jsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const office = "amt-member-behind"
	publish := func(keys []string) {
		t.Helper()
		for i, k := range keys {
			if _, err := direct.PublishAsync(jsstore.OfficeKeySubject(st, office, k), nil); err != nil {
				t.Fatal(err)
			}
			if i%1_000 == 999 || i == len(keys)-1 { // under the client's 4,000 outstanding
				select {
				case <-direct.PublishAsyncComplete():
				case <-time.After(time.Minute):
					t.Fatal("publishing the keys took longer than a minute")
				}
			}
		}
	}
	var keys []string
	for i := range 101_500 {
		keys = append(keys, fmt.Sprintf("k%06d", i))
	}
	publish(keys)
	stream, err := direct.Stream(ctx, "KV_amtsbote")
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	info, err = stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	behind := info.State.LastSeq
	// Written after the state of the member behind; they sort into the last page.
	var late []string
	lateSubject := map[string]bool{}
	for i := range 10 {
		k := fmt.Sprintf("k9%05d", i)
		late = append(late, k)
		lateSubject[jsstore.OfficeKeySubject(st, office, k)] = true
	}
	publish(late)

	relay := nc
	var lagged atomic.Bool
	sub, err := relay.Subscribe("$RELAY.API.>", func(m *nats.Msg) {
		fwd := &nats.Msg{Subject: "$JS.API." + strings.TrimPrefix(m.Subject, "$RELAY.API."), Data: m.Data, Header: m.Header}
		if !strings.HasPrefix(fwd.Subject, "$JS.API.STREAM.INFO.") {
			fwd.Reply = m.Reply // the server answers the client itself (a consumer's batch is many messages)
			_ = relay.PublishMsg(fwd)
			return
		}
		resp, err := relay.RequestMsg(fwd, 10*time.Second)
		if err != nil {
			return
		}
		var req struct {
			Offset int `json:"offset"`
		}
		_ = json.Unmarshal(m.Data, &req)
		data := resp.Data
		if req.Offset > 0 && lagged.CompareAndSwap(false, true) {
			data = answeredBehind(t, data, behind, lateSubject)
		}
		_ = m.RespondMsg(&nats.Msg{Data: data, Header: resp.Header})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := relay.Flush(); err != nil {
		t.Fatal(err)
	}

	js, err := jetstream.NewWithAPIPrefix(nc, "$RELAY.API")
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := jsstore.Open(ctx, js, jsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := jsstore.OfficeIDs(fresh, office)
	if err != nil {
		t.Fatal(err)
	}
	if !lagged.Load() {
		t.Fatal("no later page was answered by the member behind: the test did not test")
	}
	want := append(slices.Clone(keys), late...)
	if !slices.Equal(got, want) {
		var missing []string
		for _, k := range want {
			if _, ok := slices.BinarySearch(got, k); !ok {
				missing = append(missing, k)
			}
		}
		t.Fatalf("listed %d keys, want %d; missing %v", len(got), len(want), missing[:min(len(missing), 12)])
	}
	if n := jsstore.OfficeConsumerListings(fresh); n != 0 {
		t.Errorf("listings through a consumer: %d, want none", n)
	}
}

// answeredBehind is the stream info answer data as a member would give it
// whose state is at sequence seq: without the subjects written after.
func answeredBehind(t *testing.T, data []byte, seq uint64, after map[string]bool) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var resp map[string]any
	if err := dec.Decode(&resp); err != nil {
		t.Error(err)
		return data
	}
	state, _ := resp["state"].(map[string]any)
	subjects, _ := state["subjects"].(map[string]any)
	if state == nil || subjects == nil {
		t.Errorf("stream info answer without subjects: %.200s", data)
		return data
	}
	dropped := 0
	for s := range after {
		if _, ok := subjects[s]; ok {
			delete(subjects, s)
			dropped++
		}
	}
	if dropped == 0 {
		t.Errorf("the later page names none of the keys written last")
	}
	state["last_seq"] = seq
	if total, err := resp["total"].(json.Number).Int64(); err == nil {
		resp["total"] = total - int64(dropped)
	}
	out, err := json.Marshal(resp)
	if err != nil {
		t.Error(err)
		return data
	}
	return out
}
