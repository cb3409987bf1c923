package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: an operator's configuration file and environment are trusted, but a
// typo must end in an error that names it, never a panic of the gateway at start.
// Whatever the YAML and the AMTSBOTE_* variables hold, Load, Resolve and Validate
// return.
func FuzzLoad(f *testing.F) {
	f.Add("listen: 127.0.0.1:8080\ndata_dir: ./data\n", "AMTSBOTE_LOG_LEVEL=debug")
	f.Add("offices:\n  amt-a:\n    token: x\n    channels: [{name: webhook, url: http://o.invalid/hook, secret: whsec_x}]\n", "")
	f.Add("delivery:\n  attempt_timeout: 2s\n  workers: -1\n", "AMTSBOTE_DELIVERY_ATTEMPT_TIMEOUT=x")
	f.Add("store:\n  backend: jetstream\nnats:\n  replicas: 3\n", "AMTSBOTE_NATS_URL=nats://a:4222\nAMTSBOTE_STORE_BATCH_SIZE=99999999999999999999")
	f.Add("peers: [{id: x, lands: ['09'], base_url: ':'}]\n", "AMTSBOTE_LIMITS_MAX_BODY_BYTES=-5")
	f.Fuzz(func(t *testing.T, yamlText, env string) {
		path := filepath.Join(t.TempDir(), "amtsbote.yaml")
		if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, strings.Split(env, "\n"))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a text")
			}
			return
		}
		c.Resolve()
		_ = c.Validate()
	})
}
