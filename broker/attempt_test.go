package broker

import (
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/submission"
)

// TestAttemptTimeoutGrowsWithSize: an attempt may take attempt_timeout plus the
// bytes it carries at transfer_min_rate, so a push of a 2 GiB attachment is not cut
// off after 30 seconds, while a small package keeps the short bound.
func TestAttemptTimeoutGrowsWithSize(t *testing.T) {
	c := Config{AttemptTimeout: 30 * time.Second}
	c.defaults()
	b := &Broker{cfg: c}
	small := &submission.Submission{PackageSize: 14 << 10}
	if got := b.attemptTimeout(small); got < 30*time.Second || got > 31*time.Second {
		t.Errorf("a 14 KiB package: %s, want about 30s", got)
	}
	big := &submission.Submission{PackageSize: 14 << 10, Attachments: []submission.Attachment{{Size: 2 << 30}}}
	if got, want := b.attemptTimeout(big), 30*time.Second+2048*time.Second; got < want || got > want+time.Second {
		t.Errorf("with a 2 GiB attachment at the default 1 MiB/s: %s, want %s", got, want)
	}
}
