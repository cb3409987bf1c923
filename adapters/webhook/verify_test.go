package webhook

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func signedHeader(t testing.TB, secret string, id string, at time.Time, body []byte) http.Header {
	t.Helper()
	ss, err := parseSecrets(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	sign(h, ss, id, at, body)
	return h
}

// The Standard Webhooks reference libraries' published test vector; the npm library
// in tools/node produces the same value.
func TestStandardSignatureKnownAnswer(t *testing.T) {
	ss, err := parseSecrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := base64.StdEncoding.EncodeToString(standardSignature(ss[0].key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", []byte(`{"test": 2432232314}`)))
	if want := "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := NewSecret()
	other := NewSecret()
	now := time.Unix(1_795_000_000, 0)
	body := []byte(`{"type":"` + TypeNewSubmissions + `","deliveryId":"dlv-1"}`)
	good := func() http.Header { return signedHeader(t, secret, "dlv-1", now, body) }

	cases := []struct {
		name    string
		header  func() http.Header
		body    []byte
		secret  string
		now     time.Time
		tol     time.Duration
		wantErr error
		wantHdr string
	}{
		{name: "valid", header: good},
		{name: "valid at edge of default tolerance", header: good, now: now.Add(5 * time.Minute)},
		{name: "valid uppercase fit-connect hex", header: func() http.Header {
			h := good()
			h.Set(HeaderCallbackAuth, strings.ToUpper(h.Get(HeaderCallbackAuth)))
			return h
		}},
		{name: "wrong secret", header: good, secret: other, wantErr: ErrSignatureMismatch, wantHdr: HeaderWebhookSignature},
		{name: "tampered body", header: good, body: []byte(strings.Replace(string(body), "dlv-1", "dlv-2", 1)), wantErr: ErrSignatureMismatch, wantHdr: HeaderWebhookSignature},
		{name: "stale", header: good, now: now.Add(5*time.Minute + time.Second), wantErr: ErrTimestampOutOfTolerance, wantHdr: HeaderWebhookTimestamp},
		{name: "from the future", header: good, now: now.Add(-6 * time.Minute), wantErr: ErrTimestampOutOfTolerance, wantHdr: HeaderWebhookTimestamp},
		{name: "custom tolerance", header: good, now: now.Add(time.Minute), tol: 30 * time.Second, wantErr: ErrTimestampOutOfTolerance, wantHdr: HeaderWebhookTimestamp},
		{name: "other id", header: func() http.Header { h := good(); h.Set(HeaderWebhookID, "dlv-2"); return h }, wantErr: ErrSignatureMismatch, wantHdr: HeaderWebhookSignature},
		{name: "replayed with fresh timestamp", header: func() http.Header {
			h := good()
			h.Set(HeaderWebhookTimestamp, "1795000060")
			return h
		}, wantErr: ErrSignatureMismatch, wantHdr: HeaderWebhookSignature},
		// A callback-authentication that does not match beside a webhook-signature that
		// does is what a receiver holding another of the sender's secrets sees during a
		// rotation; it cannot tell it from a tampered MAC, and need not: the verified
		// set covers body, id and timestamp.
		{name: "fit-connect MAC tampered beside a valid standard set", header: func() http.Header {
			h := good()
			mac := []byte(h.Get(HeaderCallbackAuth))
			if mac[0] == '0' {
				mac[0] = '1'
			} else {
				mac[0] = '0'
			}
			h.Set(HeaderCallbackAuth, string(mac))
			return h
		}},
		{name: "fit-connect MAC not hex", header: func() http.Header { h := good(); h.Set(HeaderCallbackAuth, "zz"); return h }, wantErr: ErrMalformedHeader, wantHdr: HeaderCallbackAuth},
		{name: "fit-connect MAC of other secret beside a valid standard set", header: func() http.Header {
			h := good()
			h.Set(HeaderCallbackAuth, signedHeader(t, other, "dlv-1", now, body).Get(HeaderCallbackAuth))
			return h
		}},
		{name: "fit-connect MAC of other secret and a timestamp of its own", header: func() http.Header {
			h := good()
			o := signedHeader(t, other, "dlv-1", now.Add(time.Second), body)
			h.Set(HeaderCallbackAuth, o.Get(HeaderCallbackAuth))
			h.Set(HeaderCallbackTime, o.Get(HeaderCallbackTime))
			return h
		}, wantErr: ErrSignatureMismatch, wantHdr: HeaderCallbackAuth},
		// Accepted, a captured notification could be sent again with its webhook-*
		// headers stripped, past a receiver's webhook-id check (a review).
		{name: "fit-connect set alone", header: func() http.Header {
			h := good()
			h.Del(HeaderWebhookID)
			h.Del(HeaderWebhookTimestamp)
			h.Del(HeaderWebhookSignature)
			return h
		}, wantErr: ErrMissingHeader, wantHdr: HeaderWebhookID},
		{name: "standard set alone", header: func() http.Header {
			h := good()
			h.Del(HeaderCallbackAuth)
			h.Del(HeaderCallbackTime)
			return h
		}},
		{name: "fit-connect set alone, with a stray webhook-id", header: func() http.Header {
			h := good()
			h.Del(HeaderWebhookTimestamp)
			h.Del(HeaderWebhookSignature)
			return h
		}, wantErr: ErrMissingHeader, wantHdr: HeaderWebhookTimestamp},
		{name: "no headers at all", header: func() http.Header { return http.Header{} }, wantErr: ErrMissingHeader, wantHdr: HeaderWebhookID},
		{name: "fit-connect set stale beside a valid standard set", header: func() http.Header {
			h := good()
			h.Set(HeaderCallbackTime, "1794990000")
			return h
		}, wantErr: ErrTimestampOutOfTolerance, wantHdr: HeaderCallbackTime},
		{name: "fit-connect timestamp moved", header: func() http.Header { h := good(); h.Set(HeaderCallbackTime, "1795000001"); return h }, wantErr: ErrSignatureMismatch, wantHdr: HeaderCallbackAuth},
		{name: "fit-connect stale alone", header: func() http.Header {
			h := good()
			old := signedHeader(t, secret, "dlv-1", now.Add(-time.Hour), body)
			h.Set(HeaderCallbackTime, old.Get(HeaderCallbackTime))
			h.Set(HeaderCallbackAuth, old.Get(HeaderCallbackAuth))
			return h
		}, wantErr: ErrTimestampOutOfTolerance, wantHdr: HeaderCallbackTime},
		{name: "missing webhook-signature", header: func() http.Header { h := good(); h.Del(HeaderWebhookSignature); return h }, wantErr: ErrMissingHeader, wantHdr: HeaderWebhookSignature},
		{name: "missing webhook-id", header: func() http.Header { h := good(); h.Del(HeaderWebhookID); return h }, wantErr: ErrMissingHeader, wantHdr: HeaderWebhookID},
		{name: "missing callback-authentication", header: func() http.Header { h := good(); h.Del(HeaderCallbackAuth); return h }, wantErr: ErrMissingHeader, wantHdr: HeaderCallbackAuth},
		{name: "missing callback-timestamp", header: func() http.Header { h := good(); h.Del(HeaderCallbackTime); return h }, wantErr: ErrMissingHeader, wantHdr: HeaderCallbackTime},
		{name: "timestamp not digits", header: func() http.Header { h := good(); h.Set(HeaderWebhookTimestamp, "+1795000000"); return h }, wantErr: ErrMalformedHeader, wantHdr: HeaderWebhookTimestamp},
		{name: "timestamp huge", header: func() http.Header { h := good(); h.Set(HeaderWebhookTimestamp, "99999999999999999999"); return h }, wantErr: ErrMalformedHeader, wantHdr: HeaderWebhookTimestamp},
		{name: "duplicate header", header: func() http.Header { h := good(); h.Add(HeaderWebhookSignature, "v1,AAAA"); return h }, wantErr: ErrMalformedHeader, wantHdr: HeaderWebhookSignature},
		{name: "only other versions", header: func() http.Header {
			h := good()
			h.Set(HeaderWebhookSignature, strings.Replace(h.Get(HeaderWebhookSignature), "v1,", "v1a,", 1))
			return h
		}, wantErr: ErrSignatureMismatch, wantHdr: HeaderWebhookSignature},
		{name: "unknown version beside valid one", header: func() http.Header {
			h := good()
			h.Set(HeaderWebhookSignature, "v2,Zm9v "+h.Get(HeaderWebhookSignature))
			return h
		}},
		{name: "too many signatures", header: func() http.Header {
			h := good()
			h.Set(HeaderWebhookSignature, strings.Repeat("v1,AAAA ", 40)+h.Get(HeaderWebhookSignature))
			return h
		}, wantErr: ErrMalformedHeader, wantHdr: HeaderWebhookSignature},
		{name: "receiver holds new and old secret", header: good, secret: other + " " + secret},
		{name: "hand-built lowercase header map", header: func() http.Header {
			lower := http.Header{}
			for k, v := range good() {
				lower[strings.ToLower(k)] = v
			}
			return lower
		}},
		{name: "invalid receiver secret", header: good, secret: "geheim", wantErr: ErrInvalidSecret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, s, n := c.body, c.secret, c.now
			if b == nil {
				b = body
			}
			if s == "" {
				s = secret
			}
			if n.IsZero() {
				n = now
			}
			err := Verify(c.header(), b, s, n, c.tol)
			if c.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			var ve *VerifyError
			if c.wantHdr != "" && (!errors.As(err, &ve) || ve.Header != c.wantHdr) {
				t.Errorf("err = %v, want a *VerifyError for header %s", err, c.wantHdr)
			}
			if strings.Contains(err.Error(), strings.TrimPrefix(secret, SecretPrefix)) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

// A sender rotating keys signs with new and old secret; a Standard Webhooks receiver
// still on the old one keeps working, and FIT-Connect's single MAC uses the old
// one. It used the new one, so adding a secret at the sender broke every receiver
// that checks callback-authentication alone (FIT-Connect SDKs) at once.
func TestSenderRotation(t *testing.T) {
	oldS, newS := NewSecret(), NewSecret()
	now := time.Unix(1_795_000_000, 0)
	body := []byte(`{}`)
	h := signedHeader(t, newS+" "+oldS, "dlv-1", now, body)
	if n := len(strings.Fields(h.Get(HeaderWebhookSignature))); n != 2 {
		t.Fatalf("%d signatures, want 2", n)
	}
	if err := verifyStandardOnly(h, body, oldS, now); err != nil {
		t.Errorf("old secret rejected during rotation: %v", err)
	}
	if err := Verify(h, body, newS, now, 0); err != nil {
		t.Errorf("new secret: %v", err)
	}
	want := fitConnectMAC(oldS, h.Get(HeaderCallbackTime), body)
	if h.Get(HeaderCallbackAuth) != hex.EncodeToString(want) {
		t.Error("callback-authentication is not keyed with the last (oldest) secret")
	}
	ss, err := parseSecrets(oldS)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyFITConnect(h, body, ss, now, DefaultTolerance); err != nil {
		t.Errorf("a FIT-Connect-only receiver still on the old secret: %v", err)
	}
	// Three secrets (a rotation begun before the last one ended): still the oldest.
	thirdS := NewSecret()
	h = signedHeader(t, thirdS+" "+newS+"\n"+oldS, "dlv-1", now, body)
	if h.Get(HeaderCallbackAuth) != hex.EncodeToString(fitConnectMAC(oldS, h.Get(HeaderCallbackTime), body)) {
		t.Error("with three secrets, callback-authentication is not keyed with the last one")
	}
}

// TestVerifyThroughSenderFirstRotation: with the sender on "whsec_NEW whsec_OLD",
// Verify accepts for a receiver on either secret. It required both header sets to
// verify, and the single callback-authentication is keyed with one secret only, so
// a Go receiver on the other one refused every notification with 401 (permanent
// at the gateway) and the office's packages left the webhook channel for good.
func TestVerifyThroughSenderFirstRotation(t *testing.T) {
	oldS, newS := NewSecret(), NewSecret()
	now := time.Unix(1_795_000_000, 0)
	body := []byte(`{"type":"` + TypeNewSubmissions + `","deliveryId":"dlv-1"}`)
	h := signedHeader(t, newS+" "+oldS, "dlv-1", now, body)
	for name, s := range map[string]string{"old": oldS, "new": newS, "both": newS + " " + oldS} {
		if err := Verify(h, body, s, now, 0); err != nil {
			t.Errorf("receiver on the %s secret: %v", name, err)
		}
		r, err := http.NewRequest(http.MethodPost, "http://office/cb", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		r.Header = h.Clone()
		if _, _, err := ReadVerified(r, s, now, 0); err != nil {
			t.Errorf("ReadVerified, receiver on the %s secret: %v", name, err)
		}
	}
	// Neither secret of the sender: still refused.
	if err := Verify(h, body, NewSecret(), now, 0); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("receiver on a third secret: err = %v, want ErrSignatureMismatch", err)
	}
}

func verifyStandardOnly(h http.Header, body []byte, secret string, now time.Time) error {
	ss, err := parseSecrets(secret)
	if err != nil {
		return err
	}
	return verifyStandard(h, body, ss, now, DefaultTolerance)
}

func TestParseSecrets(t *testing.T) {
	cases := []struct {
		in string
		ok bool
		n  int
	}{
		{NewSecret(), true, 1},
		{"  " + NewSecret() + "\n" + NewSecret() + " ", true, 2},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true, 1},                                          // 24 bytes
		{"whsec_" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), true, 1},                 // no padding
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23)), false, 0},                   // too short
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), false, 0},                   // too long
		{base64.StdEncoding.EncodeToString(make([]byte, 32)), false, 0},                              // no prefix
		{"whsec_" + base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 32))), false, 0}, // wrong alphabet
		{"", false, 0},
		{strings.Repeat(NewSecret()+" ", maxSignatures+1), false, 0},
	}
	for i, c := range cases {
		ss, err := parseSecrets(c.in)
		if c.ok != (err == nil) || len(ss) != c.n {
			t.Errorf("case %d: %d secrets, err %v; want ok=%v n=%d", i, len(ss), err, c.ok, c.n)
		}
		if err != nil && !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("case %d: err %v does not wrap ErrInvalidSecret", i, err)
		}
		if err == nil && ValidateSecret(c.in) != nil {
			t.Errorf("case %d: ValidateSecret disagrees", i)
		}
	}
	if a, b := NewSecret(), NewSecret(); a == b {
		t.Error("NewSecret repeats itself")
	}
}

func TestReadVerified(t *testing.T) {
	secret := NewSecret()
	now := time.Now()
	body := []byte(`{"type":"` + TypeNewSubmissions + `","deliveryId":"dlv-1","submissionId":"s1","links":{"package":"p"}}`)
	req := func(h http.Header, b []byte) *http.Request {
		r, err := http.NewRequest(http.MethodPost, "http://office/cb", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		r.Header = h
		return r
	}
	n, raw, err := ReadVerified(req(signedHeader(t, secret, "dlv-1", now, body), body), secret, now, 0)
	if err != nil || n.DeliveryID != "dlv-1" || n.Links.Package != "p" || string(raw) != string(body) {
		t.Fatalf("n=%+v err=%v", n, err)
	}
	other := []byte(`{"type":"https://example.org/other"}`)
	if _, _, err := ReadVerified(req(signedHeader(t, secret, "x", now, other), other), secret, now, 0); !errors.Is(err, ErrWrongType) {
		t.Errorf("other type: err = %v, want ErrWrongType", err)
	}
	notJSON := []byte(`not json`)
	if _, _, err := ReadVerified(req(signedHeader(t, secret, "x", now, notJSON), notJSON), secret, now, 0); err == nil {
		t.Error("a signed non-JSON body was accepted")
	}
	big := make([]byte, MaxNotificationBytes+1)
	if _, _, err := ReadVerified(req(signedHeader(t, secret, "x", now, big), big), secret, now, 0); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("big body: err = %v, want ErrBodyTooLarge", err)
	}
	var ve *VerifyError
	if _, _, err := ReadVerified(req(http.Header{}, body), secret, now, 0); !errors.As(err, &ve) {
		t.Errorf("unsigned: err = %v, want *VerifyError", err)
	}
}

// FIT-Connect's MAC for the same vector, computed independently with
// `openssl dgst -sha512 -hmac "$SECRET"` and with Node's crypto.
func TestFITConnectMACKnownAnswer(t *testing.T) {
	got := hex.EncodeToString(fitConnectMAC("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "1614265330", []byte(`{"test": 2432232314}`)))
	want := "037a88c5c0758227406cbbc89e5ac7194b17029d0db94d41475937db9f96c0c5337655b528d4cef344d6e11a924a35c214c3b64ac2cdf689cb91075089a0bc0c"
	if got != want {
		t.Errorf("MAC %s, want %s", got, want)
	}
}
