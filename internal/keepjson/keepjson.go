// Package keepjson carries what a newer build wrote into a stored JSON document
// through this build's rewrite of it.
//
// The gateways of a cluster share one store, and during a rolling upgrade (or a
// way back to the build before and forward again) a gateway of the older build
// reads and rewrites records that a newer one wrote. encoding/json drops every
// key the Go type does not know, so each field a build added (a clerk's takeover,
// a hand-over after it) vanished from a case the moment an older gateway recorded
// anything on it — a decision, a mark, a delivery — and with it the behaviour it
// stood for (docs/cluster.md, "Rolling upgrades").
//
// The store reads a record with Decode, which says whether the stored JSON has
// keys the type does not know; only then (the rare case: a mixed cluster) does it
// Merge the stored document into the one it is about to write. A known key is
// always this build's: a key it cleared (an omitted empty field) stays cleared.
// Unknown keys are found in every object the Go type describes as a struct, also
// inside lists (matched by position, or by an identity key: Keys) and maps.
//
// What a change that erases data writes is never merged: an older build cannot
// know whether a newer field holds personal data, so an erasure drops what it
// does not know (the store's UpdateRedacting).
package keepjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Decode is json.Unmarshal(data, v) that also reports whether data holds a key
// that v's type does not know (at any depth). The common case — a record this
// build wrote — costs one pass, as json.Unmarshal.
func Decode(data []byte, v any) (unknown bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
			return false, json.Unmarshal(data, v) // json.Unmarshal's own error for what follows the value
		}
		return false, nil
	}
	// encoding/json names an unknown key only in the message, and goes on
	// decoding after it (the first error is kept), so every other fault is
	// reported by a plain decode; a record that only has unknown keys decodes
	// as json.Unmarshal decodes it.
	unknown = strings.HasPrefix(err.Error(), "json: unknown field ")
	return unknown, json.Unmarshal(data, v)
}

// Keys names, for element types of lists, the JSON key whose value identifies
// an element: Merge matches the elements of the stored and the new list by it
// instead of by position. A list the new document reorders or shortens (the
// newest events of a document whose older ones moved to pages) needs one.
type Keys map[reflect.Type]string

// Merge returns cur, the JSON this build encoded from a value of type t, with
// every key of old, the JSON stored before, that t does not know and cur does
// not have. Keys t knows are cur's alone. old that is not a JSON object where t
// has a struct (null, or another shape) contributes nothing there.
func Merge(t reflect.Type, old, cur []byte, keys Keys) ([]byte, error) {
	out, err := merge(t, old, cur, keys)
	if err != nil {
		return nil, fmt.Errorf("keepjson: %w", err)
	}
	return out, nil
}

func merge(t reflect.Type, old, cur []byte, keys Keys) ([]byte, error) {
	t = deref(t)
	if !holdsStruct(t) {
		return cur, nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return mergeObject(t, old, cur, keys)
	case reflect.Slice, reflect.Array:
		return mergeList(t.Elem(), old, cur, keys)
	case reflect.Map:
		return mergeMap(t.Elem(), old, cur, keys)
	}
	return cur, nil
}

func mergeObject(t reflect.Type, old, cur []byte, keys Keys) ([]byte, error) {
	return mergeMembers(old, cur, keys, fieldsOf(t).lookup)
}

func mergeList(et reflect.Type, old, cur []byte, keys Keys) ([]byte, error) {
	var o, c []json.RawMessage
	if !isArray(old) || !isArray(cur) {
		return cur, nil
	}
	if err := json.Unmarshal(old, &o); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(cur, &c); err != nil {
		return nil, err
	}
	match := func(i int) json.RawMessage { // the stored element cur's i-th is
		if i < len(o) {
			return o[i]
		}
		return nil
	}
	if key, ok := keys[deref(et)]; ok {
		byID := map[string]json.RawMessage{}
		for _, e := range o {
			if id, ok := identity(e, key); ok {
				byID[id] = e
			}
		}
		match = func(i int) json.RawMessage {
			id, ok := identity(c[i], key)
			if !ok {
				return nil
			}
			return byID[id]
		}
	}
	changed := false
	for i := range c {
		s := match(i)
		if s == nil {
			continue
		}
		v, err := merge(et, s, c[i], keys)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		if !bytes.Equal(v, c[i]) {
			c[i], changed = v, true
		}
	}
	if !changed {
		return cur, nil
	}
	return json.Marshal(c)
}

// mergeMap: a map's keys are all its own, so an entry cur lacks was removed
// and stays so.
func mergeMap(et reflect.Type, old, cur []byte, keys Keys) ([]byte, error) {
	return mergeMembers(old, cur, keys, func(string) (reflect.Type, bool) { return et, true })
}

// mergeMembers merges two JSON objects: a key typeOf knows keeps cur's value
// (old's merged into it, where its type holds a struct) or its absence; a key
// typeOf does not know that only old has is added.
func mergeMembers(old, cur []byte, keys Keys, typeOf func(key string) (reflect.Type, bool)) ([]byte, error) {
	o, ok, err := members(old)
	if err != nil || !ok {
		return cur, err
	}
	c, ok, err := members(cur)
	if err != nil || !ok {
		return cur, err
	}
	changed := false
	for _, m := range o {
		ft, known := typeOf(m.key)
		i := c.index(m.key)
		switch {
		case !known && i < 0:
			c = append(c, m)
			changed = true
		case !known, i < 0:
		default:
			v, err := merge(ft, m.value, c[i].value, keys)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.key, err)
			}
			if !bytes.Equal(v, c[i].value) {
				c[i].value, changed = v, true
			}
		}
	}
	if !changed {
		return cur, nil
	}
	return c.encode()
}

// identity is the compact JSON of element e's key, if e is an object that has it.
func identity(e json.RawMessage, key string) (string, bool) {
	ms, ok, err := members(e)
	if err != nil || !ok {
		return "", false
	}
	i := ms.index(key)
	if i < 0 {
		return "", false
	}
	var b bytes.Buffer
	if err := json.Compact(&b, ms[i].value); err != nil {
		return "", false
	}
	return b.String(), true
}

// member is one key of a JSON object with its value as it was written.
type member struct {
	key   string
	value json.RawMessage
}

type object []member

// members reads data as a JSON object, keeping the order of its keys; ok is
// false when data is another JSON value (null, a list, …).
func members(data []byte) (object, bool, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return nil, false, err
	}
	var out object
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, false, errors.New("object key is not a string")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false, err
		}
		out = append(out, member{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

func (o object) index(key string) int {
	for i, m := range o {
		if m.key == key {
			return i
		}
	}
	return -1
}

func (o object) encode() ([]byte, error) {
	b := []byte{'{'}
	for i, m := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), m.value...)
	}
	return append(b, '}'), nil
}

func isArray(data []byte) bool {
	data = bytes.TrimSpace(data)
	return len(data) > 0 && data[0] == '['
}

// fields are the JSON names of a struct type's fields, as encoding/json matches
// them: exactly, or else ignoring case (the first field in the struct's order).
type fields struct {
	exact  map[string]reflect.Type
	folded map[string]reflect.Type
}

func (f fields) lookup(key string) (reflect.Type, bool) {
	if t, ok := f.exact[key]; ok {
		return t, true
	}
	t, ok := f.folded[foldName(key)]
	return t, ok
}

var (
	fieldCache sync.Map // reflect.Type → fields
	holdsCache sync.Map // reflect.Type → bool
)

// field is one candidate for a JSON name of a struct type.
type field struct {
	name   string
	typ    reflect.Type
	index  []int // the path to it through embedded structs
	tagged bool
}

// fieldsOf lists the JSON names of struct type t by encoding/json's rules
// (typeFields there): exported fields, named by a valid tag or else their name,
// "-" left out, the fields of embedded structs without a tag promoted; of those
// with one name the shallowest wins, at one depth the one tagged, and none when
// that leaves two. A name Merge took for known that encoding/json does not
// decode lost a newer key; one it took for unknown that encoding/json decodes
// (a field hidden by another, first in the struct) came back after this build
// cleared it.
func fieldsOf(t reflect.Type) fields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(fields)
	}
	var all []field
	next := []field{{typ: t}}
	// How often each embedded struct of the depth at hand was found (it is
	// walked once), and of the next.
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		current := next
		next = nil
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, f := range current {
			if visited[f.typ] {
				continue
			}
			visited[f.typ] = true
			for i := range f.typ.NumField() {
				sf := f.typ.Field(i)
				if sf.Anonymous {
					if !sf.IsExported() && deref1(sf.Type).Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name := tagName(tag)
				index := append(slices.Clone(f.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					tagged := name != ""
					if name == "" {
						name = sf.Name
					}
					all = append(all, field{name: name, typ: sf.Type, index: index, tagged: tagged})
					if count[f.typ] > 1 {
						// The same struct embedded twice at this depth: its
						// fields annihilate each other, as two of one name do.
						all = append(all, all[len(all)-1])
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, field{typ: ft, index: index})
				}
			}
		}
	}
	// By name; of one name the shallowest first, then the tagged one.
	slices.SortStableFunc(all, func(a, b field) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := len(a.index) - len(b.index); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})
	var kept []field
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].name == all[i].name {
			j++
		}
		if j-i == 1 || len(all[i].index) != len(all[i+1].index) || all[i].tagged != all[i+1].tagged {
			kept = append(kept, all[i])
		}
		i = j
	}
	// A name that matches only ignoring case goes to the first field in the
	// struct's order that it matches.
	slices.SortFunc(kept, func(a, b field) int { return slices.Compare(a.index, b.index) })
	f := fields{exact: map[string]reflect.Type{}, folded: map[string]reflect.Type{}}
	for _, k := range kept {
		f.exact[k.name] = k.typ
		if _, ok := f.folded[foldName(k.name)]; !ok {
			f.folded[foldName(k.name)] = k.typ
		}
	}
	fieldCache.Store(t, f)
	return f
}

// foldName is encoding/json's folding of a name for its match ignoring case.
func foldName(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			continue
		}
		b.WriteRune(unicode.ToUpper(unicode.ToLower(r)))
	}
	return b.String()
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// holdsStruct reports whether a value of t can hold a JSON object whose keys t
// describes: a struct, or a list or map of them. A type that decodes itself
// (time.Time) and an interface are values as a whole.
//
// Only the answer is remembered: Merges run at once (the store merges outside
// its transaction), and one that read a "no" stored while another was still
// working the answer out wrote cur as it was, without any newer key.
func holdsStruct(t reflect.Type) bool {
	if h, ok := holdsCache.Load(t); ok {
		return h.(bool)
	}
	h := holds(t, map[reflect.Type]bool{})
	holdsCache.Store(t, h)
	return h
}

// holds is holdsStruct worked out; asking are the types whose answer waits
// for this one. A type that comes back to itself does so through lists and
// maps alone (a struct answers at once), so it holds no struct.
func holds(t reflect.Type, asking map[reflect.Type]bool) bool {
	if h, ok := holdsCache.Load(t); ok {
		return h.(bool)
	}
	if asking[t] {
		return false
	}
	asking[t] = true
	pt := reflect.PointerTo(t)
	switch {
	case t.Implements(jsonUnmarshaler) || pt.Implements(jsonUnmarshaler),
		t.Implements(textUnmarshaler) || pt.Implements(textUnmarshaler):
	case t.Kind() == reflect.Struct:
		return true
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		// []byte is a base64 string.
	case t.Kind() == reflect.Slice, t.Kind() == reflect.Array, t.Kind() == reflect.Map:
		return holds(deref(t.Elem()), asking)
	}
	return false
}

// deref1 is t's element when t is a pointer, as encoding/json looks through one
// pointer to an embedded struct.
func deref1(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		return t.Elem()
	}
	return t
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
