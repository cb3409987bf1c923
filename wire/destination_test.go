package wire

import (
	"regexp"
	"testing"
)

// TestDestinationIDs pins the derivation: these ids are published (by /v1/routes,
// in webhook notifications and callbacks) and stored by portals and offices, so a
// change would make them see a different destination for the same office.
func TestDestinationIDs(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	tests := []struct{ got, want string }{
		// The values the directory's /v1/routes published before the derivation
		// moved here.
		{OfficeDestinationID("dresden-allgemeine-verwaltung"), "2e0cf242-17b6-54c8-8e5a-79f2b889f885"},
		{PeerDestinationID("09"), "c925d5be-fe08-5b6f-926b-a1530795c6f8"},
		{DestinationID("dresden-allgemeine-verwaltung", false), "2e0cf242-17b6-54c8-8e5a-79f2b889f885"},
		{DestinationID("peer-09", true), "c925d5be-fe08-5b6f-926b-a1530795c6f8"},
		// Without the peer channel, "peer-09" is an ordinary office id.
		{DestinationID("peer-09", false), OfficeDestinationID("peer-09")},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
		if !uuid.MatchString(tc.got) {
			t.Errorf("%s is not a version 5 UUID", tc.got)
		}
	}
	if OfficeDestinationID("a") == OfficeDestinationID("b") || OfficeDestinationID("09") == PeerDestinationID("09") {
		t.Error("different destinations share an id")
	}
}
