package adapters_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
)

// TestRetryAfterDateIsCapped: MaxRetryAfter bounds a Retry-After given as an
// HTTP date as it bounds delta seconds; a receiver's date a year ahead must not
// become a wait of a year (the broker caps its own wait too, but other readers
// of RetryAfter rely on the bound).
func TestRetryAfterDateIsCapped(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	far := now.AddDate(1, 0, 0).Format(http.TimeFormat)
	if got := adapters.ParseRetryAfter(far, now); got != adapters.MaxRetryAfter {
		t.Fatalf("ParseRetryAfter(%q) = %s, want the cap %s", far, got, adapters.MaxRetryAfter)
	}
}
