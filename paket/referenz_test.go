package paket

import (
	"errors"
	"testing"
)

// Attachments by reference have their own size limits: gigabytes that are streamed
// to disk, where inline attachments (decoded in memory) keep MaxAttachmentBytes.
func TestReferencedLimits(t *testing.T) {
	p := full()
	p.Anlagen[1].Groesse = 30 << 20 // over MaxAttachmentBytes, fine by reference
	if _, err := Parse(readRoot(t, p.Marshal()), Limits{}); err != nil {
		t.Fatalf("30 MiB by reference refused with the default limits: %v", err)
	}
	for _, tc := range []struct {
		name  string
		lim   Limits
		limit string
	}{
		{"one too large", Limits{MaxReferencedBytes: 30<<20 - 1}, "MaxReferencedBytes"},
		{"together too large", Limits{MaxReferencedTotal: 40 << 20}, "MaxReferencedTotal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := full()
			q.Anlagen[1].Groesse = 30 << 20
			b := q.Anlagen[1]
			b.ID, b.Referenz = "foto-2", "cid:foto-2@amt24.sachsen.de"
			q.Anlagen = append(q.Anlagen, b)
			_, err := Parse(readRoot(t, q.Marshal()), tc.lim)
			var le *LimitError
			if !errors.As(err, &le) || !errors.Is(err, ErrLimit) || le.Limit != tc.limit {
				t.Fatalf("want LimitError %s, got %v", tc.limit, err)
			}
		})
	}
	// An inline attachment keeps the in-memory limit.
	q := full()
	q.Anlagen[0].Groesse = 30 << 20
	_, err := Parse(readRoot(t, q.Marshal()), Limits{})
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != "MaxAttachmentBytes" {
		t.Fatalf("inline 30 MiB: want LimitError MaxAttachmentBytes, got %v", err)
	}
}

func TestCID(t *testing.T) {
	for ref, want := range map[string]string{
		"cid:foo4*foo1@bar.net":   "foo4*foo1@bar.net",
		"CID:teil-1@portal":       "teil-1@portal",
		"cid:foo4%25foo1@bar.net": "foo4%foo1@bar.net",
		"cid:a%40b":               "a@b",
		"http://x/y":              "",
		"cid:":                    "",
		"cid:bad%zz":              "",
	} {
		got, err := CID(ref)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("CID(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	for h, want := range map[string]string{
		"<foo@bar>":   "foo@bar",
		" <foo@bar> ": "foo@bar",
		"foo@bar":     "",
		"<>":          "",
		"":            "",
	} {
		if got := ContentID(h); got != want {
			t.Errorf("ContentID(%q) = %q, want %q", h, got, want)
		}
	}
}
