package routing

import "testing"

func TestSmoke(t *testing.T) {
	d, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Resolve("99050012104000", "01067")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r.Office.Name, r.Channels)
	r, err = d.Resolve("99050012104000", "70173")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r.Peer, r.Channels)
	t.Log(d.SearchPlaces("dresden", 5), d.SearchServices("gewerbe", 5))
}
