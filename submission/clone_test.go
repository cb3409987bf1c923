package submission

import (
	"reflect"
	"testing"
	"time"
)

// TestCloneSharesNothing fills every field of a Submission by reflection, so a
// field added later is covered without anyone remembering this test: the clone
// equals the original, and no pointer, slice or map in it points into the
// original's memory.
func TestCloneSharesNothing(t *testing.T) {
	var s Submission
	fill(reflect.ValueOf(&s).Elem(), 0)
	c := s.Clone()
	if !reflect.DeepEqual(&s, c) {
		t.Fatalf("the clone differs:\n%+v\n%+v", s, *c)
	}
	shared(t, "Submission", reflect.ValueOf(s), reflect.ValueOf(*c))

	// nil stays nil and empty stays empty: the stored JSON (omitempty) must not change.
	var zero Submission
	zero.Targets = []Target{}
	z := zero.Clone()
	if z.Targets == nil || z.Attachments != nil || z.Origin != nil || z.DeliveredAt != nil {
		t.Fatalf("nil and empty not kept: %+v", *z)
	}
}

var timeType = reflect.TypeOf(time.Time{})

// fill gives every field a value that is not its zero value.
func fill(v reflect.Value, depth int) {
	if depth > 6 {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(7)
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 4, 13, 0, 0, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		sl := reflect.MakeSlice(v.Type(), 2, 2)
		fill(sl.Index(0), depth+1)
		fill(sl.Index(1), depth+1)
		v.Set(sl)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	default:
		panic("fill: a field of kind " + v.Kind().String() + " (" + v.Type().String() + "): teach fill and Clone about it")
	}
}

// shared fails where a and b hold the same pointer, slice array or map.
func shared(t *testing.T, path string, a, b reflect.Value) {
	t.Helper()
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return
		}
		if a.Pointer() == b.Pointer() {
			t.Errorf("%s: the clone shares the pointer", path)
		}
		shared(t, path, a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s: the clone shares the slice's array", path)
		}
		for i := range min(a.Len(), b.Len()) {
			shared(t, path+"[]", a.Index(i), b.Index(i))
		}
	case reflect.Map:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s: the clone shares the map", path)
		}
	case reflect.Struct:
		if a.Type() == timeType {
			return // its *Location is shared by design and never changed
		}
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				shared(t, path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
			}
		}
	}
}
