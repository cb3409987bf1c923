package api_test

import (
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/internal/constscan"
)

// TestEventTypesInContract: every event type the code can write (a constant
// Event… = "…" in the packages that make events) is in the contract's Event.type
// enum, and every value there is one the code writes. A portal's or an office's
// client generated from api/openapi.yaml rejects a value outside the enum, and
// the contract's test calls reach only some states, so the types are compared
// at the source: a new event type cannot be forgotten here.
func TestEventTypesInContract(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	ev := doc.Components.Schemas["Event"]
	if ev == nil || ev.Value.Properties["type"] == nil {
		t.Fatal("no Event.type in the contract")
	}
	var contract []string
	for _, v := range ev.Value.Properties["type"].Value.Enum {
		contract = append(contract, v.(string))
	}
	code, err := constscan.EventTypes("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range code {
		if !slices.Contains(contract, c) {
			t.Errorf("the code writes events of type %q, which the contract's Event.type enum lacks", c)
		}
	}
	for _, c := range contract {
		if !slices.Contains(code, c) {
			t.Errorf("the contract names event type %q, which no code writes", c)
		}
	}
}
