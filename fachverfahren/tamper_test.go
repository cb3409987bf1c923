package fachverfahren_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/fachverfahren"
	"github.com/amtsbote/amtsbote/submission"
)

// tamper is a transport between the office and a real gateway that changes the
// answers whose path ends in suffix: what a broken proxy or an attacker on the
// way does to the bytes.
type tamper struct {
	suffix string
	change func([]byte) []byte
}

func (tp tamper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet || resp.StatusCode != http.StatusOK || !strings.HasSuffix(r.URL.Path, tp.suffix) {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	b = tp.change(b)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return resp, nil
}

// flip changes one byte and keeps the length: only a digest can tell.
func flip(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x01
	return c
}

// TestChangedBytesAreNeverDecided: the office decides only the bytes the
// notification (or the list) names by their SHA-256. A package or attachment
// changed on the way, byte for byte the same length, fails for good with an
// error that says which digest differs, and the case stays undecided at the
// gateway for a person to look at; a package answered longer than announced is
// refused as such, not cut to its announced size (the rule of fetch).
func TestChangedBytesAreNeverDecided(t *testing.T) {
	for _, tc := range []struct {
		name, suffix string
		change       func([]byte) []byte
		want         []string
	}{
		{"package changed", "/package", flip, []string{"package digest differs from the notification"}},
		{"attachment changed", "", flip, []string{"attachment ", " digest differs"}},
		{"package longer", "/package", func(b []byte) []byte { return append(bytes.Clone(b), "<!-- more -->"...) },
			[]string{"the answer is longer than the ", " bytes announced"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startGateway(t, channel.API, config.Channel{})
			p := example()
			id := f.submit(t, p)
			f.waitState(t, id, submission.StateHandedOver, 30*time.Second)
			suffix := tc.suffix
			if suffix == "" {
				suffix = "/attachments/" + p.Anlagen[0].ID
			}
			fv, err := fachverfahren.Start(fachverfahren.Options{Token: testToken, TempDir: t.TempDir(),
				Client: &http.Client{Transport: tamper{suffix: suffix, change: tc.change}}})
			if err != nil {
				t.Fatal(err)
			}
			defer fv.Close()
			n, err := fv.Poll(context.Background(), f.g.URL())
			out := fv.Processed()[id]
			if err != nil || n != 1 || out.Err == nil || out.Accepted {
				t.Fatalf("poll: %d %v %+v, want the case finished with an error, not accepted", n, err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.Err.Error(), w) {
					t.Errorf("error %q does not say %q", out.Err, w)
				}
			}
			if st := f.state(t, id); st != submission.StateDelivered {
				t.Errorf("at the gateway: %s, want delivered (not decided)", st)
			}
		})
	}
}
