package wire

import (
	"crypto/sha1"
	"fmt"
	"strings"
)

// FIT-Connect names the receiver of a submission by its destinationId, a UUID
// (Submission API 1.1.3: SubmissionForPickup, SubmissionForNewEvents; Routing API:
// Route). amtsbote's office ids are readable names ("dresden-allgemeine-verwaltung"),
// so every place that speaks FIT-Connect derives the same stable UUID from the
// office id: the directory's /v1/routes, the office webhook notification, the pull
// API and the portals' new-events callbacks. A portal that found an office by
// /v1/routes thus recognises it in its callbacks, and a FIT-Connect client that
// reads destinationId as a UUID (the SDKs do) is not refused the body. The readable
// id travels next to it as officeId.

// OfficeDestinationID is the destinationId of the office with id officeID.
func OfficeDestinationID(officeID string) string { return nameUUID("office:" + officeID) }

// PeerDestinationID is the destinationId of the peer gateway serving the Land land
// (its two-digit key, e.g. "09"): /v1/routes names it for a place in that state.
func PeerDestinationID(land string) string { return nameUUID("peer:" + land) }

// PeerOfficePrefix starts the office id that intake gives a submission for another
// state ("peer-09"); configured offices may not use it when peers are configured.
const PeerOfficePrefix = "peer-"

// DestinationID is the destinationId of a submission's office: the peer gateway's
// for a submission forwarded to another state (forwarded: its channel is the peer
// channel, its office id "peer-<Land>"), else the office's.
func DestinationID(officeID string, forwarded bool) string {
	if land, ok := strings.CutPrefix(officeID, PeerOfficePrefix); ok && forwarded {
		return PeerDestinationID(land)
	}
	return OfficeDestinationID(officeID)
}

// nameUUID derives a UUID in the version 5 layout (SHA-1 over a fixed prefix and the
// name). The prefix is not an RFC 4122 namespace UUID; the ids are only compared
// with each other, and changing the derivation would change every published
// destinationId, so it stays as the directory first published it.
func nameUUID(name string) string {
	sum := sha1.Sum([]byte("amtsbote.de/directory/destination/" + name))
	b := sum[:16]
	b[6] = (b[6] & 0x0f) | 0x50
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
