package gateway

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/mailbox"
)

// MailboxPath is where the web mailbox is mounted.
const MailboxPath = "/postfach"

// setupMailbox starts the web mailbox (Behördenpostfach): the face office staff log
// into, and the channel every office has as its last one.
func (g *Gateway) setupMailbox(ctx context.Context) error {
	c := g.Config
	users := make([]mailbox.User, 0, len(c.Mailbox.Users))
	for _, u := range c.Mailbox.Users {
		users = append(users, mailbox.User{Name: u.Name, Office: u.Office, PasswordHash: u.PasswordHash})
	}
	opts := mailbox.Options{
		Desk: g.Broker, Users: users, DataDir: filepath.Join(c.DataDir, "mailbox"),
		PublicURL: c.PublicURL + MailboxPath + "/", Logger: g.Log,
		SMTP: mailbox.SMTPConfig{Addr: c.Mailbox.SMTP.Addr, From: c.Mailbox.SMTP.From, Username: c.Mailbox.SMTP.Username,
			Password: c.Mailbox.SMTP.Password, RequireTLS: c.Mailbox.SMTP.RequireTLS, Outbound: g.outbound},
		Downloads:      api.Transfer{Window: c.HTTP.ReadTimeout, MinRate: c.HTTP.UploadMinRate},
		WriteTimeout:   c.HTTP.WriteTimeout,
		Bodies:         g.bodies,
		TrustedProxies: c.HTTP.Proxies(),
		StoreDown:      g.storeUnreachable,
		Registerer:     g.reg,
		OfficeName: func(id string) string {
			if o, ok := g.Directory.Current().Office(id); ok {
				return o.Name
			}
			return ""
		},
	}
	if c.Store.Backend == config.StoreJetStream {
		// A cluster: every gateway must know every session, or the load balancer
		// would log clerks out whenever it picks another gateway.
		opts.SharedSessions, opts.SessionReplicas = g.bus.JS, c.NATS.Replicas
	}
	mb, err := mailbox.New(opts)
	if err != nil {
		return fmt.Errorf("mailbox: %w", err)
	}
	g.closers = append(g.closers, mb.Close)
	g.Mailbox = mb
	g.adapters.Register(mb.Adapter())
	g.mounts[MailboxPath] = mb.Handler()
	return nil
}
