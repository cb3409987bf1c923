package gateway

import (
	"log/slog"
	"net"
	"strings"

	"github.com/amtsbote/amtsbote/config"
)

// warnExposure says at every start what makes the gateway easier to break into
// than its operator may think; neither is refused, since a start that worked
// yesterday must not stop after an upgrade:
//
//   - a bearer token shorter than config.MinTokenLength: the API does not limit
//     how many a client may try;
//   - the development PKI and credentials served on an address other machines
//     reach: its CA key lies in the data folder and makes portals the gateway
//     trusts, and the demo mailbox login is in dev-credentials.yaml. Only the
//     first start said "DEVELOPMENT PKI"; every later one said nothing (an
//     audit, 2026-12-06, found one on 0.0.0.0 after a restart).
//   - a public_url of plain http:// on another host than this one: the REST
//     API's bearer tokens, the web mailbox's passwords and session cookies
//     (not Secure without https) and the links in notices cross the network
//     in the clear (the same audit).
func (g *Gateway) warnExposure(addr net.Addr, log *slog.Logger) {
	if keys := g.Config.ShortTokens(); len(keys) > 0 {
		log.Warn("bearer tokens shorter than the least advised length; nothing limits how many a client may try: make each long and random (openssl rand -base64 32)",
			"settings", strings.Join(keys, ", "), "min_length", config.MinTokenLength)
	}
	if g.PKI != nil {
		if ta, ok := addr.(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
			log.Warn("serving on the DEVELOPMENT PKI and credentials at an address other machines reach; do not use it in production: set pki.gateway_key, pki.gateway_cert and pki.trust_dir (docs/signing.md)",
				"addr", ta.String(), "dev_ca_key", g.PKI.CAKey, "dev_credentials", g.CredsFile)
		}
	}
	if host, ok := config.PlainHTTPAway(g.Config.PublicURL); ok {
		log.Warn("public_url is plain http on an address other machines reach: bearer tokens, mailbox passwords and session cookies cross the network in the clear; serve https (tls.rest, or a TLS proxy in front) and set public_url to its https:// address",
			"host", host)
	}
}
