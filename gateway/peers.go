package gateway

import "context"

// setupPeers connects this gateway to the gateways of other states (Portalverbund).
func (g *Gateway) setupPeers(ctx context.Context) error { return nil }
