package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/amtsbote/amtsbote/adapters"
	"github.com/amtsbote/amtsbote/adapters/pull"
	"github.com/amtsbote/amtsbote/adapters/transfer"
	"github.com/amtsbote/amtsbote/adapters/webhook"
	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/intake"
	"github.com/amtsbote/amtsbote/internal/outbound"
	"github.com/amtsbote/amtsbote/routing"
)

// channelDeps is what a channel's constructor may use.
type channelDeps struct {
	cfg config.Config
	log *slog.Logger
	out *outbound.Config // tls.outbound_ca_file's roots and the certificate warning
}

// channelRow is one channel the gateway can deliver on.
type channelRow struct {
	name string
	// build makes the adapter; nil for a channel whose face registers it (the
	// mailbox is both a channel and the pages office staff use).
	build func(channelDeps) (adapters.Adapter, error)
	// implicit: every office has the channel without configuring it (its endpoint
	// and secret, if any, are optional).
	implicit bool
}

// channelTable is the one place where a channel is wired into the gateway: a new
// channel is a package under adapters/ plus one row here (docs/adapters.md).
var channelTable = []channelRow{
	{name: channel.Webhook, build: func(d channelDeps) (adapters.Adapter, error) {
		return webhook.New(webhook.Options{PublicBaseURL: d.cfg.PublicURL, Timeout: d.cfg.Delivery.AttemptTimeout, Logger: d.log, Outbound: d.out})
	}},
	{name: channel.Transfer, build: func(d channelDeps) (adapters.Adapter, error) {
		return transfer.New(transfer.Options{Logger: d.log, LedgerKeep: d.cfg.Transfer.LedgerKeep})
	}},
	{name: channel.XTA, build: newXTAAdapter},
	{name: channel.API, build: func(channelDeps) (adapters.Adapter, error) { return pull.New(), nil }},
	// Registered by setupMailbox; every office has it, its endpoint (the address for
	// arrival notices) is optional.
	{name: channel.Mailbox, implicit: true},
}

func rowFor(name string) (channelRow, bool) {
	for _, r := range channelTable {
		if r.name == name {
			return r, true
		}
	}
	return channelRow{}, false
}

// newAdapters builds every channel of the table.
func newAdapters(cfg config.Config, log *slog.Logger, out *outbound.Config) (*adapters.Registry, error) {
	reg := adapters.NewRegistry()
	for _, r := range channelTable {
		if r.build == nil {
			continue
		}
		a, err := r.build(channelDeps{cfg: cfg, log: log, out: out})
		if err != nil {
			_ = reg.Close()
			return nil, fmt.Errorf("%s adapter: %w", r.name, err)
		}
		reg.Register(a)
	}
	return reg, nil
}

// officeChannels resolves an office's channel from the configuration at the moment
// it is asked: at intake for the plan (Usable), at each attempt for the target
// (Target). It implements broker.Channels and intake.Channels.
type officeChannels struct {
	offices atomic.Pointer[map[string]config.OfficeClient]
	reg     *adapters.Registry
}

func newOfficeChannels(offices map[string]config.OfficeClient, reg *adapters.Registry) *officeChannels {
	c := &officeChannels{reg: reg}
	c.set(offices)
	return c
}

func (c *officeChannels) set(offices map[string]config.OfficeClient) { c.offices.Store(&offices) }

// Target implements broker.Channels: endpoint, secret and params come together.
func (c *officeChannels) Target(officeID, name string) (adapters.Target, bool) {
	ch, ok := (*c.offices.Load())[officeID].Channel(name)
	if !ok {
		if r, found := rowFor(name); !found || !r.implicit {
			return adapters.Target{}, false
		}
	}
	return adapters.Target{Channel: name, Endpoint: ch.Endpoint, Secret: ch.Secret, Params: ch.Params}, true
}

// Usable implements intake.Channels: the gateway has the channel's adapter and the
// office's configuration for it.
func (c *officeChannels) Usable(officeID, name string) bool {
	if _, ok := c.reg.Get(name); !ok {
		return false
	}
	_, ok := c.Target(officeID, name)
	return ok
}

// Usable lists, for the lookup command and the directory API, the channels of an
// office that a gateway with this configuration can deliver on. For another
// state's office (officeID "peer-<Land>") that is the peer channel when a peer
// gateway serving that Land is configured.
func Usable(cfg config.Config, officeID string, directoryChannels []string) []string {
	var out []string
	if land, ok := strings.CutPrefix(officeID, "peer-"); ok {
		for _, p := range cfg.Peers {
			if p.ServesLand(land) {
				return []string{channel.Peer}
			}
		}
		return nil
	}
	for _, name := range directoryChannels {
		r, ok := rowFor(name)
		if !ok {
			continue
		}
		if _, configured := cfg.Offices[officeID].Channel(name); configured || r.implicit {
			out = append(out, name)
		}
	}
	return out
}

// Admit is intake's decision on a route (intake.Pipeline.Destination) under a
// configuration, for the lookup command, which runs no gateway: the channels the
// configuration gives (Usable), the mailbox as every office's last channel, and
// the configured peers. lookup had said a package would go where intake refuses
// it (another state's office no configured peer serves), and named the
// directory's peer entry where the package goes to the configured peer gateway.
func Admit(cfg config.Config) func(*routing.Route) (intake.Destination, error) {
	p := &intake.Pipeline{Channels: configChannels{cfg}, LastResort: channel.Mailbox}
	if len(cfg.Peers) > 0 {
		p.PeerFor = peerFor(cfg.Peers)
	}
	return p.Destination
}

// configChannels is intake.Channels from a configuration alone (Usable).
type configChannels struct{ cfg config.Config }

func (c configChannels) Usable(officeID, name string) bool {
	return slices.Contains(Usable(c.cfg, officeID, []string{name}), name)
}

// checkChannels refuses a configuration that names a channel this gateway cannot
// deliver on, or a target its adapter says can never work, naming office and field.
func checkChannels(offices map[string]config.OfficeClient, reg *adapters.Registry) error {
	var errs []error
	ids := make([]string, 0, len(offices))
	for id := range offices {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		names := make([]string, 0, len(offices[id].Channels))
		for n := range offices[id].Channels {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			field := "offices." + id + ".channels." + name
			a, ok := reg.Get(name)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: this gateway has no %s channel (it has: %v)", field, name, reg.Channels()))
				continue
			}
			ch := offices[id].Channels[name]
			chk, ok := a.(adapters.Checker)
			if !ok {
				continue
			}
			if err := chk.CheckTarget(adapters.Target{Channel: name, Endpoint: ch.Endpoint, Secret: ch.Secret, Params: ch.Params}); err != nil {
				var te *adapters.TargetError
				if errors.As(err, &te) {
					errs = append(errs, fmt.Errorf("%s.%s: %s", field, te.Field, te.Reason))
				} else {
					errs = append(errs, fmt.Errorf("%s: %w", field, err))
				}
			}
		}
	}
	errs = append(errs, sharedFolders(offices, ids)...)
	return errors.Join(errs...)
}

// sharedFolders refuses two offices whose transfer folders are one folder, or one
// inside the other (also through a symbolic link, a bind mount or one share mounted
// twice): each office's import takes every case folder it finds there, so one
// authority would get the other's applications, and the other would never see them.
// ids are the offices in order.
//
// Paths alone do not tell: one share mounted at two mount points (an /etc/fstab
// line copied for the next office without changing the share's name) or a bind
// mount are two paths of one folder, and the second office's start check finds
// the .amtsbote/ the first made and passes. So the folders are compared by their
// file identity too (device and inode, os.SameFile), and each with the folders
// above the other. NFS and SMB mounts of one share with the same options usually
// share one superblock, so they show one identity; mounted with different options
// they may not, and that stays unseen.
func sharedFolders(offices map[string]config.OfficeClient, ids []string) []error {
	type folder struct {
		field, path string
		self        os.FileInfo   // nil if it cannot be read (CheckTarget says why)
		above       []os.FileInfo // the folders above it, as far as they can be read
	}
	inside := func(f, o folder) bool { // f is o or lies inside it
		if within(o.path, f.path) {
			return true
		}
		if f.self == nil || o.self == nil {
			return false
		}
		return os.SameFile(f.self, o.self) || slices.ContainsFunc(f.above, func(fi os.FileInfo) bool { return os.SameFile(fi, o.self) })
	}
	var seen []folder
	var errs []error
	for _, id := range ids {
		ch, ok := offices[id].Channels[channel.Transfer]
		if !ok || !filepath.IsAbs(ch.Endpoint) {
			continue // CheckTarget names a missing or relative path
		}
		p := filepath.Clean(ch.Endpoint)
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		f := folder{field: "offices." + id + ".channels." + channel.Transfer + ".endpoint", path: p}
		if fi, err := os.Stat(p); err == nil {
			f.self = fi
			for d := filepath.Dir(p); ; d = filepath.Dir(d) {
				if fi, err := os.Stat(d); err == nil {
					f.above = append(f.above, fi)
				}
				if d == filepath.Dir(d) {
					break
				}
			}
		}
		for _, o := range seen {
			if inside(f, o) || inside(o, f) {
				errs = append(errs, fmt.Errorf("%s and %s: one folder, or one inside the other (%s, %s): each office's import would take the other's cases",
					o.field, f.field, o.path, f.path))
			}
		}
		seen = append(seen, f)
	}
	return errs
}

// within reports whether path is dir or lies inside it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// directoryMismatches says where the configuration names what the directory does
// not have: an office (or a mailbox user's office) the directory has no entry
// for — a misspelt id: no package is ever routed to it, and the real office's
// packages are held — and a channel the office's directory entry does not list,
// which is never planned. Each was accepted without a word; the packages were
// held and the held alert said so a quarter of an hour later (an audit,
// 2026-12-05). The mailbox is every office's last channel and needs no entry.
func directoryMismatches(cfg config.Config, d *routing.Directory) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(cfg.Offices)) {
		o, ok := d.Office(id)
		if !ok {
			out = append(out, fmt.Sprintf("offices.%s: the directory has no office %q: no package is routed to it (a misspelt id? GET /v1/offices/{id} shows an office the directory has; GET /v1/routes which office a service and place go to)", id, id))
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(cfg.Offices[id].Channels)) {
			if name == channel.Mailbox || slices.ContainsFunc(o.Channels, func(c routing.Channel) bool { return c.Kind == name }) {
				continue
			}
			kinds := make([]string, 0, len(o.Channels))
			for _, c := range o.Channels {
				kinds = append(kinds, c.Kind)
			}
			out = append(out, fmt.Sprintf("offices.%s.channels.%s: the office's directory entry does not list %s (it lists %v): the channel is never used; add {kind: %s} to the entry",
				id, name, name, kinds, name))
		}
	}
	seen := map[string]bool{}
	for _, u := range cfg.Mailbox.Users {
		if _, ok := d.Office(u.Office); !ok && !seen[u.Office] {
			seen[u.Office] = true
			out = append(out, fmt.Sprintf("mailbox.users: office %q (of user %s) is not in the directory: its users see no package", u.Office, u.Name))
		}
	}
	return out
}

// warnTokenOnly names at start each office with a token but no channel and no
// mailbox user: every package for it is held, a dead letter with its alert, until
// its system fetches it. Most such offices poll the pull API and want the api
// channel, which hands their packages over instead (docs/operations.md).
func warnTokenOnly(cfg config.Config, log *slog.Logger) {
	people := map[string]bool{}
	for _, u := range cfg.Mailbox.Users {
		people[u.Office] = true
	}
	for _, id := range slices.Sorted(maps.Keys(cfg.Offices)) {
		o := cfg.Offices[id]
		if (o.Token != "" || len(o.Tokens) > 0) && len(o.Channels) == 0 && !people[id] {
			log.Warn("office has a token but no channel and no mailbox user: its packages are held until its system fetches them; "+
				"if it polls the pull API, give it channels.api (and kind api in the directory)", "office", id)
		}
	}
}
