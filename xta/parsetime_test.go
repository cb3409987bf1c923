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
		"2026-12-05T24:00:00":         next,
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
