package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amtsbote/amtsbote/api"
	"github.com/amtsbote/amtsbote/bus"
)

// A cluster's reload (POST /v1/admin/directory/reload) reaches one gateway
// through the load balancer, but what it changes — which services and offices
// the directory has, which portals and peers the trust store trusts — every
// gateway must agree on: a reload that reached one let portals get 201 or 422
// by the load balancer's choice and left a removed certificate trusted by the
// others. So in cluster mode the gateway that gets the request broadcasts it on
// ReloadSubject; every gateway reloads its own files and answers with its
// result. Who should answer is known from MembersBucket, where every gateway
// keeps a key alive while it runs. SIGHUP stays local to its process.
const (
	// ReloadSubject is the core NATS subject every cluster gateway listens on
	// for reloads (request with a reply inbox; each gateway answers one
	// api.NodeReload as JSON).
	ReloadSubject = "amtsbote.admin.reload"
	// MembersBucket holds one key per running cluster gateway (its node id; the
	// value: where it listens), refreshed every memberEvery and gone memberTTL
	// after its gateway stopped refreshing it.
	MembersBucket = "amtsbote_gateways"
)

// Variables for tests.
var (
	memberEvery = 10 * time.Second
	memberTTL   = 30 * time.Second
	// reloadWait bounds how long a cluster's reload waits for the gateways'
	// answers (each builds its directory and trust store first).
	reloadWait = 20 * time.Second
)

// member is a MembersBucket value.
type member struct {
	Address string `json:"address"`
}

// cluster is what a cluster gateway needs to reload all gateways.
type cluster struct {
	node    string
	address string
	members jetstream.KeyValue
	sub     *nats.Subscription
	stop    chan struct{}
	done    sync.WaitGroup
}

// nodeAddress is how the reload's answer names where this gateway listens: the
// machine's host name where the listener has no address of its own (0.0.0.0).
func nodeAddress(ln net.Listener) string {
	addr := ln.Addr().String()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			return net.JoinHostPort(h, port)
		}
	}
	return addr
}

// joinCluster registers this gateway in MembersBucket and answers reloads on
// ReloadSubject until the gateway shuts down (cluster mode only).
func (g *Gateway) joinCluster(ctx context.Context) error {
	node, err := nodeID(g.Config.DataDir)
	if err != nil {
		return err
	}
	kv, err := bus.KeyValue(ctx, g.bus.JS, jetstream.KeyValueConfig{
		Bucket: MembersBucket, Description: "amtsbote: the running gateways of the cluster (reload)",
		TTL: memberTTL, Replicas: g.Config.NATS.Replicas,
	})
	if err != nil {
		return fmt.Errorf("cluster members: %w", err)
	}
	c := &cluster{node: node, address: nodeAddress(g.ln), members: kv, stop: make(chan struct{})}
	value, err := json.Marshal(member{Address: c.address})
	if err != nil {
		return err
	}
	if e, err := kv.Get(ctx, node); err == nil {
		// An entry under this node id from another address: a data folder
		// copied with its node-id. Reload answers are told apart by the id, so
		// one of the two would hide the other's (a review); say so.
		var other member
		if json.Unmarshal(e.Value(), &other) == nil && other.Address != c.address {
			g.Log.Warn("another gateway of the cluster runs with this gateway's node id (a data folder copied with its node-id file?): give each gateway its own, or a reload's answer cannot tell them apart",
				"node", node, "other_address", other.Address, "address", c.address, "file", filepath.Join(g.Config.DataDir, "node-id"))
		}
	}
	if _, err := kv.Put(ctx, node, value); err != nil {
		return fmt.Errorf("cluster members: %w", err)
	}
	c.sub, err = g.bus.NC.Subscribe(ReloadSubject, func(m *nats.Msg) {
		b, err := json.Marshal(g.reloadHere(c.node, c.address))
		if err == nil {
			err = m.Respond(b)
		}
		if err != nil {
			g.Log.Error("cluster reload: answering failed", "err", err)
		}
	})
	if err != nil {
		_ = kv.Delete(ctx, node)
		return fmt.Errorf("cluster reload: %w", err)
	}
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		t := time.NewTicker(memberEvery)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(context.Background(), memberEvery)
			if _, err := kv.Put(pctx, node, value); err != nil {
				g.Log.Warn("cluster members: cannot renew this gateway's entry", "err", err)
			}
			cancel()
		}
	}()
	g.cluster = c
	g.closers = append(g.closers, func() error {
		close(c.stop)
		c.done.Wait()
		err := c.sub.Unsubscribe()
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Gone at once: a reload meanwhile does not wait for this gateway.
		return errors.Join(err, kv.Delete(dctx, node))
	})
	return nil
}

// reloadHere reloads this gateway (ReloadLogged) and says how it went.
func (g *Gateway) reloadHere(node, address string) api.NodeReload {
	err := g.ReloadLogged("admin API")
	return api.ReloadResult(node, address, err, g.Directory.Current())
}

// ReloadLogged is Reload, and says in the log whether it took and who asked
// (by: "SIGHUP", "admin API"): after `amtsbote admin reload` the log said
// nothing, and an operator reading it could not tell whether the files in use
// were the new ones.
func (g *Gateway) ReloadLogged(by string) error {
	err := g.Reload()
	if err != nil {
		g.Log.Error("reload failed; keeping the old directory and trust store", "by", by, "err", err)
	} else {
		g.Log.Info("directory and trust store reloaded", "by", by)
		// The home Länder and the peers' trust may have changed with them.
		g.warnReloadable()
	}
	return err
}

// ReloadAll reloads the directory files and the trust store of every gateway:
// this one alone on a single node; in cluster mode every gateway of the
// cluster, each its own files, by ReloadSubject. Every gateway listed in
// MembersBucket that does not answer within reloadWait is in the result as
// api.ReloadNoAnswer. The error says the reload could not be sent.
func (g *Gateway) ReloadAll(ctx context.Context) ([]api.NodeReload, error) {
	c := g.cluster
	if c == nil {
		return []api.NodeReload{g.reloadHere(g.Config.GatewayID, nodeAddress(g.ln))}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reloadWait)
	defer cancel()
	expected := map[string]string{} // node → address
	keys, err := c.members.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the cluster's gateways: %w", err)
	}
	var names []string
	for k := range keys.Keys() {
		names = append(names, k)
	}
	_ = keys.Stop() // an error here says only that the listing had ended
	for _, k := range names {
		if e, err := c.members.Get(ctx, k); err == nil {
			var m member
			_ = json.Unmarshal(e.Value(), &m)
			expected[k] = m.Address
		}
	}
	expected[c.node] = c.address // this one answers too, listed or not
	nc := g.bus.NC
	inbox := nc.NewRespInbox()
	replies, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("cluster reload: %w", err)
	}
	defer func() { _ = replies.Unsubscribe() }()
	if err := nc.PublishRequest(ReloadSubject, inbox, nil); err != nil {
		return nil, fmt.Errorf("cluster reload: %w", err)
	}
	got := map[string]api.NodeReload{}
	for missing(expected, got) {
		m, err := replies.NextMsgWithContext(ctx)
		if err != nil {
			break // the wait is over (or the request ended): the others did not answer
		}
		var r api.NodeReload
		if json.Unmarshal(m.Data, &r) != nil || r.Node == "" {
			g.Log.Warn("cluster reload: an answer that is no node's result", "answer", string(m.Data))
			continue
		}
		got[r.Node] = r
	}
	out := make([]api.NodeReload, 0, len(got)+len(expected))
	for _, r := range got {
		out = append(out, r)
	}
	for node, addr := range expected {
		if _, ok := got[node]; !ok {
			out = append(out, api.NodeReload{Node: node, Address: addr, Status: api.ReloadNoAnswer,
				Error: fmt.Sprintf("no answer within %s", reloadWait)})
		}
	}
	slices.SortFunc(out, func(a, b api.NodeReload) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// missing reports whether a gateway in expected has not answered yet.
func missing(expected map[string]string, got map[string]api.NodeReload) bool {
	for node := range expected {
		if _, ok := got[node]; !ok {
			return true
		}
	}
	return false
}
