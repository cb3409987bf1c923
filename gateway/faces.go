package gateway

import "context"

// faceTable sets up the gateway's faces besides the REST API (the web mailbox, the
// XTA service, the peer endpoint, the portals' callbacks): each runs once the broker, the directory and the
// intake pipeline exist, may register adapters and mounts, and adds what it must
// close to g.closers.
var faceTable = []func(g *Gateway, ctx context.Context) error{
	(*Gateway).setupMailbox,
	(*Gateway).setupXTA,
	(*Gateway).setupPeers,
	(*Gateway).setupCallbacks,
}

func (g *Gateway) setupFaces(ctx context.Context) error {
	for _, setup := range faceTable {
		if err := setup(g, ctx); err != nil {
			return err
		}
	}
	return nil
}
