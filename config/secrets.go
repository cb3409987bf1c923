package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"
)

// SecretSettings names the settings of c that hold a bearer token, a signing
// secret or a password (never their values), in a stable order.
func (c *Config) SecretSettings() []string {
	var out []string
	if c.AdminToken != "" {
		out = append(out, "admin_token")
	}
	for _, id := range sortedKeys(c.Portals) {
		p := c.Portals[id]
		if p.Token != "" {
			out = append(out, "portals."+id+".token")
		}
		if p.Callback != nil && p.Callback.Secret != "" {
			out = append(out, "portals."+id+".callback.secret")
		}
		if p.Callback != nil && urlHasCredentials(p.Callback.Endpoint) {
			out = append(out, "portals."+id+".callback.endpoint")
		}
	}
	for _, id := range sortedKeys(c.Offices) {
		o := c.Offices[id]
		if o.Token != "" {
			out = append(out, "offices."+id+".token")
		}
		if len(o.Tokens) > 0 {
			out = append(out, "offices."+id+".tokens")
		}
		for _, name := range sortedKeys(o.Channels) {
			if o.Channels[name].Secret != "" {
				out = append(out, "offices."+id+".channels."+name+".secret")
			}
			if urlHasCredentials(o.Channels[name].Endpoint) {
				out = append(out, "offices."+id+".channels."+name+".endpoint")
			}
		}
		if o.Webhook != nil && o.Webhook.Secret != "" {
			out = append(out, "offices."+id+".webhook.secret")
		}
		if o.Webhook != nil && urlHasCredentials(o.Webhook.URL) {
			out = append(out, "offices."+id+".webhook.url")
		}
	}
	// A NATS URL's user part is the cluster's password or token (user:pw@host):
	// in cluster mode whoever has it reads and writes the whole store.
	if strings.Contains(c.NATS.URL, "@") {
		out = append(out, "nats.url")
	}
	if c.Mailbox.SMTP.Password != "" {
		out = append(out, "mailbox.smtp.password")
	}
	// A bcrypt hash is no password, but whoever reads it can try passwords
	// against it offline, as fast as she likes, without the login's limits.
	for i, u := range c.Mailbox.Users {
		if u.PasswordHash != "" {
			out = append(out, fmt.Sprintf("mailbox.users[%d].password_hash", i))
		}
	}
	return out
}

// urlHasCredentials says whether an endpoint URL carries user info or a query,
// where offices and portals put access tokens (adapters.SafeEndpoint leaves
// both out of logs for that reason).
func urlHasCredentials(e string) bool {
	u, err := url.Parse(e)
	if err != nil || u.Host == "" {
		return false
	}
	return u.User != nil || u.RawQuery != ""
}

// ExposedSecretsWarning says what is wrong when the configuration file at path,
// which c was read from, holds tokens, secrets or passwords while every user of
// the machine may read it: whoever can log in could then call /v1/admin or read
// an office's packages. It names the settings, never their values, and is ""
// when the file is protected, holds none, or cannot be inspected.
func ExposedSecretsWarning(path string, c *Config) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return ""
	}
	keys := c.SecretSettings()
	if len(keys) == 0 {
		return ""
	}
	more := ""
	if len(keys) > 3 {
		more = fmt.Sprintf(" and %d more", len(keys)-3)
		keys = keys[:3]
	}
	return fmt.Sprintf("configuration file %s is readable by every user of this machine (mode %04o) and holds %s%s; restrict it: chmod 0640 %s (owner root, group of the service user)",
		path, fi.Mode().Perm(), strings.Join(keys, ", "), more, path)
}

// MinTokenLength is the shortest bearer token not warned about at start: 20
// characters, 120 bits of base64 from `openssl rand -base64 32` cut short, or
// 80 of hex. The API does not limit how many tokens a client may try
// (amtsbote_auth_refused_total shows it when one does), so a token's length
// is what keeps it from being guessed.
const MinTokenLength = 20

// ShortTokens names the settings of c whose bearer token (taken as the API
// takes it, without the whitespace around it) is shorter than MinTokenLength,
// in a stable order; never their values.
func (c *Config) ShortTokens() []string {
	var out []string
	short := func(key, tok string) {
		if tok = strings.TrimSpace(tok); tok != "" && utf8.RuneCountInString(tok) < MinTokenLength {
			out = append(out, key)
		}
	}
	c.eachToken(short)
	return out
}
