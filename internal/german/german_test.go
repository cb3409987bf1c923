package german

import (
	"testing"
	"time"
)

// Times name their zone the German way, also in the hour that happens twice.
func TestTime(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), "25.10.2026, 02:30 Uhr MESZ"},
		{time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), "25.10.2026, 02:30 Uhr MEZ"},
		{time.Date(2026, 11, 28, 14, 4, 0, 0, time.UTC), "28.11.2026, 15:04 Uhr MEZ"},
	} {
		if got := Time(tc.at); got != tc.want {
			t.Errorf("Time(%s) = %q, want %q", tc.at, got, tc.want)
		}
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 Byte", 961: "961 Byte", 1023: "1023 Byte", 1024: "1,0 KB", 48213: "47,1 KB", 3 << 20: "3,0 MB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestSizePicksTheUnitAfterRounding: the unit was chosen before rounding, so a
// size just below a mebibyte read "1024,0 KB" (the mailbox's pages, an audit).
func TestSizePicksTheUnitAfterRounding(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 Byte", 1023: "1023 Byte", 1024: "1,0 KB", 1536: "1,5 KB", 1<<20 - 1: "1,0 MB", 1023*1024 + 1000: "1,0 MB",
		1023 * 1024: "1023,0 KB", 1<<20 + 1<<19: "1,5 MB", 1<<30 - 1: "1,0 GB", 5 << 40: "5,0 TB", 5000 << 40: "5000,0 TB",
	} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
