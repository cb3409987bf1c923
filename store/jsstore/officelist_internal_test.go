package jsstore

import (
	"slices"
	"testing"
	"time"
)

// TestApplyChanges: the changes since a list's sequence leave it sorted, each id
// once, and never change the slice a page may be walking.
func TestApplyChanges(t *testing.T) {
	for _, c := range []struct {
		name    string
		ids     []string
		changed map[string]bool
		want    []string
	}{
		{"nothing", []string{"a", "c"}, nil, []string{"a", "c"}},
		{"new after the last", []string{"a", "c"}, map[string]bool{"e": true, "d": true}, []string{"a", "c", "d", "e"}},
		{"into an empty list", nil, map[string]bool{"b": true, "a": true}, []string{"a", "b"}},
		{"in between", []string{"a", "c"}, map[string]bool{"b": true, "d": true}, []string{"a", "b", "c", "d"}},
		{"removed", []string{"a", "b", "c"}, map[string]bool{"b": false, "d": true}, []string{"a", "c", "d"}},
		{"put again", []string{"a", "b"}, map[string]bool{"a": true}, []string{"a", "b"}},
		{"removed twice", []string{"a", "b"}, map[string]bool{"x": false, "a": false}, []string{"b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ids := slices.Grow(slices.Clone(c.ids), 8) // room to append: the page's slice must still not change
			walking := slices.Clone(ids)
			got := applyChanges(ids, c.changed)
			if !slices.Equal(got, c.want) {
				t.Fatalf("applyChanges(%v, %v) = %v, want %v", c.ids, c.changed, got, c.want)
			}
			if !slices.Equal(ids, walking) {
				t.Fatalf("applyChanges changed the slice a page walks: %v, was %v", ids, walking)
			}
		})
	}
}

// TestOfficeListsDropUnusedLists: a list unused for idle is dropped (a page lists
// the office anew), and past maxIDs the least recently used ones are, never the
// one just used.
func TestOfficeListsDropUnusedLists(t *testing.T) {
	o := newOfficeLists(time.Hour)
	o.maxIDs = 10
	if o.idle != officeListIdle {
		t.Fatalf("idle %s, want %s", o.idle, officeListIdle)
	}
	if short := newOfficeLists(4 * time.Minute); short.idle != 2*time.Minute {
		t.Fatalf("with markers of 4 min idle is %s, want half of it", short.idle)
	}
	t0 := time.Now()
	a := o.get("a", t0)
	o.counted(a, 4)
	b := o.get("b", t0.Add(time.Minute))
	o.counted(b, 4)
	if o.get("a", t0.Add(2*time.Minute)) != a {
		t.Fatal("a list in use was dropped")
	}
	c := o.get("c", t0.Add(3*time.Minute))
	o.counted(c, 4) // 12 ids: b, the least recently used, goes
	if o.get("a", t0.Add(3*time.Minute)) != a || o.get("c", t0.Add(3*time.Minute)) != c {
		t.Fatal("a list used more recently than b was dropped")
	}
	if o.get("b", t0.Add(3*time.Minute)) == b {
		t.Fatal("b, the least recently used, was kept past maxIDs")
	}
	big := o.get("big", t0.Add(4*time.Minute))
	o.counted(big, 50) // more than maxIDs alone: the others go, it stays
	if o.get("big", t0.Add(4*time.Minute)) != big {
		t.Fatal("the list just used was dropped")
	}
	if o.get("a", t0.Add(4*time.Minute)) == a {
		t.Fatal("a was kept beside a list larger than maxIDs")
	}
	later := t0.Add(4*time.Minute + officeListIdle + time.Second)
	if o.get("big", later) == big {
		t.Fatalf("a list unused for more than %s was kept", officeListIdle)
	}
}
