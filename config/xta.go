package config

import (
	"errors"
	"fmt"
	"net"
)

// TLS is the gateway's own TLS: server certificate and key, and the CA that issues
// offices' client certificates. The XTA ports always use it (client certificates are
// how an XTA office authenticates); the REST API uses it when REST is true —
// otherwise it is meant to sit behind a TLS-terminating proxy. OutboundCAFile is
// for the other direction: CA certificates (PEM) added to the system's roots to
// verify the servers the gateway calls — offices' webhooks, peer gateways,
// portals' callbacks, the SMTP server — when a state network has its own CA (XTA
// push has xta.root_ca_file). Read at start.
type TLS struct {
	CertFile       string `yaml:"cert_file"`
	KeyFile        string `yaml:"key_file"`
	ClientCAFile   string `yaml:"client_ca_file"`
	REST           bool   `yaml:"rest"`
	OutboundCAFile string `yaml:"outbound_ca_file"`
}

// XTA configures the XTA 2 Version 5 transport service (docs/xta.md). An empty
// Listen turns it off. Offices use it by configuring channels.xta: endpoint = their
// XTA identifier (pull) or their deliverMessage URL (params.mode: push);
// params.cert_sha256 pins their client certificates (comma-separated hex SHA-256).
type XTA struct {
	Listen     string `yaml:"listen"`      // e.g. 0.0.0.0:8443; "" = no XTA
	AuthorID   string `yaml:"author_id"`   // the gateway's XTA identifier; default "amtsbote:<gateway_id>"
	AuthorName string `yaml:"author_name"` // default the gateway id
	ServerID   string `yaml:"server_id"`   // server part of message ids; default the gateway id; keep it stable
	// For push (deliverMessage to an office's own endpoint): the gateway's client
	// certificate and the roots that verify offices' servers (empty: the system's).
	ClientCertFile  string `yaml:"client_cert_file"`
	ClientKeyFile   string `yaml:"client_key_file"`
	RootCAFile      string `yaml:"root_ca_file"`
	MaxMessageBytes int64  `yaml:"max_message_bytes"`
	MTOMThreshold   int64  `yaml:"mtom_threshold"`
	// SenderFaultStatus is the HTTP status of faults that are the caller's
	// (env:Sender): 400 as SOAP 1.2's HTTP binding has it (0: the default), or
	// 500 for Fachverfahren on WCF or CXF clients, which read a fault only from
	// a 500 (xta.Options.SenderFaultStatus, docs/xta.md "Returned codes").
	SenderFaultStatus int `yaml:"sender_fault_status"`
}

func (c *Config) validateTLS() []error {
	var errs []error
	t := c.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	if (c.PKI.GatewayKey == "") != (c.PKI.GatewayCert == "") {
		// Half a pair used to start on the development PKI, quietly replacing both.
		errs = append(errs, errors.New("pki: gateway_key and gateway_cert go together (neither: the development PKI)"))
	}
	if n := c.NATS.TLS; n.Set() {
		if c.NATS.URL == "" {
			errs = append(errs, errors.New("nats.tls: needs nats.url (the embedded server has no network port to secure)"))
		}
		if (n.CertFile == "") != (n.KeyFile == "") {
			errs = append(errs, errors.New("nats.tls: cert_file and key_file go together"))
		}
	}
	if t.REST && t.CertFile == "" {
		errs = append(errs, errors.New("tls.rest: needs tls.cert_file and tls.key_file"))
	}
	return errs
}

// validateXTA checks the XTA face's own settings.
func (c *Config) validateXTA() []error {
	var errs []error
	if c.XTA.Listen != "" {
		if _, _, err := net.SplitHostPort(c.XTA.Listen); err != nil {
			errs = append(errs, fmt.Errorf("xta.listen: %w", err))
		}
	}
	switch c.XTA.SenderFaultStatus {
	case 0, 400, 500:
	default:
		errs = append(errs, fmt.Errorf("xta.sender_fault_status: %d is neither 400 (SOAP 1.2, the default) nor 500 (for WCF and CXF clients)", c.XTA.SenderFaultStatus))
	}
	return errs
}
