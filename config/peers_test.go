package config

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestValidatePeers(t *testing.T) {
	c := Default()
	c.GatewayID = "amtsbote-sn"
	c.Peers = []Peer{
		{ID: "amtsbote-by", Lands: []string{"09"}, BaseURL: "https://gw.by.example"},
		{ID: "amtsbote-by", Lands: []string{"09", "17"}, Areas: []string{"0916"}, BaseURL: "ftp://x"},
		{ID: "amtsbote-sn", BaseURL: "https://self"},
		{ID: "amtsbote-nw", Lands: []string{"05"}, BaseURL: "http://gw.nw.example"},
	}
	c.Offices = map[string]OfficeClient{"peer-09": {}}
	err := c.Validate()
	if err == nil {
		t.Fatal("bad peers accepted")
	}
	for _, want := range []string{
		`peers[1] (amtsbote-by).id: "amtsbote-by" is listed twice`,
		"peers[1] (amtsbote-by).lands[0]: Land 09 is served by amtsbote-by already",
		`peers[1] (amtsbote-by).lands[1]: "17" is not a two-digit Land key`,
		`peers[1] (amtsbote-by).areas[0]: "0916" is not an ARS prefix`,
		`peers[1] (amtsbote-by).base_url: "ftp://x" must be an absolute http(s) URL`,
		`peers[2] (amtsbote-sn).id: "amtsbote-sn" is this gateway's own id`,
		`peers[3] (amtsbote-nw).base_url: "http://gw.nw.example": a peer gateway is reached over https`,
		"peers[2] (amtsbote-sn): lands or areas must name what the peer serves",
		"offices.peer-09: ids starting with peer- name the peer gateways",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
	c.Peers, c.Offices = c.Peers[:1], nil
	if err := c.Validate(); err != nil {
		t.Errorf("good peer: %v", err)
	}
	c.Peers = append(c.Peers, Peer{ID: "amtsbote-muc", Areas: []string{"09162"}, BaseURL: "http://127.0.0.1:1"})
	if p, ok := c.PeerFor("091620000000"); !ok || p.ID != "amtsbote-muc" {
		t.Errorf("longest prefix: %v %v", p.ID, ok)
	}
	if p, ok := c.PeerFor("097610000000"); !ok || p.ID != "amtsbote-by" {
		t.Errorf("Land: %v %v", p.ID, ok)
	}
	if _, ok := c.PeerFor("147130000000"); ok {
		t.Error("Saxony has no peer here")
	}
	if c.Peers[0].Skew() != DefaultPeerClockSkew || c.Peers[0].Poll() != DefaultPeerPollInterval {
		t.Error("defaults")
	}
}

// TestMailboxUserOfAPeerOffice: the peer-<Land> offices hold the packages this
// gateway forwarded to other states. A mailbox user configured for one (a typo,
// a copied entry) logged in and saw every application forwarded to that state —
// service, place, portal, attachment names — and got a decision form for it, so
// such a user is refused like an office id of that form.
func TestMailboxUserOfAPeerOffice(t *testing.T) {
	c := Default()
	c.Peers = []Peer{{ID: "amtsbote-by", Lands: []string{"09"}, BaseURL: "https://gw.by.example"}}
	h, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	c.Mailbox.Users = []MailboxUser{
		{Name: "anna", Office: "dresden-allgemeine-verwaltung", PasswordHash: string(h)},
		{Name: "carl", Office: "peer-09", PasswordHash: string(h)},
	}
	err = c.Validate()
	if want := "mailbox.users[1].office: peer-09 names the peer gateway of another state"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
	if strings.Contains(err.Error(), "users[0]") {
		t.Errorf("an ordinary office refused: %v", err)
	}
	c.Mailbox.Users = c.Mailbox.Users[:1]
	if err := c.Validate(); err != nil {
		t.Errorf("ordinary user: %v", err)
	}
}

// TestPeerBaseURLIsTheGatewaysBase: the client appends /federation/v1/… to
// base_url. One written as the federation endpoint itself (a reading of "where
// its /federation/v1 endpoint is") sent every forwarding to
// /federation/v1/federation/v1/weiterleitungen: 404 from the peer, a permanent
// refusal, and every package for that state held. A base under a path prefix
// (a reverse proxy) stays allowed.
func TestPeerBaseURLIsTheGatewaysBase(t *testing.T) {
	c := Default()
	c.GatewayID = "amtsbote-sn"
	for _, u := range []string{"https://gw.by.example/federation/v1", "https://gw.by.example/federation/v1/", "https://gw.by.example/by/federation/"} {
		c.Peers = []Peer{{ID: "amtsbote-by", Lands: []string{"09"}, BaseURL: u}}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "without /federation") {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"https://gw.by.example", "https://gw.by.example/", "https://proxy.example/by"} {
		c.Peers = []Peer{{ID: "amtsbote-by", Lands: []string{"09"}, BaseURL: u}}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}
