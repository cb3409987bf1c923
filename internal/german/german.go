// Package german formats times and sizes the way the gateway shows them to German
// clerks: "28.11.2026, 15:04 Uhr MEZ", "47,1 KB". The web mailbox's pages and the
// transfer channel's summary PDF (formview) both use it, so a case reads the same
// on the screen and in the office's file.
package german

import (
	"math"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Berlin must work on hosts without a zoneinfo database
)

// Berlin is German local time (UTC only if the zone cannot be loaded, which the
// embedded zone database prevents).
var Berlin = func() *time.Location {
	if l, err := time.LoadLocation("Europe/Berlin"); err == nil {
		return l
	}
	return time.UTC
}()

// Time formats t in Berlin time with its zone: "28.11.2026, 15:04 Uhr MEZ".
func Time(t time.Time) string {
	t = t.In(Berlin)
	return t.Format("02.01.2006, 15:04 Uhr") + " " + Zone(t)
}

// Zone names the zone of a Berlin time the German way, MEZ or MESZ. Every time
// carries it: in the hour the clocks go back (the last Sunday of October, 02:00-02:59
// twice) two instants an hour apart read alike without it, and the event list of a
// case seemed to go back in time. A deadline is measured from the Eingang time.
func Zone(t time.Time) string {
	switch name, _ := t.Zone(); name {
	case "CET":
		return "MEZ"
	case "CEST":
		return "MESZ"
	default:
		return name // UTC, when the host has no zone data for Berlin
	}
}

// Size formats a byte count with a decimal comma: "961 Byte", "47,1 KB", "2,0 MB"
// (binary multiples, as file managers show them). The unit is chosen after
// rounding to one decimal: chosen before, 1,048,575 bytes read "1024,0 KB".
func Size(n int64) string {
	if n < 1<<10 {
		return strconv.FormatInt(n, 10) + " Byte"
	}
	format := func(v float64, unit string) string {
		return strings.Replace(strconv.FormatFloat(v, 'f', 1, 64), ".", ",", 1) + " " + unit
	}
	v := float64(n) / (1 << 10)
	for _, unit := range []string{"KB", "MB", "GB"} {
		if r := math.Round(v*10) / 10; r < 1<<10 {
			return format(r, unit)
		}
		v /= 1 << 10
	}
	return format(math.Round(v*10)/10, "TB")
}
