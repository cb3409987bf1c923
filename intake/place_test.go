package intake

import (
	"errors"
	"testing"

	"github.com/amtsbote/amtsbote/paket"
	"github.com/amtsbote/amtsbote/routing"
)

// TestPostcodeAndNameAreReadTogether: a package that gives a postcode and a name
// is routed by both where the postcode alone is not enough or contradicts the
// name. The postcode alone decided: 01877 with "Bischofswerda" was refused as
// five places, and 01067 (Dresden) with "Leipzig" went to Dresden.
func TestPostcodeAndNameAreReadTogether(t *testing.T) {
	d, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := d.FindService("Gewerbe anmelden")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ort      paket.Ort
		wantArea string // "" with wantErr
		wantErr  error
	}{
		{paket.Ort{PLZ: "01877", Name: "Bischofswerda"}, "Bischofswerda, Stadt", nil},
		{paket.Ort{PLZ: "01877", Name: "Rammenau"}, "Rammenau", nil},
		{paket.Ort{PLZ: "01877"}, "", routing.ErrAmbiguousPlace},
		{paket.Ort{PLZ: "01877", Name: "Weickersdorf"}, "", routing.ErrAmbiguousPlace}, // an Ortsteil: the postcode's choices
		{paket.Ort{PLZ: "01877", Name: "Putzkau"}, "Schmölln-Putzkau", nil},            // a town in a double name
		{paket.Ort{PLZ: "01067", Name: "Leipzig"}, "", routing.ErrUnknownPlace},
		{paket.Ort{PLZ: "01067", Name: "Dresden-Altstadt"}, "Dresden, Stadt", nil},
		{paket.Ort{PLZ: "01067", Name: "Irgendwo"}, "Dresden, Stadt", nil},       // no municipality: the postcode decides
		{paket.Ort{ARS: "146120000000", Name: "Leipzig"}, "Dresden, Stadt", nil}, // a key is never second-guessed
	} {
		q := placeOf(d, tc.ort)
		r, err := d.Resolve(svc.Key, q)
		switch {
		case tc.wantErr != nil:
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%+v (query %q): %v, want %v", tc.ort, q, err, tc.wantErr)
			}
		case err != nil || r.Area == nil || r.Area.Name != tc.wantArea:
			t.Errorf("%+v (query %q): %+v %v, want %s", tc.ort, q, r, err, tc.wantArea)
		}
	}
}

// TestUnknownPostcodeIsReadWithItsName: a postcode the table lacks (a Postfach's,
// a new one) with a town's name is routed by the name, as lookup and /v1/resolve
// route it. placeOf dropped the name, and intake refused as an unknown place what
// the directory API had routed ("01001 Dresden", "09581 Freiberg").
func TestUnknownPostcodeIsReadWithItsName(t *testing.T) {
	d, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	const gewerbe = "99050012104000"
	resolveEach(t, d, gewerbe, []placeCase{
		{paket.Ort{PLZ: "01001", Name: "Dresden"}, "Dresden, Stadt", nil},
		{paket.Ort{PLZ: "09581", Name: "Freiberg"}, "Freiberg, Stadt, Universitätsstadt", nil},
		{paket.Ort{PLZ: "01001", Name: "Irgendwo"}, "", routing.ErrUnknownPlace},
		{paket.Ort{PLZ: "01001"}, "", routing.ErrUnknownPlace},
	}, func(tc placeCase, r *routing.Route) {
		// The directory's own reading of the pair, as lookup and /v1/resolve do it.
		if want, err := d.Resolve(gewerbe, tc.ort.PLZ+" "+tc.ort.Name); err != nil || want.Area != r.Area {
			t.Errorf("%+v: intake %v, directory %+v %v", tc.ort, r.Area.Name, want, err)
		}
	})
}

// placeCase is a package's place and what intake's query of it resolves to.
type placeCase struct {
	ort      paket.Ort
	wantArea string // "" with wantErr
	wantErr  error
}

// resolveEach resolves service at placeOf of each case's place and checks the
// area or error; also, when set, looks further at each route found.
func resolveEach(t *testing.T, d *routing.Directory, service string, cases []placeCase, also func(placeCase, *routing.Route)) {
	t.Helper()
	for _, tc := range cases {
		q := placeOf(d, tc.ort)
		r, err := d.Resolve(service, q)
		switch {
		case tc.wantErr != nil:
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%+v (query %q): %v, want %v", tc.ort, q, err, tc.wantErr)
			}
		case err != nil || r.Area == nil || r.Area.Name != tc.wantArea:
			t.Errorf("%+v (query %q): %+v %v, want %s", tc.ort, q, r, err, tc.wantArea)
		case also != nil:
			also(tc, r)
		}
	}
}

// TestKreisKeyIsNarrowedByAPlaceInside: a package whose ARS is a Kreis's padded
// key ("146250000000", Landkreis Bautzen) and whose postcode or name is a
// municipality inside the Kreis goes to that municipality. The key alone made a
// municipal service ambiguous (the Kreis's 57 municipalities), and the package was
// refused although it named its town. A place outside the Kreis, or the Kreis's
// own name, leaves the key as it is.
func TestKreisKeyIsNarrowedByAPlaceInside(t *testing.T) {
	d, err := routing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	const gewerbe, bautzen = "99050012104000", "146250000000"
	resolveEach(t, d, gewerbe, []placeCase{
		{paket.Ort{ARS: bautzen, PLZ: "01877", Name: "Bischofswerda"}, "Bischofswerda, Stadt", nil},
		{paket.Ort{ARS: bautzen, Name: "Rammenau"}, "Rammenau", nil},
		{paket.Ort{ARS: bautzen}, "", routing.ErrAmbiguousPlace},
		{paket.Ort{ARS: bautzen, Name: "Bautzen"}, "", routing.ErrAmbiguousPlace},               // the Kreis's own name
		{paket.Ort{ARS: bautzen, PLZ: "01067", Name: "Dresden"}, "", routing.ErrAmbiguousPlace}, // outside the Kreis
	}, nil)
}
