package intake

import (
	"context"
	"testing"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/routing"
)

type fakeAdapter string

func (f fakeAdapter) Channel() string { return string(f) }
func (fakeAdapter) Close() error      { return nil }
func (fakeAdapter) Deliver(_ context.Context, _ adapters.Delivery) (adapters.Confirmation, error) {
	return adapters.Confirmation{}, nil
}

type endpoints map[string]string

func (e endpoints) Endpoint(office, channel string) string { return e[office+"/"+channel] }

// TestTargetsOnlyCallConfiguredAddresses: a directory entry's address (often sample
// data) is never called; only what the operator configured, in the directory's order.
func TestTargetsOnlyCallConfiguredAddresses(t *testing.T) {
	route := &routing.Route{Channels: []routing.Channel{
		{Kind: "xta", Level: 4, Endpoint: "https://xta.example/from-directory"},
		{Kind: "webhook", Level: 3, Endpoint: "https://fv.example/from-directory"},
		{Kind: "mailbox", Level: 1, Endpoint: "postfach"},
	}}
	tests := []struct {
		name     string
		adapters []adapters.Adapter
		config   endpoints
		want     []string
	}{
		{"nothing configured", []adapters.Adapter{fakeAdapter("webhook")}, endpoints{}, nil},
		{"configured webhook", []adapters.Adapter{fakeAdapter("webhook")}, endpoints{"o/webhook": "http://127.0.0.1:9/hook"}, []string{"webhook http://127.0.0.1:9/hook"}},
		{"no adapter for a configured channel", nil, endpoints{"o/webhook": "http://127.0.0.1:9/hook"}, nil},
		{"order follows the directory", []adapters.Adapter{fakeAdapter("webhook"), fakeAdapter("mailbox")},
			endpoints{"o/webhook": "http://127.0.0.1:9/hook", "o/mailbox": "dresden"}, []string{"webhook http://127.0.0.1:9/hook", "mailbox dresden"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pipeline{Adapters: adapters.NewRegistry(tc.adapters...), Endpoints: tc.config}
			got := p.targets("o", route)
			if len(got) != len(tc.want) {
				t.Fatalf("targets %v, want %v", got, tc.want)
			}
			for i, g := range got {
				if g.Channel+" "+g.Endpoint != tc.want[i] {
					t.Fatalf("target %d = %v, want %s", i, g, tc.want[i])
				}
			}
		})
	}
}
