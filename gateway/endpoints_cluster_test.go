package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/amtsbote/amtsbote/channel"
	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/internal/natstest"
	"github.com/amtsbote/amtsbote/mailbox/mailboxclient"
)

// TestClusterSharesDisabledEndpoints: two gateways on one JetStream store (a
// nats-server process). The office's webhook answers 410 Gone to whichever gateway
// delivers; both then list the channel as disabled. The operator's enable reaches
// the other one (as through a load balancer) and the channel is enabled on both.
// Before the shared bucket, each gateway kept its own endpoints.json: the enable
// worked only where it landed.
func TestClusterSharesDisabledEndpoints(t *testing.T) {
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) }))
	defer gone.Close()
	url := natstest.StartSingle(t).URLs()
	cluster := func(cfg *config.Config) {
		cfg.Store.Backend, cfg.NATS.URL = config.StoreJetStream, url
		o := cfg.Offices[DemoOfficeID]
		o.Channels = map[string]config.Channel{channel.Webhook: {Endpoint: gone.URL, Secret: secretA}}
		cfg.Offices[DemoOfficeID] = o
	}
	one, two := start(t, cluster), start(t, cluster)

	state := func(f *fixture) string {
		req, _ := http.NewRequest(http.MethodGet, f.g.URL()+"/v1/admin/endpoints", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Endpoints []struct{ Office, Channel, State string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		for _, e := range body.Endpoints {
			if e.Office == DemoOfficeID && e.Channel == channel.Webhook {
				return e.State
			}
		}
		return "unknown"
	}

	res, err := one.portal.Submit(context.Background(), one.example())
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("submit: %v %+v", err, res)
	}
	waitFor(t, "both gateways to list the webhook as disabled", func() bool {
		return state(one) == "disabled" && state(two) == "disabled"
	})
	for _, f := range []*fixture{two, one} { // the enable lands on either gateway
		req, _ := http.NewRequest(http.MethodPost, f.g.URL()+"/v1/admin/endpoints/"+DemoOfficeID+"/"+channel.Webhook+"/enable", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("enable: %d", resp.StatusCode)
		}
		waitFor(t, "both gateways to list the webhook as enabled", func() bool {
			return state(one) != "disabled" && state(two) != "disabled"
		})
		if f == two {
			// Disabled again by the next package, then enabled at the first gateway.
			res, err := two.portal.Submit(context.Background(), two.example())
			if err != nil || res.Status != http.StatusCreated {
				t.Fatalf("submit: %v %+v", err, res)
			}
			waitFor(t, "both gateways to list the webhook as disabled again", func() bool {
				return state(one) == "disabled" && state(two) == "disabled"
			})
		}
	}
}

// TestClusterSharesMailboxSessions: two gateways on one JetStream store behind a
// load balancer without sticky sessions. A clerk who logged in at one gateway is
// logged in at the other. (Before, each kept its sessions in its own mailbox.db,
// and every request that went elsewhere showed the login page.)
func TestClusterSharesMailboxSessions(t *testing.T) {
	hash := cheapHash(t, "pruefer-passwort")
	url := natstest.StartSingle(t).URLs()
	cluster := func(cfg *config.Config) {
		cfg.Store.Backend, cfg.NATS.URL = config.StoreJetStream, url
		cfg.Mailbox.Users = []config.MailboxUser{{Name: "anna", Office: DemoOfficeID, PasswordHash: hash}}
	}
	one, two := start(t, cluster), start(t, cluster)
	ctx := context.Background()
	person := mailboxclient.New(one.g.URL() + MailboxPath + "/")
	if page, err := person.Login(ctx, "anna", "pruefer-passwort"); err != nil {
		t.Fatalf("login at the first gateway: %v\n%s", err, page)
	}
	person.Base = two.g.URL() + MailboxPath + "/" // the cookie jar keeps the session cookie (same host)
	if page, err := person.Inbox(ctx, ""); err != nil || !strings.Contains(page, "Posteingang") {
		t.Fatalf("the second gateway does not know the session: %v\n%s", err, page)
	}
}
