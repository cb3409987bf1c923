package gateway

import (
	"context"
	"fmt"
	"sort"

	"github.com/amtsbote/amtsbote/callback"
)

// setupCallbacks starts the new-events callbacks of the portals that configured
// one (portals.<id>.callback): every committed event of their submissions makes
// their ids part of the next callback.
func (g *Gateway) setupCallbacks(context.Context) error {
	var portals []callback.Portal
	for id, p := range g.Config.Portals {
		if p.Callback != nil {
			portals = append(portals, callback.Portal{ID: id, Endpoint: p.Callback.Endpoint, Secret: p.Callback.Secret})
		}
	}
	if len(portals) == 0 {
		return nil
	}
	sort.Slice(portals, func(i, j int) bool { return portals[i].ID < portals[j].ID })
	n, err := callback.New(callback.Options{Portals: portals, Outbound: g.outbound, Logger: g.Log, Registerer: g.reg})
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	g.Broker.Observe(n.Observe)
	n.Start()
	g.closers = append(g.closers, n.Close)
	return nil
}
