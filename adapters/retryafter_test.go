package adapters_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/adapters"
)

// TestRetryAfterHeader: delta seconds, an HTTP date, and what counts as none.
func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{" 5 ", 5 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Minute).Format(http.TimeFormat), 90 * time.Minute},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"99999999999", adapters.MaxRetryAfter},
	}
	for _, c := range cases {
		if got := adapters.ParseRetryAfter(c.header, now); got != c.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", c.header, got, c.want)
		}
	}
}
