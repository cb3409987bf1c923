package gateway

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/routing"
)

// Warnings of what in the configuration cannot work as the operator meant,
// though the gateway runs: each line names the setting, never a token, a
// secret or an endpoint (which may carry a token in its query). None is a
// refusal, each for its own reason (docs/operations.md, "Warned at start"):
// the home Land comes from the directory and a peer's trust from the trust
// store, both read again on a reload, so a rollout may set the peer before
// the directory or the certificate; and a portal whose callback has no token
// yet takes nothing from any other client.

// warnConfig logs the warnings that depend on the configuration alone: once at
// start (the configuration is read only then).
func (g *Gateway) warnConfig() {
	for _, id := range portalsCallbackWithoutToken(g.Config) {
		g.Log.Warn("a portal has a callback but no token: it is told of news about its applications but can never read them (GET /v1/submissions/{id} needs its token); give it portals.<id>.token (docs/webhook.md, \"Portals: new-events callbacks\")",
			"setting", "portals."+id+".token")
	}
	g.warnReloadable()
}

// warnReloadable logs the warnings that depend on what a reload reads again
// (the directory's home Länder, the trust store): at start and after every
// reload that took.
func (g *Gateway) warnReloadable() {
	for _, w := range homeLandPeers(g.Config.Peers, g.Directory.Current()) {
		g.Log.Warn("a peer gateway for a Land this gateway's directory is authoritative for (homeLands): the directory routes every place there to this gateway's own offices, never to that peer; name the Länder this gateway serves in homeLands of a directory file (docs/directory.md), or remove the entry",
			"setting", w.setting, "land", w.land, "home_lands", w.home)
	}
	if g.checkPeer == nil {
		return
	}
	for i, p := range g.Config.Peers {
		if err := g.checkPeer(p); err != nil {
			g.Log.Warn("no certificate of a peer gateway is trusted for the peer role: what it forwards and answers is refused (403 federation/untrusted-peer) and nothing is sent to it; put its gateway certificate into the trust store's peers/ folder and reload, or set peers[].certificate (docs/federation.md, \"Trust between two states\")",
				"setting", peerSetting(i, p), "err", err)
		}
	}
}

// portalsCallbackWithoutToken lists, sorted, the portals with a callback and no
// token (as the API takes it: blank is none). The development credentials have
// filled the demo portal's by now.
func portalsCallbackWithoutToken(c config.Config) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(c.Portals)) {
		if p := c.Portals[id]; p.Callback != nil && strings.TrimSpace(p.Token) == "" {
			out = append(out, id)
		}
	}
	return out
}

type homeLandPeer struct{ setting, land, home string }

// homeLandPeers names each peer entry that serves a home Land of the directory d,
// or areas in one, once per entry and Land: routing sends no place of a home
// Land to a peer (routing.Directory.route), so such an entry is never used for
// them.
func homeLandPeers(peers []config.Peer, d *routing.Directory) []homeLandPeer {
	home := d.Source().HomeLands
	var out []homeLandPeer
	for i, p := range peers {
		lands := slices.Clone(p.Lands)
		for _, a := range p.Areas {
			if len(a) >= 2 {
				lands = append(lands, a[:2])
			}
		}
		seen := map[string]bool{}
		for _, l := range lands {
			if slices.Contains(home, l) && !seen[l] {
				seen[l] = true
				out = append(out, homeLandPeer{setting: peerSetting(i, p), land: l, home: strings.Join(home, ",")})
			}
		}
	}
	return out
}

// peerSetting names a peers entry as config.Validate does.
func peerSetting(i int, p config.Peer) string {
	return fmt.Sprintf("peers[%d] (%s)", i, p.ID)
}
