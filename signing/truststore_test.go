package signing_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/signing/signingtest"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTrustStoreReloadAddRevoke(t *testing.T) {
	pki := signingtest.NewPKI(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "portals", "ca.pem"), signing.CertPEM(pki.CA))
	ts, err := signing.LoadTrustStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	v := signing.NewVerifier(ts, signing.VerifyOptions{})
	doc := signingtest.SampleDocument("ts-1", 5, 0, 0)
	sign := func(p *signingtest.Party) []byte {
		b, err := p.Signer.Sign(doc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	byPortal, byPinned, byRevoked := sign(pki.Portal), sign(pki.Pinned), sign(pki.Revoked)
	check := func(step string, doc []byte, want error, roles ...signing.Role) {
		t.Helper()
		_, err := v.Verify(doc, roles...)
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("%s: err = %v, want %v", step, err, want)
		}
	}

	check("CA-issued portal", byPortal, nil, signing.RolePortal)
	check("portal cert as peer", byPortal, signing.ErrUntrustedSigner, signing.RolePeer)
	check("pinned not yet present", byPinned, signing.ErrUntrustedSigner)
	check("revoked before CRL", byRevoked, nil)

	// New files become effective on Reload, without restart.
	writeFile(t, filepath.Join(dir, "portals", "pinned.pem"), signing.CertPEM(pki.Pinned.Cert))
	check("pinned before reload", byPinned, signing.ErrUntrustedSigner)
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	check("pinned after reload", byPinned, nil, signing.RolePortal)

	// A broken file keeps the old state.
	writeFile(t, filepath.Join(dir, "portals", "broken.pem"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	if err := ts.Reload(); !errors.Is(err, signing.ErrTrustConfig) {
		t.Fatalf("Reload with a broken file: %v", err)
	}
	check("pinned kept after failed reload", byPinned, nil)
	if err := os.Remove(filepath.Join(dir, "portals", "broken.pem")); err != nil {
		t.Fatal(err)
	}

	// A CRL signed by a CA we do not trust is refused as a whole.
	writeFile(t, filepath.Join(dir, "crl", "foreign.pem"), []byte("not a crl"))
	if err := ts.Reload(); !errors.Is(err, signing.ErrTrustConfig) {
		t.Fatalf("Reload with a broken CRL: %v", err)
	}
	crl, err := os.ReadFile(filepath.Join(pki.TrustDir, "crl", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "crl", "foreign.pem"), crl)
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	check("revoked by CRL", byRevoked, signing.ErrUntrustedSigner)

	// Programmatic revocation and addition survive Reload.
	if err := ts.Revoke(pki.Pinned.Cert); err != nil {
		t.Fatal(err)
	}
	check("pinned revoked", byPinned, signing.ErrUntrustedSigner)
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	check("pinned still revoked after reload", byPinned, signing.ErrUntrustedSigner)
	if err := ts.Add(signing.RoleOffice, pki.Gateway.Cert); err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(sign(pki.Gateway), signing.RoleOffice)
	if err != nil || res.Signer.Role != signing.RoleOffice || res.Signer.ID != "gw-test" {
		t.Fatalf("added office cert: %+v %v", res, err)
	}
	if err := ts.Add("mayor", pki.Gateway.Cert); !errors.Is(err, signing.ErrTrustConfig) {
		t.Fatalf("unknown role: %v", err)
	}
	if _, err := signing.LoadTrustStore(filepath.Join(dir, "missing")); !errors.Is(err, signing.ErrTrustConfig) {
		t.Fatalf("missing dir: %v", err)
	}
}

// Verify runs concurrently with Reload, Add and Revoke (run with -race).
func TestTrustStoreConcurrent(t *testing.T) {
	pki := signingtest.NewPKI(t)
	v := signing.NewVerifier(pki.Store, signing.VerifyOptions{})
	signed, err := pki.Portal.Signer.Sign(signingtest.SampleDocument("c-1", 10, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				if _, err := v.Verify(signed, signing.RolePortal); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		if err := pki.Store.Reload(); err != nil {
			t.Fatal(err)
		}
		if err := pki.Store.Add(signing.RolePeer, pki.OtherPortal.Cert); err != nil {
			t.Fatal(err)
		}
	}
	if err := pki.Store.Revoke(pki.Untrusted.Cert); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestEnsureDevPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	p, err := signing.EnsureDevPKI(dir, "gw-dev")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Created {
		t.Fatal("first call: Created = false")
	}
	for _, k := range []string{p.CAKey, p.GatewayKey, p.PortalKey} {
		st, err := os.Stat(k)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", k, st.Mode().Perm())
		}
	}
	gw, err := signing.LoadSigner(p.GatewayKey, p.GatewayCert)
	if err != nil {
		t.Fatal(err)
	}
	if gw.Certificate().Subject.CommonName != "gw-dev" {
		t.Fatalf("gateway CN %q", gw.Certificate().Subject.CommonName)
	}
	portal, err := signing.LoadSigner(p.PortalKey, p.PortalCert)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := signing.LoadTrustStore(p.TrustDir)
	if err != nil {
		t.Fatal(err)
	}
	v := signing.NewVerifier(ts, signing.VerifyOptions{})
	signed, err := portal.Sign(signingtest.SampleDocument("dev-1", 3, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(signed, signing.RolePortal)
	if err != nil || res.Signer.ID != signing.DevPortalID {
		t.Fatalf("dev portal package: %+v %v", res, err)
	}
	r := sampleReceipts()[0]
	r.GatewayID = "gw-dev"
	receipt, err := gw.SignReceipt(r)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := signing.VerifyOffline(receipt, ts, signing.VerifyOptions{}); err != nil || rep.Signer.Role != signing.RoleGateway {
		t.Fatalf("dev receipt offline: %+v %v", rep, err)
	}

	// gateway.pem carries leaf + CA; trusting "just the gateway certificate" must not
	// make the dev CA's portal certificate a receipt signer.
	gwPEM, err := os.ReadFile(p.GatewayCert)
	if err != nil {
		t.Fatal(err)
	}
	gwOnly, err := signing.TrustStoreFromPEM(signing.RoleGateway, gwPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signing.VerifyOffline(receipt, gwOnly, signing.VerifyOptions{}); err != nil {
		t.Fatalf("receipt against gateway.pem: %v", err)
	}
	forged, err := portal.SignReceipt(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signing.VerifyOffline(forged, gwOnly, signing.VerifyOptions{}); !errors.Is(err, signing.ErrUntrustedSigner) {
		t.Fatalf("portal-signed receipt against gateway.pem: %v", err)
	}

	again, err := signing.EnsureDevPKI(dir, "gw-dev")
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.GatewayCert != p.GatewayCert {
		t.Fatalf("second call: %+v", again)
	}
	gw2, err := signing.LoadSigner(again.GatewayKey, again.GatewayCert)
	if err != nil || !gw2.Certificate().Equal(gw.Certificate()) {
		t.Fatalf("second call changed the gateway certificate: %v", err)
	}
	if _, err := signing.EnsureDevPKI(dir, "other-gw"); !errors.Is(err, signing.ErrSignerConfig) {
		t.Fatalf("other gateway id: %v", err)
	}
}

func TestTrustStoreSelfSignedCAAndCAKey(t *testing.T) {
	pki := signingtest.NewPKI(t)
	doc := signingtest.SampleDocument("ca-1", 3, 0, 0)
	// The CA key itself may not sign packages (no digitalSignature, and a CA).
	caSigner, err := signing.NewSigner(pki.CAKey, []*x509.Certificate{pki.CA})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := caSigner.Sign(doc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signing.NewVerifier(pki.Store, signing.VerifyOptions{}).Verify(signed); !errors.Is(err, signing.ErrUntrustedSigner) {
		t.Fatalf("signed by the CA key: %v", err)
	}

	// A self-signed CA:TRUE certificate with digitalSignature (what `openssl req
	// -x509 -addext keyUsage=digitalSignature,keyCertSign` makes) can be pinned.
	cert, key := signingtest.Certify(t, &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "openssl-portal"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}, nil, nil)
	s, err := signing.NewSigner(key, []*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	signed, err = s.Sign(doc)
	if err != nil {
		t.Fatal(err)
	}
	ts := signing.NewTrustStore()
	v := signing.NewVerifier(ts, signing.VerifyOptions{})
	if _, err := v.Verify(signed); !errors.Is(err, signing.ErrUntrustedSigner) {
		t.Fatalf("before Add: %v", err)
	}
	if err := ts.Add(signing.RolePortal, cert); err != nil {
		t.Fatal(err)
	}
	if res, err := v.Verify(signed); err != nil || res.Signer.ID != "openssl-portal" {
		t.Fatalf("pinned self-signed CA:TRUE: %+v %v", res, err)
	}
}

// TestGatewayPEMKeepsEarlierKeys: after the gateway's receipt key is rotated, a
// portal trusts one file with the new and the old gateway certificate (each as
// gateway.pem has it: leaf, then CA). Receipts of both keys verify against it, and
// the CAs in the file still make no portal certificate a receipt signer.
func TestGatewayPEMKeepsEarlierKeys(t *testing.T) {
	type gen struct {
		gateway, portal *signing.Signer
		pem             []byte
	}
	load := func() gen {
		p, err := signing.EnsureDevPKI(t.TempDir(), "gw-dev")
		if err != nil {
			t.Fatal(err)
		}
		gw, err := signing.LoadSigner(p.GatewayKey, p.GatewayCert)
		if err != nil {
			t.Fatal(err)
		}
		portal, err := signing.LoadSigner(p.PortalKey, p.PortalCert)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p.GatewayCert)
		if err != nil {
			t.Fatal(err)
		}
		return gen{gw, portal, b}
	}
	old, cur := load(), load()
	ts, err := signing.TrustStoreFromPEM(signing.RoleGateway, append(append([]byte(nil), cur.pem...), old.pem...))
	if err != nil {
		t.Fatal(err)
	}
	r := sampleReceipts()[0]
	r.GatewayID = "gw-dev"
	for name, s := range map[string]*signing.Signer{"new key": cur.gateway, "old key": old.gateway} {
		receipt, err := s.SignReceipt(r)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := signing.VerifyOffline(receipt, ts, signing.VerifyOptions{}); err != nil || rep.Signer.Role != signing.RoleGateway {
			t.Errorf("receipt of the %s against new+old gateway.pem: %+v %v", name, rep, err)
		}
	}
	for name, s := range map[string]*signing.Signer{"new CA's portal": cur.portal, "old CA's portal": old.portal} {
		forged, err := s.SignReceipt(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := signing.VerifyOffline(forged, ts, signing.VerifyOptions{}); !errors.Is(err, signing.ErrUntrustedSigner) {
			t.Errorf("receipt signed by the %s: %v, want ErrUntrustedSigner", name, err)
		}
	}
}

// TestTrustStorePrepareCommit: Prepare reads and checks the directory but changes
// nothing until Commit, so the gateway can put the trust store in force together
// with its directory, or neither (a reload once swapped the directory although
// the trust store was bad). A Commit after Add would drop the added certificate
// and is refused.
func TestTrustStorePrepareCommit(t *testing.T) {
	pki := signingtest.NewPKI(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "portals", "ca.pem"), signing.CertPEM(pki.CA))
	ts, err := signing.LoadTrustStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	v := signing.NewVerifier(ts, signing.VerifyOptions{})
	byPinned, err := pki.Pinned.Signer.Sign(signingtest.SampleDocument("ts-2", 1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	trusted := func() bool { _, err := v.Verify(byPinned, signing.RolePortal); return err == nil }

	writeFile(t, filepath.Join(dir, "portals", "pinned.pem"), signing.CertPEM(pki.Pinned.Cert))
	u, err := ts.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if trusted() {
		t.Fatal("Prepare put the new certificate in force")
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if !trusted() {
		t.Fatal("Commit did not put the new certificate in force")
	}

	writeFile(t, filepath.Join(dir, "portals", "broken.pem"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	if _, err := ts.Prepare(); !errors.Is(err, signing.ErrTrustConfig) {
		t.Fatalf("Prepare of a broken directory: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "portals", "broken.pem")); err != nil {
		t.Fatal(err)
	}

	u, err = ts.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Add(signing.RolePeer, pki.Gateway.Cert); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); !errors.Is(err, signing.ErrTrustChanged) {
		t.Fatalf("Commit after Add: %v, want ErrTrustChanged", err)
	}
	if r, p := ts.Count(signing.RolePeer); r+p == 0 {
		t.Fatal("the refused Commit dropped the added certificate")
	}
}

// TestTrustStoreEarliestEndSkipsEnded: the docs keep a retired gateway
// certificate in gateways/ (old receipts verify against it) and an expired peer's
// in peers/; counting it pinned a role's earliest end in the past, so the expiry
// alert fired for good and hid the certificate that really ends next.
func TestTrustStoreEarliestEndSkipsEnded(t *testing.T) {
	pki := signingtest.NewPKI(t)
	now := time.Now()
	_, retired := signingtest.SelfSigned(t, "gw-test", now.AddDate(-2, 0, 0), now.AddDate(0, 0, -1))
	writeFile(t, filepath.Join(pki.TrustDir, "gateways", "gateway-2024.pem"), signing.CertPEM(retired))
	_, gone := signingtest.SelfSigned(t, "gone-peer", now.AddDate(-2, 0, 0), now.AddDate(0, -1, 0))
	writeFile(t, filepath.Join(pki.TrustDir, "peers", "gone-peer.pem"), signing.CertPEM(gone))
	ts, err := signing.LoadTrustStore(pki.TrustDir)
	if err != nil {
		t.Fatal(err)
	}
	ends := ts.EarliestEnd(now)
	if got, want := ends[signing.RoleGateway], pki.Gateway.Cert.NotAfter; !got.Equal(want) {
		t.Errorf("gateways: earliest end %s, want the certificate in use's %s (not the retired one's %s)",
			got.Format(time.RFC3339), want.Format(time.RFC3339), retired.NotAfter.Format(time.RFC3339))
	}
	if got, ok := ends[signing.RolePeer]; ok {
		t.Errorf("peers: earliest end %s, want none (its only certificate has ended)", got.Format(time.RFC3339))
	}
	ended := ts.Ended(now)
	if n, ok := ended[signing.RolePortal]; ended[signing.RoleGateway] != 1 || ended[signing.RolePeer] != 1 || !ok || n != 0 {
		t.Errorf("ended certificates per role: %v, want gateways 1, peers 1, portals 0", ended)
	}
	// As of a time before the retired certificate ended, it is the earliest again.
	if got := ts.EarliestEnd(retired.NotAfter.Add(-time.Hour))[signing.RoleGateway]; !got.Equal(retired.NotAfter) {
		t.Errorf("gateways as of before the retirement: %s, want %s", got, retired.NotAfter)
	}
}

// TestGatewayPEMKeepsSelfSignedEarlierCert: docs/signing.md's rotation file
// (`cat gateway-new.pem gateway-old.pem`) with an old gateway certificate made by
// `openssl req -x509` (self-signed, CA:TRUE, digitalSignature). The file's mode
// was decided by its first block: after the new CA-issued leaf the old
// certificate was skipped as a chain CA (its receipts: untrusted signer), before
// it the whole file was refused as "mixes CA certificates into a CA list".
func TestGatewayPEMKeepsSelfSignedEarlierCert(t *testing.T) {
	pki := signingtest.NewPKI(t)
	now := time.Now()
	oldCert, key := signingtest.Certify(t, &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: pki.Gateway.Name},
		NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}, nil, nil)
	oldSigner, err := signing.NewSigner(key, []*x509.Certificate{oldCert})
	if err != nil {
		t.Fatal(err)
	}
	r := sampleReceipts()[0]
	r.GatewayID = pki.Gateway.Name
	receipts := map[string][]byte{}
	for name, s := range map[string]*signing.Signer{"old self-signed key": oldSigner, "new CA-issued key": pki.Gateway.Signer} {
		if receipts[name], err = s.SignReceipt(r); err != nil {
			t.Fatal(err)
		}
	}
	forged, err := pki.Portal.Signer.SignReceipt(r)
	if err != nil {
		t.Fatal(err)
	}
	newPEM := append(signing.CertPEM(pki.Gateway.Cert), signing.CertPEM(pki.CA)...) // leaf, then its CA
	oldPEM := signing.CertPEM(oldCert)
	for order, data := range map[string][]byte{
		"new+old": append(append([]byte(nil), newPEM...), oldPEM...),
		"old+new": append(append([]byte(nil), oldPEM...), newPEM...),
	} {
		ts, err := signing.TrustStoreFromPEM(signing.RoleGateway, data)
		if err != nil {
			t.Errorf("%s: %v", order, err)
			continue
		}
		for name, receipt := range receipts {
			if rep, err := signing.VerifyOffline(receipt, ts, signing.VerifyOptions{}); err != nil || rep.Signer.Role != signing.RoleGateway {
				t.Errorf("%s: receipt of the %s: %+v %v", order, name, rep, err)
			}
		}
		// The new leaf's CA stays a chain certificate: what it issued signs no receipt.
		if _, err := signing.VerifyOffline(forged, ts, signing.VerifyOptions{}); !errors.Is(err, signing.ErrUntrustedSigner) {
			t.Errorf("%s: receipt signed by a portal certificate of the CA: %v, want ErrUntrustedSigner", order, err)
		}
	}
}

// TestTrustStoreReadsACRLAsTheCAPublishesIt: crl/ was read from *.pem files
// only, so a CRL saved as its CA publishes it (ca.crl, DER) was passed over in
// silence: the reload said "reloaded" and the certificate it revokes — a peer
// gateway's, a portal's — stayed trusted. Now *.crl and *.der are read, DER or
// PEM; one that is no CRL is refused as a broken *.pem is.
func TestTrustStoreReadsACRLAsTheCAPublishesIt(t *testing.T) {
	pki := signingtest.NewPKI(t)
	crlPEM, err := os.ReadFile(filepath.Join(pki.TrustDir, "crl", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(crlPEM)
	if block == nil {
		t.Fatal("the test PKI's CRL is no PEM")
	}
	byRevoked, err := pki.Revoked.Signer.Sign(signingtest.SampleDocument("crl-1", 3, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
	}{{"ca.crl", block.Bytes}, {"CA.DER", block.Bytes}, {"ca.crl", crlPEM}} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "portals", "ca.pem"), signing.CertPEM(pki.CA))
		writeFile(t, filepath.Join(dir, "crl", c.name), c.data)
		ts, err := signing.LoadTrustStore(dir)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, err := signing.NewVerifier(ts, signing.VerifyOptions{}).Verify(byRevoked); !errors.Is(err, signing.ErrUntrustedSigner) {
			t.Errorf("%s: a package of the revoked certificate: %v, want ErrUntrustedSigner", c.name, err)
		}
		if crls := ts.CRLs(); len(crls) != 1 || crls[0].File != c.name {
			t.Errorf("%s: CRLs in use %+v", c.name, crls)
		}
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "portals", "ca.pem"), signing.CertPEM(pki.CA))
	writeFile(t, filepath.Join(dir, "crl", "ca.crl"), []byte("not a crl"))
	if _, err := signing.LoadTrustStore(dir); !errors.Is(err, signing.ErrTrustConfig) {
		t.Errorf("a .crl that is no CRL: %v, want ErrTrustConfig", err)
	}
	// Other files beside the CRLs (a README) are left alone, as before.
	writeFile(t, filepath.Join(dir, "crl", "ca.crl"), crlPEM)
	writeFile(t, filepath.Join(dir, "crl", "README"), []byte("CRLs of the portal CA"))
	if _, err := signing.LoadTrustStore(dir); err != nil {
		t.Errorf("README beside a CRL: %v", err)
	}
}
