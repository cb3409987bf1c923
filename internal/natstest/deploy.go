package natstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtsbote/amtsbote/internal/testenv"
	"github.com/nats-io/nats.go"
)

// DeployTLS are PEM files like those deploy/nats names under /etc/nats/tls, made
// for a test: a CA, the nodes' certificate (nats-1..nats-3, localhost, 127.0.0.1;
// serverAuth and clientAuth, since a route presents it as a client) and a
// gateway's client certificate, all issued by the CA.
type DeployTLS struct {
	Dir                   string
	CA                    string // ca.pem
	ServerCert, ServerKey string // server.pem, server-key.pem
	ClientCert, ClientKey string // client.pem, client-key.pem
	caCert                *x509.Certificate
	caKey                 *ecdsa.PrivateKey
}

// WriteDeployTLS writes a DeployTLS into dir with the names deploy/nats uses.
func WriteDeployTLS(tb testing.TB, dir string) *DeployTLS {
	tb.Helper()
	t := &DeployTLS{Dir: dir, CA: filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem")}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "amtsbote test NATS CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	if t.caCert, err = x509.ParseCertificate(der); err != nil {
		tb.Fatal(err)
	}
	t.caKey = caKey
	writePEM(tb, t.CA, "CERTIFICATE", der, 0o644)
	t.Issue(tb, "nats-node", []string{"nats-1", "nats-2", "nats-3", "localhost"}, t.ServerCert, t.ServerKey)
	t.Issue(tb, "amtsbote-gateway", nil, t.ClientCert, t.ClientKey)
	return t
}

// Issue writes a certificate of the CA for cn with the DNS names (and 127.0.0.1
// and ::1 when names are given), valid for serverAuth and clientAuth.
func (t *DeployTLS) Issue(tb testing.TB, cn string, dnsNames []string, certFile, keyFile string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    dnsNames,
	}
	if len(dnsNames) > 0 {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, t.caCert, &key.PublicKey, t.caKey)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	writePEM(tb, certFile, "CERTIFICATE", der, 0o644)
	writePEM(tb, keyFile, "PRIVATE KEY", kder, 0o600)
}

func writePEM(tb testing.TB, path, typ string, der []byte, mode os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		tb.Fatal(err)
	}
}

// DeployConfigs returns the paths of deploy/nats/nats-1.conf .. nats-3.conf.
func DeployConfigs(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(tb), "deploy", "nats", "nats-*.conf"))
	if err != nil || len(files) != 3 {
		tb.Fatalf("want three node configurations in deploy/nats, found %v (%v)", files, err)
	}
	return files
}

// DeployPorts are the loopback ports that stand in for one node's 4222, 6222, 8222.
type DeployPorts struct{ Client, Route, HTTP int }

// RewriteDeployConfig returns a deploy/nats configuration as it is, except for what
// a test on one host must change: the TLS files' folder, the store folder, and the
// nodes' hosts and ports (ports[i] for nats-i+1, all on 127.0.0.1). Each
// replacement must find its text, so a configuration that changes shape fails here
// instead of running a test of something else.
func RewriteDeployConfig(tb testing.TB, file, tlsDir, storeDir string, self int, ports []DeployPorts) string {
	tb.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	s := string(b)
	replace := func(old, new string) {
		if !strings.Contains(s, old) {
			tb.Fatalf("%s: no %q to rewrite for the test", file, old)
		}
		s = strings.ReplaceAll(s, old, new)
	}
	replace(`"/etc/nats/tls/`, `"`+tlsDir+`/`)
	replace("store_dir: /var/lib/nats", fmt.Sprintf("store_dir: %q", storeDir))
	replace("listen: 0.0.0.0:4222", fmt.Sprintf("listen: 127.0.0.1:%d", ports[self].Client))
	replace("listen: 0.0.0.0:6222", fmt.Sprintf("listen: 127.0.0.1:%d", ports[self].Route))
	replace("http: 127.0.0.1:8222", fmt.Sprintf("http: 127.0.0.1:%d", ports[self].HTTP))
	for i, p := range ports {
		replace(fmt.Sprintf("nats-route://nats-%d:6222", i+1), fmt.Sprintf("nats-route://127.0.0.1:%d", p.Route))
	}
	return s
}

// StartDeployCluster runs the three configurations of deploy/nats (rewritten by
// RewriteDeployConfig) as three nats-server processes with the gateways' password
// in their environment, and waits until JetStream is ready. The Cluster's URLs
// are tls:// URLs; its Connect uses the password, the CA and the client
// certificate.
func StartDeployCluster(tb testing.TB, password string) (*Cluster, *DeployTLS) {
	tb.Helper()
	return StartDeployClusterWith(tb, password, nil)
}

// StartDeployClusterWith is StartDeployCluster with edit applied to each
// rewritten configuration (nil: none), for a variant the example describes in a
// comment, e.g. client certificates required.
func StartDeployClusterWith(tb testing.TB, password string, edit func(conf string) string) (*Cluster, *DeployTLS) {
	tb.Helper()
	bin := Binary(tb)
	base := tb.TempDir()
	tlsDir := filepath.Join(base, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	t := WriteDeployTLS(tb, tlsDir)
	pick := FreePorts(tb, 9)
	ports := []DeployPorts{{pick[0], pick[1], pick[2]}, {pick[3], pick[4], pick[5]}, {pick[6], pick[7], pick[8]}}
	c := &Cluster{bin: bin, tb: tb, env: []string{"NATS_AMTSBOTE_PASSWORD=" + password},
		opts: []nats.Option{nats.UserInfo("amtsbote", password), nats.RootCAs(t.CA), nats.ClientCert(t.ClientCert, t.ClientKey)}}
	for i, f := range DeployConfigs(tb) {
		name := fmt.Sprintf("nats-%d", i+1)
		dir := filepath.Join(base, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		conf := filepath.Join(dir, "nats.conf")
		text := RewriteDeployConfig(tb, f, tlsDir, dir, i, ports)
		if edit != nil {
			text = edit(text)
		}
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
		c.Servers = append(c.Servers, &Server{Name: name, ClientURL: fmt.Sprintf("tls://127.0.0.1:%d", ports[i].Client), conf: conf, dir: dir,
			routeAddr: fmt.Sprintf("127.0.0.1:%d", ports[i].Route)})
	}
	c.startAll(tb)
	return c, t
}

// RouteAddr is the loopback address of server i's route port in a cluster from
// StartDeployCluster.
func (c *Cluster) RouteAddr(tb testing.TB, i int) string {
	tb.Helper()
	if c.Servers[i].routeAddr == "" {
		tb.Fatalf("natstest: %s has no route address (not a cluster of StartDeployCluster)", c.Servers[i].Name)
	}
	return c.Servers[i].routeAddr
}
