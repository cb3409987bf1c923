package config

import (
	"strings"
	"testing"
)

func TestValidatePeers(t *testing.T) {
	c := Default()
	c.GatewayID = "amtsbote-sn"
	c.Peers = []Peer{
		{ID: "amtsbote-by", Lands: []string{"09"}, BaseURL: "https://gw.by.example"},
		{ID: "amtsbote-by", Lands: []string{"09", "17"}, Areas: []string{"0916"}, BaseURL: "ftp://x"},
		{ID: "amtsbote-sn", BaseURL: "https://self"},
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
