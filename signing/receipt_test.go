package signing_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

func sampleReceipts() []signing.Receipt {
	base := signing.Receipt{
		Kind:          signing.KindEingang,
		SubmissionID:  "sub-0001",
		MessageID:     "0b7e6f0c-5a5e-4c1e-9d55-000000000001",
		Sender:        "amt24",
		LeikaKey:      "99123456789012",
		OfficeID:      "sn-dresden-buergeramt",
		OfficeName:    "Bürgeramt Dresden & Umland",
		GatewayID:     "gw-test",
		Time:          time.Date(2026, 11, 28, 12, 0, 0, 123000000, time.UTC),
		PackageSHA256: strings.Repeat("ab", 32),
	}
	withChannel := base
	withChannel.SubmissionID = "sub-0002"
	withChannel.Channel = "mailbox" // the Eingangsbestaetigung names the planned channel
	z := base
	z.Kind = signing.KindZustellung
	z.DeliveryID = "dlv-42"
	z.Channel = "webhook"
	z.Receiver = "https://fachverfahren.example/hook"
	return []signing.Receipt{base, withChannel, z}
}

func TestReceiptRoundTrip(t *testing.T) {
	pki := signingtest.NewPKI(t)
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	dir := t.TempDir()
	for _, r := range sampleReceipts() {
		t.Run(string(r.Kind)+"/"+r.SubmissionID+r.Channel, func(t *testing.T) {
			signed, err := pki.Gateway.Signer.SignReceipt(r)
			if err != nil {
				t.Fatal(err)
			}
			res, err := v.Verify(signed, signing.RoleGateway)
			if err != nil {
				t.Fatal(err)
			}
			got, err := signing.ParseReceipt(res.Root)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Time.Equal(r.Time) {
				t.Errorf("time %v != %v", got.Time, r.Time)
			}
			got.Time = r.Time
			if !reflect.DeepEqual(got, r) {
				t.Errorf("parsed %+v\nwant   %+v", got, r)
			}

			// Offline verification with a trust store and with just the gateway certificate.
			for name, ts := range map[string]*signing.TrustStore{"store": pki.Store, "pem": mustPEMStore(t, pki.Gateway.CertFile)} {
				rep, err := signing.VerifyOffline(signed, ts, signing.VerifyOptions{})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if rep.Receipt == nil || rep.Kind != string(r.Kind) || rep.Signer.ID != "gw-test" {
					t.Fatalf("%s: report %+v", name, rep)
				}
				if !strings.Contains(rep.Statement, "the gateway gw-test") || !strings.Contains(rep.Statement, r.PackageSHA256) {
					t.Errorf("%s: statement %q", name, rep.Statement)
				}
			}

			// Third-party checks: xmlsec1 verifies the signature, xmllint the schema.
			needTool(t, "xmlsec1", "apt-get install xmlsec1")
			needTool(t, "xmllint", "apt-get install libxml2-utils")
			f := filepath.Join(dir, string(r.Kind)+".xml")
			if err := os.WriteFile(f, signed, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runTool(t, "xmlsec1", "--verify", "--trusted-pem", pki.CAFile,
				"--id-attr:ID", signing.NamespaceReceipt+":"+string(r.Kind), f)
			if err != nil || !strings.HasPrefix(out, "OK") {
				t.Fatalf("xmlsec1 rejects the receipt: %v\n%s", err, out)
			}
			out, err = runTool(t, "xmllint", "--noout", "--schema", "signing/quittung-v1.xsd", f)
			if err != nil {
				t.Fatalf("receipt does not match quittung-v1.xsd: %v\n%s", err, out)
			}
		})
	}
}

func mustPEMStore(t *testing.T, certFile string) *signing.TrustStore {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := signing.TrustStoreFromPEM(signing.RoleGateway, b)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestReceiptRejects(t *testing.T) {
	good := sampleReceipts()[0]
	for _, tc := range []struct {
		name string
		mod  func(r *signing.Receipt)
	}{
		{"unknown-kind", func(r *signing.Receipt) { r.Kind = "Quittung" }},
		{"no-submission", func(r *signing.Receipt) { r.SubmissionID = "" }},
		{"bad-sha", func(r *signing.Receipt) { r.PackageSHA256 = "ABC" }},
		{"zero-time", func(r *signing.Receipt) { r.Time = time.Time{} }},
		{"zustellung-without-delivery", func(r *signing.Receipt) { r.Kind = signing.KindZustellung }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.mod(&r)
			if _, err := signing.ReceiptElement(r); !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	el, err := signing.ReceiptElement(good)
	if err != nil {
		t.Fatal(err)
	}
	el.CreateElement("Extra").SetText("x")
	if _, err := signing.ParseReceipt(el); !errors.Is(err, signing.ErrMalformed) {
		t.Fatalf("unknown element: %v", err)
	}
	other := etree.NewElement("Eingangsbestaetigung")
	if _, err := signing.ParseReceipt(other); !errors.Is(err, signing.ErrMalformed) {
		t.Fatalf("no namespace: %v", err)
	}
}

func TestVerifyOfflineAntragspaket(t *testing.T) {
	pki := signingtest.NewPKI(t)
	signed, err := pki.Portal.Signer.Sign(signingtest.SampleDocument("antrag-7", 3, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := signing.VerifyOffline(signed, pki.Store, signing.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Receipt != nil || rep.Kind != "Antragspaket" || rep.RootID != "antrag-7" || rep.Signer.ID != "amt24" || rep.Signer.Role != signing.RolePortal {
		t.Fatalf("report %+v", rep)
	}
	if _, err := signing.VerifyOffline(signed, mustPEMStore(t, pki.Gateway.CertFile), signing.VerifyOptions{}); !errors.Is(err, signing.ErrUntrustedSigner) {
		t.Fatalf("portal package against gateway cert only: %v", err)
	}
	// A portal may not issue receipts: its certificate is not a gateway's.
	forged, err := pki.Portal.Signer.SignReceipt(sampleReceipts()[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signing.VerifyOffline(forged, pki.Store, signing.VerifyOptions{}); !errors.Is(err, signing.ErrUntrustedSigner) {
		t.Fatalf("receipt signed by a portal: %v", err)
	}
}
