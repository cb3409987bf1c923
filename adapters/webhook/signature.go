package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names. Go canonicalises them on the wire; receivers match case-insensitively.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
	HeaderCallbackAuth     = "callback-authentication"
	HeaderCallbackTime     = "callback-timestamp"
)

// SecretPrefix marks a Standard Webhooks secret: "whsec_" followed by the base64 key.
const SecretPrefix = "whsec_"

// Key length bounds in bytes. Standard Webhooks recommends 24 to 64 bytes; FIT-Connect
// demands a callback secret of 32 to 512 characters, which "whsec_" plus the base64 of
// 24 bytes (38 characters) already satisfies.
const (
	MinKeyBytes = 24
	MaxKeyBytes = 64
)

// DefaultTolerance is how far a timestamp may be from the receiver's clock, as both
// Standard Webhooks and FIT-Connect require (5 minutes).
const DefaultTolerance = 5 * time.Minute

// maxSignatures bounds the work a hostile webhook-signature header can cause.
const maxSignatures = 16

// Errors of Verify and of secret parsing. They never carry header values or secrets.
var (
	ErrInvalidSecret           = errors.New("webhook: invalid secret")
	ErrMissingHeader           = errors.New("webhook: missing header")
	ErrMalformedHeader         = errors.New("webhook: malformed header")
	ErrTimestampOutOfTolerance = errors.New("webhook: timestamp outside tolerance")
	ErrSignatureMismatch       = errors.New("webhook: no matching signature")
)

// VerifyError tells which header failed verification; Err is one of the sentinels.
type VerifyError struct {
	Header string // one of the Header* constants
	Err    error
}

func (e *VerifyError) Error() string { return e.Err.Error() + " (" + e.Header + ")" }
func (e *VerifyError) Unwrap() error { return e.Err }

// secret is one configured secret: the string as configured (FIT-Connect HMAC key)
// and the decoded Standard Webhooks key.
type secret struct {
	raw string
	key []byte
}

// parseSecrets reads one or more whitespace-separated "whsec_" secrets, newest first.
// Errors name the position only, never the value.
func parseSecrets(s string) ([]secret, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	if len(fields) > maxSignatures {
		return nil, fmt.Errorf("%w: more than %d secrets", ErrInvalidSecret, maxSignatures)
	}
	out := make([]secret, 0, len(fields))
	for i, f := range fields {
		b64, ok := strings.CutPrefix(f, SecretPrefix)
		if !ok {
			return nil, fmt.Errorf("%w: secret %d lacks the %q prefix", ErrInvalidSecret, i+1, SecretPrefix)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			// Secrets generated elsewhere sometimes drop the padding.
			key, err = base64.RawStdEncoding.DecodeString(b64)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: secret %d is not base64", ErrInvalidSecret, i+1)
		}
		if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
			return nil, fmt.Errorf("%w: secret %d has %d key bytes, want %d to %d", ErrInvalidSecret, i+1, len(key), MinKeyBytes, MaxKeyBytes)
		}
		out = append(out, secret{raw: f, key: key})
	}
	return out, nil
}

// ValidateSecret reports whether s is usable as a Target.Secret (or as the secret
// argument of Verify).
func ValidateSecret(s string) error {
	_, err := parseSecrets(s)
	return err
}

// NewSecret returns a fresh secret of 32 random bytes in the "whsec_" format.
func NewSecret() string {
	var b [32]byte
	// crypto/rand.Read never returns an error since Go 1.24 (it aborts instead).
	_, _ = rand.Read(b[:])
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// standardSignature is the Standard Webhooks v1 signature (without the "v1," prefix).
func standardSignature(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// fitConnectMAC is FIT-Connect's callback-authentication MAC. The key is the secret
// string exactly as configured (FIT-Connect treats the callback secret as an opaque
// string and HMACs with its bytes), so a receiver can paste the same string into a
// FIT-Connect SDK and into a Standard Webhooks library.
func fitConnectMAC(raw, ts string, body []byte) []byte {
	m := hmac.New(sha512.New, []byte(raw))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// sign sets both header sets on h. Standard Webhooks gets one v1 signature per secret
// (receivers accept any, which is how a sender-side key rotation overlaps).
// FIT-Connect's header is single-valued (its receivers compare one MAC), so it uses
// one secret: the last (oldest), the one every receiver held before the rotation
// began. With the newest, adding a secret at the sender broke every receiver that
// checks callback-authentication alone at once; now the sender's change alone
// breaks nobody, and such a receiver moves when the sender drops the old secret
// (or accepts both meanwhile).
func sign(h http.Header, secrets []secret, id string, at time.Time, body []byte) {
	ts := strconv.FormatInt(at.Unix(), 10)
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(standardSignature(s.key, id, ts, body))
	}
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, ts)
	h.Set(HeaderWebhookSignature, strings.Join(sigs, " "))
	h.Set(HeaderCallbackAuth, hex.EncodeToString(fitConnectMAC(secrets[len(secrets)-1].raw, ts, body)))
	h.Set(HeaderCallbackTime, ts)
}

// Sign sets both signature header sets on h for body, as the channel signs its
// notifications: for another sender of FIT-Connect-style callbacks (the portals'
// new-events callback). secret is as for a Target; id names the message
// (webhook-id), at its time.
func Sign(h http.Header, secret, id string, at time.Time, body []byte) error {
	secrets, err := parseSecrets(secret)
	if err != nil {
		return err
	}
	sign(h, secrets, id, at, body)
	return nil
}

// Verify checks a received notification against secret: the Standard Webhooks
// set (webhook-*) must match body under one of the secrets with its timestamp
// within tolerance of now (DefaultTolerance if tolerance <= 0); the FIT-Connect
// set (callback-*) must be absent as a whole, verify too, or fail only because
// its single MAC is keyed with a secret the receiver does not hold (a sender
// rotating keys; its timestamp must then equal the verified webhook-timestamp).
// The sender signs webhook-signature with every secret it has, so a rotation
// never makes that set fail, and only its MAC covers webhook-id, by which a
// receiver recognises a replay: a notification with the FIT-Connect set alone is
// refused — accepted, a captured one could be sent again within the tolerance
// with its webhook-* headers stripped, past a receiver's webhook-id check (a
// review, 2026-12-05). (Receivers that check only callback-authentication, as
// FIT-Connect SDKs do, read that set themselves.)
//
// secret may hold several whitespace-separated "whsec_" secrets, so a receiver can
// accept the old and the new one while the sender rotates. Comparisons are constant
// time. Errors are *VerifyError wrapping one of the sentinels, or ErrInvalidSecret.
func Verify(h http.Header, body []byte, secret string, now time.Time, tolerance time.Duration) error {
	secrets, err := parseSecrets(secret)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	stdErr := verifyStandard(h, body, secrets, now, tolerance)
	if stdErr != nil {
		return stdErr
	}
	fitErr := verifyFITConnect(h, body, secrets, now, tolerance)
	fitAbsent := absent(h, HeaderCallbackAuth, HeaderCallbackTime)
	switch {
	case fitErr == nil || fitAbsent:
		return nil
	case errors.Is(fitErr, ErrSignatureMismatch):
		// The gateway keys its one callback-authentication with one of its secrets
		// (the oldest): during a rotation a receiver holding another one sees it
		// mismatch while webhook-signature, carrying all of them, verifies. The
		// set is passed over only with the timestamp the verified set vouches for,
		// so no header Verify accepted says anything unauthenticated.
		wts, _ := header(h, HeaderWebhookTimestamp)
		cts, _ := header(h, HeaderCallbackTime)
		if cts == wts {
			return nil
		}
		return fitErr
	default:
		return fitErr
	}
}

// absent reports whether none of the headers is in h (in any spelling), i.e. the
// sender did not send that header set at all.
func absent(h http.Header, names ...string) bool {
	for k := range h {
		for _, n := range names {
			if strings.EqualFold(k, n) {
				return false
			}
		}
	}
	return true
}

func header(h http.Header, name string) (string, error) {
	vs := h.Values(name)
	if len(vs) == 0 {
		// A header map built by hand (not by net/http) may hold non-canonical keys.
		for k, v := range h {
			if strings.EqualFold(k, name) {
				vs = append(vs, v...)
			}
		}
	}
	if len(vs) == 0 || vs[0] == "" {
		return "", &VerifyError{Header: name, Err: ErrMissingHeader}
	}
	if len(vs) > 1 {
		// Two values leave it open which one a proxy or the signer meant.
		return "", &VerifyError{Header: name, Err: ErrMalformedHeader}
	}
	return vs[0], nil
}

// checkTimestamp parses unix seconds strictly (digits only, as both schemes send) and
// applies the tolerance in both directions: a timestamp from the future is as much a
// replay risk as an old one.
func checkTimestamp(name, v string, now time.Time, tolerance time.Duration) error {
	if len(v) == 0 || len(v) > 12 {
		return &VerifyError{Header: name, Err: ErrMalformedHeader}
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return &VerifyError{Header: name, Err: ErrMalformedHeader}
		}
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return &VerifyError{Header: name, Err: ErrMalformedHeader}
	}
	d := now.Sub(time.Unix(sec, 0))
	if d > tolerance || d < -tolerance {
		return &VerifyError{Header: name, Err: ErrTimestampOutOfTolerance}
	}
	return nil
}

func verifyStandard(h http.Header, body []byte, secrets []secret, now time.Time, tolerance time.Duration) error {
	id, err := header(h, HeaderWebhookID)
	if err != nil {
		return err
	}
	ts, err := header(h, HeaderWebhookTimestamp)
	if err != nil {
		return err
	}
	sigHeader, err := header(h, HeaderWebhookSignature)
	if err != nil {
		return err
	}
	if err := checkTimestamp(HeaderWebhookTimestamp, ts, now, tolerance); err != nil {
		return err
	}
	want := make([][]byte, len(secrets))
	for i, s := range secrets {
		want[i] = standardSignature(s.key, id, ts, body)
	}
	fields := strings.Fields(sigHeader)
	if len(fields) > maxSignatures {
		return &VerifyError{Header: HeaderWebhookSignature, Err: ErrMalformedHeader}
	}
	matched := 0
	for _, f := range fields {
		version, sig, ok := strings.Cut(f, ",")
		if !ok || version != "v1" {
			// Other versions (e.g. v1a asymmetric) are not ours to judge; the spec says
			// to ignore them.
			continue
		}
		// Strict: a signature with non-zero padding bits ("…KYp=" for "…KYo=")
		// decodes to the same MAC under the lenient decoder, but the reference
		// libraries compare the base64 text and refuse it; so do we (FuzzVerify).
		got, err := base64.StdEncoding.Strict().DecodeString(sig)
		if err != nil {
			continue
		}
		for _, w := range want {
			// Count instead of returning early so the work does not depend on which
			// candidate matched.
			matched += subtle.ConstantTimeCompare(got, w)
		}
	}
	if matched == 0 {
		return &VerifyError{Header: HeaderWebhookSignature, Err: ErrSignatureMismatch}
	}
	return nil
}

func verifyFITConnect(h http.Header, body []byte, secrets []secret, now time.Time, tolerance time.Duration) error {
	mac, err := header(h, HeaderCallbackAuth)
	if err != nil {
		return err
	}
	ts, err := header(h, HeaderCallbackTime)
	if err != nil {
		return err
	}
	if err := checkTimestamp(HeaderCallbackTime, ts, now, tolerance); err != nil {
		return err
	}
	// FIT-Connect specifies lowercase hex; accept uppercase too, it is the same MAC.
	got, err := hex.DecodeString(mac)
	if err != nil || len(got) != sha512.Size {
		return &VerifyError{Header: HeaderCallbackAuth, Err: ErrMalformedHeader}
	}
	matched := 0
	for _, s := range secrets {
		matched += subtle.ConstantTimeCompare(got, fitConnectMAC(s.raw, ts, body))
	}
	if matched == 0 {
		return &VerifyError{Header: HeaderCallbackAuth, Err: ErrSignatureMismatch}
	}
	return nil
}
