package webhook

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
)

// fuzzSecret is fixed so the seed corpus stays valid across runs.
const fuzzSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// FuzzVerify feeds outside input (all five headers and the body) to Verify: it must
// never panic, must only return documented errors, and must accept only what the
// secret signed (in one header set at least).
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_795_000_000, 0)
	body := []byte(`{"type":"` + TypeNewSubmissions + `","deliveryId":"dlv-1"}`)
	ss, err := parseSecrets(fuzzSecret)
	if err != nil {
		f.Fatal(err)
	}
	h := http.Header{}
	sign(h, ss, "dlv-1", now, body)
	g := func(k string) string { return h.Get(k) }
	f.Add(g(HeaderWebhookID), g(HeaderWebhookTimestamp), g(HeaderWebhookSignature), g(HeaderCallbackAuth), g(HeaderCallbackTime), body)
	f.Add("", "", "", "", "", []byte{})
	f.Add("x", "1795000000", "v1,!!!! v1a,abc v1", "ZZ", "-1", []byte("{}"))
	f.Add("dlv-1", "00001795000000", "v1,"+"A", g(HeaderCallbackAuth)[:64], "1795000000", body)
	f.Add("id with spaces", "1795000000", "   ", "", "1795000000", []byte("\x00\xff"))

	f.Fuzz(func(t *testing.T, id, ts, sig, mac, cts string, b []byte) {
		in := http.Header{}
		for k, v := range map[string]string{HeaderWebhookID: id, HeaderWebhookTimestamp: ts, HeaderWebhookSignature: sig,
			HeaderCallbackAuth: mac, HeaderCallbackTime: cts} {
			if v != "" {
				in.Set(k, v)
			}
		}
		err := Verify(in, b, fuzzSecret, now, 0)
		if err == nil {
			// Accepted: then the Standard Webhooks set is exactly what the secret
			// produces (never absent: the FIT-Connect set alone lacks webhook-id, by
			// which a receiver recognises a replay). A callback-authentication beside
			// it may be another secret's (a rotation), but only with the verified
			// timestamp.
			std := "v1," + base64.StdEncoding.EncodeToString(standardSignature(ss[0].key, id, ts, b))
			fitOK := strings.ToLower(mac) == hex.EncodeToString(fitConnectMAC(fuzzSecret, cts, b))
			switch {
			case id == "" || ts == "" || sig == "":
				t.Fatalf("accepted without the Standard Webhooks set (id %q, timestamp %q, signature %q)", id, ts, sig)
			case !slices.Contains(strings.Fields(sig), std):
				t.Fatalf("accepted webhook-signature %q that lacks %q", sig, std)
			case mac != "" && !fitOK && cts != ts:
				t.Fatalf("passed over callback-authentication %q with timestamp %q beside webhook-timestamp %q", mac, cts, ts)
			}
			return
		}
		var ve *VerifyError
		if !errors.As(err, &ve) {
			t.Fatalf("error %v is not a *VerifyError", err)
		}
		for _, s := range []error{ErrMissingHeader, ErrMalformedHeader, ErrTimestampOutOfTolerance, ErrSignatureMismatch} {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error %v wraps no documented sentinel", err)
	})
}

// FuzzSecrets: a secret comes from operator configuration; parsing must not panic and
// errors must never quote it.
func FuzzSecrets(f *testing.F) {
	f.Add(fuzzSecret)
	f.Add(fuzzSecret + " " + fuzzSecret)
	f.Add("whsec_")
	f.Add("whsec_====")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		ss, err := parseSecrets(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSecret) {
				t.Fatalf("error %v does not wrap ErrInvalidSecret", err)
			}
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error quotes the secret: %v", err)
			}
			return
		}
		for _, x := range ss {
			if len(x.key) < MinKeyBytes || len(x.key) > MaxKeyBytes {
				t.Fatalf("accepted a %d-byte key", len(x.key))
			}
		}
	})
}

// FuzzReference: the receiver's answer (body and Location) is outside input that ends
// up in the event log; whatever it is, the reference must be short and printable.
func FuzzReference(f *testing.F) {
	f.Add([]byte(`{"id":"AZ-1"}`), "")
	f.Add([]byte(`{"reference":12.5e3}`), "/x")
	f.Add([]byte(`{"id":{"nested":true}}`), "\x00")
	f.Add([]byte(`[1,2]`), "https://office.example/vorgang/1")
	f.Add([]byte("\xff\xfe"), "")
	f.Fuzz(func(t *testing.T, body []byte, location string) {
		h := http.Header{}
		h["Location"] = []string{location}
		r := reference(h, body)
		if len(r) > maxReferenceLen {
			t.Fatalf("reference of %d bytes", len(r))
		}
		for _, c := range r {
			if !unicode.IsPrint(c) {
				t.Fatalf("unprintable %q in reference", c)
			}
		}
		_ = snippet(body, nil)
	})
}
