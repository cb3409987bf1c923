// Package channel names the delivery channels. The names appear in configuration
// (offices.<id>.channels.<name>), in the directory (an office's channel list), in queue
// subjects, event logs and receipts; keeping them in one leaf package means a new
// channel is named once and every layer agrees on the spelling.
package channel

// The channels, by maturity level of the office (E-Government-Reife) where one applies.
const (
	Mailbox  = "mailbox"  // level 1: web mailbox (Behördenpostfach) and e-mail notice
	Transfer = "transfer" // level 2: one folder per case in a shared folder
	Webhook  = "webhook"  // level 3: signed notification, then the office pulls by API
	XTA      = "xta"      // level 4: XTA 2 Version 5 (push or pull)
	Peer     = "peer"     // another state's gateway (Portalverbund)
	// API (level 3): the office's system fetches its packages through the pull API,
	// and nobody is notified: an office network that takes no inbound connection
	// polls, as a FIT-Connect subscriber does. The package waits as handed over
	// until the first fetch, which is the delivery. The name also marks deliveries
	// of other channels that the office's fetch confirmed first.
	API = "api"
)

var levels = map[string]int{Mailbox: 1, Transfer: 2, Webhook: 3, API: 3, XTA: 4, Peer: 0}

// Level returns the maturity level an office needs for the channel (0 for peer).
func Level(name string) int { return levels[name] }

// Known reports whether name is a channel an office can list.
func Known(name string) bool { _, ok := levels[name]; return ok }

// All lists the channels an office can list, by level (peer last).
func All() []string { return []string{Mailbox, Transfer, Webhook, API, XTA, Peer} }

// Decides reports whether an office that took a package by this channel can
// decide it (accept or reject) through this gateway: its system by the office
// API (api, webhook), a clerk in the web mailbox. Not by XTA, which has no
// accept or reject (an XTA office's Bescheid comes back as a reply, which is no
// decision), nor by a transfer folder, which has no way back; a package a peer
// gateway delivered is decided there, and that gateway's own view sees it. A
// package taken by one of those stays undecided for good by design, and a view
// of the cases that wait for a decision (the store's undecided index) would
// hold every one of them for ever. An unknown name is not one: a new channel
// is counted once someone says it decides.
func Decides(name string) bool { return name == API || name == Webhook || name == Mailbox }
