package config

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Mailbox configures the web mailbox (Behördenpostfach): who may log in for which
// office, and how arrival notices are mailed. Every office has the mailbox as its
// last channel; see docs/mailbox.md.
type Mailbox struct {
	Users []MailboxUser `yaml:"users"`
	SMTP  SMTP          `yaml:"smtp"`
}

// MailboxUser is one office user. PasswordHash is a bcrypt hash (`amtsbote mailbox
// hash` prints one); the password itself is never configured.
type MailboxUser struct {
	Name         string `yaml:"name"`
	Office       string `yaml:"office"`
	PasswordHash string `yaml:"password_hash"`
}

// SMTP is the submission server for arrival notices. Empty Addr: no notices.
type SMTP struct {
	Addr       string `yaml:"addr"`
	From       string `yaml:"from"`
	Username   string `yaml:"username"`
	Password   string `yaml:"password"` // never logged
	RequireTLS bool   `yaml:"require_tls"`
}

func (c *Config) validateMailbox() []error {
	var errs []error
	seen := map[string]bool{}
	for i, u := range c.Mailbox.Users {
		field := fmt.Sprintf("mailbox.users[%d]", i)
		switch {
		case strings.TrimSpace(u.Name) == "":
			errs = append(errs, fmt.Errorf("%s.name: must not be empty", field))
		case seen[u.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is listed twice", field, u.Name))
		}
		seen[u.Name] = true
		if u.Office == "" {
			errs = append(errs, fmt.Errorf("%s.office: must name the user's office", field))
		}
		// The whole hash, not its prefix: the example's "$2a$12$…" copied as it
		// is passed a prefix check and stopped the start later, in the mailbox,
		// without naming this setting.
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			errs = append(errs, fmt.Errorf("%s.password_hash: must be a bcrypt hash (amtsbote mailbox hash)", field))
		}
	}
	if a := c.Mailbox.SMTP.Addr; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("mailbox.smtp.addr: %w", err))
		}
		if c.Mailbox.SMTP.From == "" {
			errs = append(errs, errors.New("mailbox.smtp.from: required when addr is set"))
		}
	}
	return errs
}
