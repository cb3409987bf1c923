package httpunwrap

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

type inner struct{ http.ResponseWriter }

type outer struct{ http.ResponseWriter }

func (o *outer) Unwrap() http.ResponseWriter { return o.ResponseWriter }

type opaque struct{ http.ResponseWriter } // no Unwrap: what is under it is hidden

// TestFindFollowsTheUnwrapChain: the writer is found under writers that unwrap,
// itself included, and not under one that does not.
func TestFindFollowsTheUnwrapChain(t *testing.T) {
	in := &inner{httptest.NewRecorder()}
	if got, ok := Find[*inner](in); !ok || got != in {
		t.Error("the writer itself is not found")
	}
	if got, ok := Find[*inner](&outer{&outer{in}}); !ok || got != in {
		t.Error("not found under two writers that unwrap")
	}
	if _, ok := Find[*inner](&outer{&opaque{in}}); ok {
		t.Error("found under a writer that does not unwrap")
	}
	if _, ok := Find[*inner](nil); ok {
		t.Error("found in nothing")
	}
}
