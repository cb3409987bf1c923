package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/mailbox"
	"github.com/amtsbote/amtsbote/signing"
	"github.com/amtsbote/amtsbote/store"
)

// DemoOfficeID is the office of the Amt24 example (Stadt Dresden, Abt. Allgemeine
// Verwaltung/Grundsatz); the development credentials include it.
const DemoOfficeID = "dresden-allgemeine-verwaltung"

// setupKeys loads the gateway's signing key and trust store, creating the
// development PKI on first start when the operator configured no keys.
func (g *Gateway) setupKeys() error {
	c := &g.Config
	if c.PKI.GatewayKey == "" || c.PKI.GatewayCert == "" {
		if c.PKI.TrustDir != "" {
			// The operator's own trust store is a production set-up: the fallback to
			// a development gateway key (and development credentials and a mailbox
			// login with it) started without a word but WARN lines, and signed
			// receipts no portal trusts. An audit of the first install found it.
			return fmt.Errorf("pki.trust_dir is set (%s), but pki.gateway_key and pki.gateway_cert are not: set both to the gateway's own key and certificate (docs/signing.md); a development PKI is made only when all three are empty", c.PKI.TrustDir)
		}
		if err := refuseStoreWithoutDevPKI(c); err != nil {
			return err
		}
		pki, err := signing.EnsureDevPKI(c.PKI.Dir, c.GatewayID)
		if err != nil {
			return fmt.Errorf("dev pki: %w", err)
		}
		g.PKI = pki
		c.PKI.GatewayKey, c.PKI.GatewayCert = pki.GatewayKey, pki.GatewayCert
		c.PKI.TrustDir = pki.TrustDir
		if pki.Created {
			g.Log.Warn("created a DEVELOPMENT PKI; do not use it in production",
				"dir", pki.Dir, "gateway_cert", pki.GatewayCert, "receipt_key", pki.ReceiptKey,
				"portal_key", pki.PortalKey, "portal_cert", pki.PortalCert, "trust_dir", pki.TrustDir)
		}
	}
	if c.PKI.TrustDir == "" {
		return errors.New("pki.trust_dir: required when pki.gateway_key is set")
	}
	// Whatever the key's type (an operator's RSA or ECDSA key, or the dev PKI's), the
	// signer picks the matching SignatureMethod; the log says which, because relying
	// parties' tools differ (npm xml-crypto verifies RSA only, see docs/signing.md).
	var signer *signing.Signer
	var err error
	if g.PKI == nil {
		signer, err = loadOperatorSigner(c.PKI.GatewayKey, c.PKI.GatewayCert)
	} else if signer, err = signing.LoadSigner(c.PKI.GatewayKey, c.PKI.GatewayCert); err != nil {
		err = fmt.Errorf("gateway key: %w", err)
	}
	if err != nil {
		return err
	}
	// A certificate outside its validity, or without digitalSignature, signs receipts
	// that every verifier refuses: each 201 would come with a worthless receipt.
	if err := checkCertificateInUse("pki.gateway_cert", c.PKI.GatewayCert, signer.Certificate(), true, time.Now(), g.Log); err != nil {
		return err
	}
	// The chain after the leaf goes into every receipt's KeyInfo: an intermediate
	// that has ended (an old bundle left after the CA's renewal) makes verifiers
	// that anchor on the root refuse every receipt, and the start said nothing
	// (an audit, 2026-12-05).
	for i, ca := range signer.Chain()[1:] {
		if err := checkCertificateInUse(fmt.Sprintf("pki.gateway_cert (chain certificate %d)", i+2), c.PKI.GatewayCert, ca, false, time.Now(), g.Log); err != nil {
			return err
		}
	}
	// Receipts name gateway_id and are signed by this certificate; peers check its
	// CN against the id. The development PKI refuses another id; an operator's
	// certificate started with any CN and signed receipts as someone else.
	if cn := signer.Certificate().Subject.CommonName; cn != c.GatewayID {
		return fmt.Errorf("pki.gateway_cert: the certificate is for %q, but gateway_id is %q; receipts would name one and be signed by the other", cn, c.GatewayID)
	}
	g.Log.Info("receipts and federation documents are signed with the gateway key",
		"key", signer.KeyDescription(), "signature_method", signer.SignatureMethod(), "cert", c.PKI.GatewayCert)
	if err := checkTrustedFiles(c); err != nil {
		return err
	}
	trust, err := signing.LoadTrustStore(c.PKI.TrustDir)
	if err != nil {
		return fmt.Errorf("trust store: %w", err)
	}
	g.Signer, g.Trust = signer, trust
	g.warnEmptyTrust()
	return g.checkTLSFiles(time.Now())
}

// DevCredentials are the tokens and secrets a development gateway generates on
// first start so that every API can be tried at once. They live in a 0600 file in
// the data folder; operators set real ones in the configuration.
type DevCredentials struct {
	AdminToken string                         `yaml:"admin_token"`
	Portals    map[string]config.PortalClient `yaml:"portals"`
	Offices    map[string]config.OfficeClient `yaml:"offices"`
	// Mailbox has one web-mailbox user per demo office, with the password in clear
	// (this file is 0600 and for development only) and its hash.
	Mailbox []DevMailboxUser `yaml:"mailbox,omitempty"`
}

// DevMailboxUser is a development login of the web mailbox.
type DevMailboxUser struct {
	Name         string `yaml:"name"`
	Office       string `yaml:"office"`
	Password     string `yaml:"password"`
	PasswordHash string `yaml:"password_hash"`
}

// DemoMailboxUser is the development login of the demo office's mailbox.
const DemoMailboxUser = "dresden"

// DevCredentialsFile is the file name under the data folder.
const DevCredentialsFile = "dev-credentials.yaml"

// LoadDevCredentials reads the development credentials of a data folder.
func LoadDevCredentials(dataDir string) (*DevCredentials, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, DevCredentialsFile))
	if err != nil {
		return nil, err
	}
	var dc DevCredentials
	if err := yaml.Unmarshal(b, &dc); err != nil {
		return nil, fmt.Errorf("%s: %w", DevCredentialsFile, err)
	}
	return &dc, nil
}

// setupCredentials fills what the configuration leaves empty from the development
// credentials, creating them on first start. Only a gateway running on the
// development PKI does this; with real keys, missing credentials stay missing.
func (g *Gateway) setupCredentials() error {
	c := &g.Config
	if g.PKI == nil {
		return nil
	}
	path := filepath.Join(c.DataDir, DevCredentialsFile)
	dc, err := LoadDevCredentials(c.DataDir)
	if errors.Is(err, os.ErrNotExist) {
		dc = &DevCredentials{
			AdminToken: randomToken(),
			Portals:    map[string]config.PortalClient{signing.DevPortalID: {Token: randomToken()}},
			Offices: map[string]config.OfficeClient{DemoOfficeID: {
				Token: randomToken(), Channels: map[string]config.Channel{channel.Webhook: {Secret: "whsec_" + randomKey()}},
			}},
		}
		b, _ := yaml.Marshal(dc)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return fmt.Errorf("dev credentials: %w", err)
		}
		g.Log.Warn("created DEVELOPMENT credentials (tokens, webhook secret)", "file", path)
	} else if err != nil {
		return err
	}
	if len(dc.Mailbox) == 0 {
		// Also for a credentials file written before the mailbox existed.
		pw := randomToken()[:20] // 80 random bits
		hash, err := mailbox.HashGeneratedPassword(pw)
		if err != nil {
			return fmt.Errorf("dev credentials: %w", err)
		}
		dc.Mailbox = []DevMailboxUser{{Name: DemoMailboxUser, Office: DemoOfficeID, Password: pw, PasswordHash: hash}}
		b, _ := yaml.Marshal(dc)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return fmt.Errorf("dev credentials: %w", err)
		}
	}
	for _, u := range dc.Mailbox {
		if !hasMailboxUser(c.Mailbox.Users, u.Name) {
			c.Mailbox.Users = append(c.Mailbox.Users, config.MailboxUser{Name: u.Name, Office: u.Office, PasswordHash: u.PasswordHash})
		}
	}
	g.CredsFile = path
	if c.AdminToken == "" {
		c.AdminToken = dc.AdminToken
	}
	if c.Portals == nil {
		c.Portals = map[string]config.PortalClient{}
	}
	for id, p := range dc.Portals {
		cur, ok := c.Portals[id]
		if !ok {
			c.Portals[id] = p
			continue
		}
		if cur.Token == "" {
			// A portal configured for its callback alone keeps the token the
			// development credentials hand out (and `submit -wait` sends),
			// as the demo office does.
			cur.Token = p.Token
			c.Portals[id] = cur
		}
	}
	if c.Offices == nil {
		c.Offices = map[string]config.OfficeClient{}
	}
	for id, o := range dc.Offices {
		o = o.Normalized()
		cur, ok := c.Offices[id]
		if !ok {
			// Only the token: a channel without the operator's endpoint would be
			// refused at start (and the secret waits in the file until one is set).
			c.Offices[id] = config.OfficeClient{Token: o.Token}
			continue
		}
		if cur.Token == "" && len(cur.Tokens) == 0 {
			// An office rotating its tokens has its tokens: a development
			// token beside them would be refused (token and tokens together).
			cur.Token = o.Token
		}
		// A development secret fills a configured channel that has none; it never
		// adds a channel the operator did not configure.
		for name, ch := range cur.Channels {
			if ch.Secret == "" && o.Channels[name].Secret != "" {
				ch.Secret = o.Channels[name].Secret
				cur = cur.WithChannel(name, ch)
			}
		}
		c.Offices[id] = cur
	}
	return nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func hasMailboxUser(us []config.MailboxUser, name string) bool {
	for _, u := range us {
		if u.Name == name {
			return true
		}
	}
	return false
}

// knownCertificates are the certificates the store keeps once instead of in every
// receipt and package (store/known.go): the gateway's chain and every trusted one,
// as the base64 text a signed document carries them in.
func (g *Gateway) knownCertificates() [][]byte {
	var out [][]byte
	for _, c := range append(g.Signer.Chain(), g.Trust.Certificates()...) {
		out = append(out, []byte(base64.StdEncoding.EncodeToString(c.Raw)))
	}
	return out
}

// refuseStoreWithoutDevPKI refuses a single node's store without the development
// PKI it was started with: a data folder restored from a backup, which holds the
// store but not `<data_dir>/pki` (keys are not in the archive). A new development
// PKI beside it would have a new CA that trusts none of the portals' keys, so
// intake refused every portal, and a new gateway key whose receipts no portal
// can verify; the old keys, the only ones the portals trust, would then be
// overwritten if they were found and copied back later. A disaster-recovery
// drill made exactly that with a WARN line only (docs/operations.md, "Backup and
// restore"). In cluster mode the store is not in the data folder.
func refuseStoreWithoutDevPKI(c *config.Config) error {
	if c.Store.Backend == config.StoreJetStream {
		return nil
	}
	db := filepath.Join(c.DataDir, store.FileName)
	if _, err := os.Stat(db); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // a new gateway: its development PKI is made now
		}
		return fmt.Errorf("data dir: %w", err)
	}
	has, err := signing.HasDevPKI(c.PKI.Dir)
	if err != nil || has {
		return err
	}
	return fmt.Errorf("the data folder holds a store (%s) but %s holds no development PKI: "+
		"the keys that signed its receipts and that the portals trust are missing (restored from a backup, which holds no keys?); "+
		"put the old %s back, or set pki.gateway_key, pki.gateway_cert and pki.trust_dir to the gateway's own keys; "+
		"to start afresh with a new development PKI, move %s away (docs/operations.md, \"Backup and restore\")",
		db, c.PKI.Dir, c.PKI.Dir, store.FileName)
}
