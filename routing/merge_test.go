package routing

import (
	"testing"
)

// An operator's group replaces an earlier record for the same service, area and role
// however the area is written: a group for "140000000000" (Land 14 padded to 12
// digits, the FIT-Connect form) left the built-in sample record for "14" in force,
// and the Apotheke packages of all Saxony went to the sample Landesdirektion.
func TestGroupReplacesRecordForAreaWrittenDifferently(t *testing.T) {
	const office = `
offices:
  - id: lds-real
    name: "Landesdirektion Sachsen (Betrieb)"
    kanaele: [{kind: mailbox, endpoint: lds-real}]
`
	for _, area := range []string{"14", "140000000000", " 140000000000 "} {
		d := withOverlay(t, office+`
gruppen:
  - {stelle: lds-real, gebiete: ["`+area+`"], leistungen: ["`+keyApotheke+`"]}
`)
		r, err := d.Resolve(keyApotheke, "Leipzig")
		if err != nil {
			t.Fatalf("gebiete [%q]: %v", area, err)
		}
		if r.Office.ID != "lds-real" {
			t.Errorf("gruppe gebiete [%q]: Apotheke in Leipzig -> %s (sample %v), want the operator's lds-real", area, r.Office.ID, r.Office.Sample)
		}
	}
	// A single record written padded replaces the built-in one too.
	d := withOverlay(t, office+`
responsibilities:
  - {leistung: "`+keyApotheke+`", gebiet: "140000000000", stelle: lds-real}
`)
	if r, err := d.Resolve(keyApotheke, "Leipzig"); err != nil || r.Office.ID != "lds-real" {
		t.Errorf("record gebiet 140000000000: %+v, %v; want lds-real", r, err)
	}
}
