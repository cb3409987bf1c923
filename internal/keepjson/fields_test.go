package keepjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Embedded structs that meet: names shared at one depth and at two, the same
// struct embedded twice, an unexported one through a pointer, a tag that is no
// valid name, names that match only ignoring case.
type (
	E1 struct {
		A string
		B string `json:"b"`
		C string `json:"c"`
	}
	E2 struct {
		A string
		B string
		C string
		D string
	}
	e3 struct {
		X string `json:"x"`
		Y string
	}
	Twice struct{ E1 }
	W1    struct {
		E1
		E2
		*e3
		Y string `json:"Y"`
		// Tags whose names the two rules of encoding/json (tagname_v1.go,
		// tagname_v2.go) read differently.
		//lint:ignore SA5008 a tag that is no valid name, on purpose
		Odd string `json:"o\\"`
		//lint:ignore SA5008 as Odd
		Under string `json:"_u\\x"`
		//lint:ignore SA5008 as Odd
		Dig    string `json:"9\\"`
		Euro   string `json:"a€b"`
		Quoted string `json:"'q'"`
		K      string `json:"kelvin"`
	}
	W2 struct {
		Twice
		E1
	}
	W3 struct {
		T1 Twice
		Twice
		W  Twice `json:"E1"`
		E1 `json:"e1"`
		e3
	}
)

// TestFieldsAsEncodingJSON: a key is known to fieldsOf exactly when
// encoding/json decodes it into a field of the type (it reports no unknown
// field for it). Merge writes back the stored value of a key it does not know,
// so one that encoding/json decodes would come back after this build cleared
// it; one that encoding/json does not decode it would drop.
func TestFieldsAsEncodingJSON(t *testing.T) {
	keys := []string{"A", "a", "B", "b", "C", "c", "D", "d", "x", "X", "Y", "y", `o\`, "o", "Odd", "odd", "_u", `_u\x`, "Under", "9", `9\`, "Dig", "a€b", "Euro", "'q'", "q", "Quoted", "kelvin", "\u212Aelvin", "E1", "e1", "T1", "Twice", "e3", "\u017f"}
	for _, typ := range []reflect.Type{reflect.TypeFor[W1](), reflect.TypeFor[W2](), reflect.TypeFor[W3]()} {
		f := fieldsOf(typ)
		for _, k := range keys {
			kb, err := json.Marshal(k)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader([]byte("{" + string(kb) + ":null}")))
			dec.DisallowUnknownFields()
			err = dec.Decode(reflect.New(typ).Interface())
			decoded := err == nil || !strings.HasPrefix(err.Error(), "json: unknown field ")
			if _, known := f.lookup(k); known != decoded {
				t.Errorf("%v, key %q: known to Merge %v, decoded by encoding/json %v (%v)", typ, k, known, decoded, err)
			}
		}
	}
}
