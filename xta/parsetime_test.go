package xta

import (
	"testing"
	"time"
)

// TestParseTimeEndOfDay: XML Schema 1.0 (3.2.7) allows T24:00:00, the end of the
// day, which is the next day's 00:00:00; a status-list selector for a whole day
// up to it was refused as "not an xs:dateTime" (an audit, 2026-12-05).
func TestParseTimeEndOfDay(t *testing.T) {
	next := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-12-05T24:00:00Z":        next,
		"2026-12-05T24:00:00.000Z":    next,
		"2026-12-05T24:00:00":         next.Add(-time.Hour), // German legal time, MEZ (TestParseTimeWithoutZoneIsGerman)
		"2026-12-05T24:00:00+01:00":   next.Add(-time.Hour),
		"2026-12-05T23:59:59.5+00:00": time.Date(2026, 12, 5, 23, 59, 59, 5e8, time.UTC),
	} {
		got, err := parseTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"2026-12-05T24:00:00.5Z", "2026-12-05T24:00:01Z", "2026-12-05T25:00:00Z", "T24:00:00"} {
		if got, err := parseTime(in); err == nil {
			t.Errorf("%s: %v, want an error", in, got)
		}
	}
}

// TestParseTimeWithoutZoneIsGerman: an xs:dateTime without a zone is German
// legal time, as the Fachverfahren sending it keeps it (a Java LocalDateTime
// goes out so). Read as UTC, a MessageBoxEntryTimeFrom of 10:00 began the
// window at 11:00 MEZ (12:00 MESZ), and a poll from the last poll's local time
// left out for good what entered the box in between (an audit, 2026-12-07).
// In the hour the clocks go back, the earlier of the two instants.
func TestParseTimeWithoutZoneIsGerman(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2026-12-07T10:00:00":       time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC),
		"2026-07-07T10:00:00.250":   time.Date(2026, 7, 7, 8, 0, 0, 25e7, time.UTC),
		"2026-10-25T02:30:00":       time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), // MESZ, the first 02:30
		"2026-10-25T03:30:00":       time.Date(2026, 10, 25, 2, 30, 0, 0, time.UTC),
		"2026-12-07T10:00:00Z":      time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC),
		"2026-12-07T10:00:00+01:00": time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC),
	} {
		got, err := parseTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got.UTC(), err, want)
		}
	}
}
