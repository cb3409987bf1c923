package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/api/problem"
)

// TestServeBlobRanges: both kinds of blob (a file that seeks, a stream that only
// reads forward) answer ranges alike: 206 with the right bytes, 416 as a problem
// document, the whole content without Range.
func TestServeBlobRanges(t *testing.T) {
	content := make([]byte, 100_000)
	for i := range content {
		content[i] = byte(i * 7 / 3)
	}
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	open := map[string]func() io.ReadCloser{
		"file": func() io.ReadCloser {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			return f
		},
		"stream": func() io.ReadCloser { return io.NopCloser(bytes.NewBuffer(content)) }, // no Seek
	}
	for kind, o := range open {
		get := func(rng string) *http.Response {
			t.Helper()
			rc := o()
			defer rc.Close()
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			if rng != "" {
				req.Header.Set("Range", rng)
			}
			rec := httptest.NewRecorder()
			serveBlob(rec, req, rc, int64(len(content)), strings.Repeat("ab", 32), Transfer{})
			return rec.Result()
		}
		t.Run(kind, func(t *testing.T) {
			for _, tc := range []struct {
				rng        string
				status     int
				from, to   int // expected body content[from:to]
				contentRng string
			}{
				{"", 200, 0, len(content), ""},
				{"bytes=0-9", 206, 0, 10, "bytes 0-9/100000"},
				{"bytes=65536-70000", 206, 65536, 70001, "bytes 65536-70000/100000"},
				{"bytes=-5", 206, len(content) - 5, len(content), "bytes 99995-99999/100000"},
				{"bytes=99990-", 206, 99990, len(content), "bytes 99990-99999/100000"},
			} {
				res := get(tc.rng)
				body, _ := io.ReadAll(res.Body)
				if res.StatusCode != tc.status || !bytes.Equal(body, content[tc.from:tc.to]) {
					t.Fatalf("Range %q: %d with %d bytes, want %d with content[%d:%d]", tc.rng, res.StatusCode, len(body), tc.status, tc.from, tc.to)
				}
				if got := res.Header.Get("Content-Range"); got != tc.contentRng {
					t.Errorf("Range %q: Content-Range %q, want %q", tc.rng, got, tc.contentRng)
				}
				if res.Header.Get("Accept-Ranges") != "bytes" {
					t.Errorf("Range %q: no Accept-Ranges: bytes", tc.rng)
				}
			}
			// Outside the content, malformed, or an empty suffix (an audit saw 206
			// "bytes 100000-99999/100000" for bytes=-0): 416 naming the size.
			for _, rng := range []string{"bytes=200000-300000", "bytes=5-1", "bytes=abc", "bytes=-0", "bytes=-0, -00"} {
				res := get(rng)
				body, _ := io.ReadAll(res.Body)
				var p problem.Problem
				if res.StatusCode != 416 || res.Header.Get("Content-Type") != problem.ContentType || json.Unmarshal(body, &p) != nil || p.Type != problem.TypeRangeNotSatisfiable {
					t.Fatalf("Range %q: %d %q %s", rng, res.StatusCode, res.Header.Get("Content-Type"), body)
				}
				if got := res.Header.Get("Content-Range"); got != "bytes */100000" {
					t.Errorf("Range %q: 416 Content-Range %q", rng, got)
				}
			}
			// An empty suffix beside a satisfiable range is dropped: the range
			// alone (it was a multipart part "bytes 100000-99999/100000").
			res := get("bytes=0-5,-0")
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != 206 || res.Header.Get("Content-Range") != "bytes 0-5/100000" || !bytes.Equal(body, content[:6]) {
				t.Fatalf("Range bytes=0-5,-0: %d %q %q, %d bytes", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Content-Range"), len(body))
			}
			// If-Match with another ETag: 412 as a problem document (it was the
			// blob's Content-Type over an empty body); with the blob's own, 206.
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			req.Header.Set("If-Match", `"nope"`)
			req.Header.Set("Range", "bytes=0-1")
			rec := httptest.NewRecorder()
			rc := o()
			serveBlob(rec, req, rc, int64(len(content)), strings.Repeat("ab", 32), Transfer{})
			rc.Close()
			var p problem.Problem
			if rec.Code != 412 || rec.Header().Get("Content-Type") != problem.ContentType || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Type != problem.TypePreconditionFailed {
				t.Fatalf("If-Match of another ETag: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			req.Header.Set("If-Match", `"`+strings.Repeat("ab", 32)+`"`)
			rec = httptest.NewRecorder()
			rc = o()
			serveBlob(rec, req, rc, int64(len(content)), strings.Repeat("ab", 32), Transfer{})
			rc.Close()
			if rec.Code != 206 {
				t.Fatalf("If-Match of the blob's ETag: %d", rec.Code)
			}
			// A unit other than bytes is ignored (RFC 9110 14.2): the whole content.
			res = get("items=0-1")
			body, _ = io.ReadAll(res.Body)
			if res.StatusCode != 200 || !bytes.Equal(body, content) {
				t.Fatalf("Range items=0-1: %d with %d bytes, want 200 and all", res.StatusCode, len(body))
			}
			// Several ranges, the later one first: a file answers them, a stream
			// sends everything rather than fail halfway.
			res = get("bytes=500-599,0-9")
			body, _ = io.ReadAll(res.Body)
			switch kind {
			case "file":
				if res.StatusCode != 206 || !strings.HasPrefix(res.Header.Get("Content-Type"), "multipart/byteranges") {
					t.Fatalf("multi-range from a file: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
				}
			case "stream":
				if res.StatusCode != 200 || !bytes.Equal(body, content) {
					t.Fatalf("multi-range from a stream: %d with %d bytes, want 200 and all", res.StatusCode, len(body))
				}
			}
		})
	}
}

// TestEmptyBlobRanges: no range of empty content can be satisfied; ServeContent
// answered bytes=-1 with 206 "bytes 0--1/0".
func TestEmptyBlobRanges(t *testing.T) {
	for _, rng := range []string{"bytes=-1", "bytes=0-"} {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header.Set("Range", rng)
		rec := httptest.NewRecorder()
		serveBlob(rec, req, bytes.NewReader(nil), 0, "", Transfer{})
		if rec.Code != 416 || rec.Header().Get("Content-Range") != "bytes */0" {
			t.Errorf("Range %q on empty content: %d Content-Range %q", rng, rec.Code, rec.Header().Get("Content-Range"))
		}
	}
	rec := httptest.NewRecorder()
	serveBlob(rec, httptest.NewRequest(http.MethodGet, "/x", nil), bytes.NewReader(nil), 0, "", Transfer{})
	if rec.Code != 200 || rec.Body.Len() != 0 {
		t.Errorf("empty content without Range: %d, %d bytes", rec.Code, rec.Body.Len())
	}
}

// TestRangeUnitIgnoresCase: range units are case-insensitive (RFC 9110 14.1), so
// "Bytes=0-9" asks for the first ten bytes. http.ServeContent knows only the
// lower-case form and answered 416, "the range lies outside the content", for
// a range well inside it.
func TestRangeUnitIgnoresCase(t *testing.T) {
	content := []byte("0123456789abcdefghij")
	for _, rng := range []string{"Bytes=0-9", "BYTES=0-9"} {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header.Set("Range", rng)
		rec := httptest.NewRecorder()
		serveBlob(rec, req, bytes.NewReader(content), int64(len(content)), "", Transfer{})
		if rec.Code != 206 || rec.Body.String() != "0123456789" || rec.Header().Get("Content-Range") != "bytes 0-9/20" {
			t.Errorf("Range %q: %d %q Content-Range %q", rng, rec.Code, rec.Body.String(), rec.Header().Get("Content-Range"))
		}
	}
}
