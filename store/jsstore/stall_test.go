package jsstore

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amtsbote/amtsbote/store/storetest"
	"github.com/amtsbote/amtsbote/submission"
)

// stallingStream hands out listing consumers of which the first delivers two
// messages and then nothing: what a consumer placed on a node that is still
// catching up after a restart did.
type stallingStream struct {
	jetstream.Stream
	created atomic.Int64
}

func (s *stallingStream) CreateConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := s.Stream.CreateConsumer(ctx, cfg)
	if err != nil || s.created.Add(1) > 1 {
		return c, err
	}
	return &stallingConsumer{Consumer: c}, nil
}

type stallingConsumer struct {
	jetstream.Consumer
	fetches int
}

func (c *stallingConsumer) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	if c.fetches++; c.fetches == 1 {
		return c.Consumer.Fetch(2, opts...)
	}
	ch := make(chan jetstream.Msg)
	close(ch)
	return emptyBatch{ch}, nil
}

// TestListingOutlivesAStalledConsumer: a listing whose consumer stops delivering
// goes on through a new one and lists every key once; no consumer is left.
func TestListingOutlivesAStalledConsumer(t *testing.T) {
	st := openEmbedded(t)
	ctx := context.Background()
	var want []string
	for i := range 5 {
		sub := storetest.NewSubmission(fmt.Sprintf("sub-%d", i), "amt24", fmt.Sprintf("m%d", i))
		sub.State = submission.StateQueued
		if _, _, _, err := st.Create(ctx, sub, nil, "in", []byte("r")); err != nil {
			t.Fatal(err)
		}
		want = append(want, sub.ID)
	}
	stalling := &stallingStream{Stream: st.kv}
	st.kv = stalling
	got, err := st.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("outbox %v, want %v", got, want)
	}
	if n := stalling.created.Load(); n != 2 {
		t.Fatalf("%d consumers made, want 2 (the stalled one and its successor)", n)
	}
	for range stalling.ListConsumers(ctx).Info() {
		t.Fatal("a listing consumer was left behind")
	}
}
