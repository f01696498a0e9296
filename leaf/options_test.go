package leaf

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/sitefile"
)

func testBundle() *sitefile.Bundle {
	return &sitefile.Bundle{
		Version: sitefile.BundleVersion, Edge: "plant-7", Account: "AEDGE", Domain: "edge-plant-7",
		HubURLs:       []string{"tls://hub-1:7422", "tls://hub-2:7422"},
		WebsocketURLs: []string{"wss://hub.example.com:443"},
	}
}

func validConfig() Config {
	c := Defaults()
	c.Bundle, c.DataDir = "/b", "/d"
	return c
}

func sign([]byte) (string, []byte, error) { return "", nil, nil }

func TestBuildOptions(t *testing.T) {
	hubTLS := &tls.Config{MinVersion: tls.VersionTLS12}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		check func(t *testing.T, c Config)
	}{
		{"defaults", func(*Config) {}, func(t *testing.T, c Config) {
			o, err := buildOptions(c, testBundle(), sign, hubTLS)
			if err != nil {
				t.Fatal(err)
			}
			if o.Host != "127.0.0.1" || o.Port != 4222 {
				t.Errorf("client listener %s:%d, want 127.0.0.1:4222", o.Host, o.Port)
			}
			if o.LeafNode.Port != 0 || o.Websocket.Port != 0 || o.HTTPPort != 0 || o.Cluster.Port != 0 || o.MQTT.Port != 0 {
				t.Errorf("edge opens more than its loopback client port: leaf=%d ws=%d http=%d cluster=%d mqtt=%d",
					o.LeafNode.Port, o.Websocket.Port, o.HTTPPort, o.Cluster.Port, o.MQTT.Port)
			}
			if !o.NoSigs || !o.JetStream || o.JetStreamDomain != "edge-plant-7" || o.ServerName != "edge-plant-7" {
				t.Errorf("NoSigs=%v JetStream=%v domain=%q name=%q", o.NoSigs, o.JetStream, o.JetStreamDomain, o.ServerName)
			}
			if o.SyncInterval != time.Second || o.SyncAlways {
				t.Errorf("sync = %s always=%v, want 1s", o.SyncInterval, o.SyncAlways)
			}
			if o.PingInterval != 2*time.Second || o.MaxPingsOut != 2 {
				t.Errorf("ping = %s x %d, want 2s x 2", o.PingInterval, o.MaxPingsOut)
			}
			if len(o.LeafNode.Remotes) != 1 {
				t.Fatalf("remotes = %d, want 1", len(o.LeafNode.Remotes))
			}
			r := o.LeafNode.Remotes[0]
			if len(r.URLs) != 2 || r.URLs[0].String() != "tls://hub-1:7422" || !r.TLS || r.TLSConfig != hubTLS {
				t.Errorf("remote = %v tls=%v, want both hub TLS URLs verified with the bundle CA", r.URLs, r.TLS)
			}
			if r.SignatureCB == nil || r.Credentials != "" {
				t.Errorf("remote must sign with the in-memory creds, not a creds file")
			}
			if r.Compression.Mode != "s2_fast" || !r.IgnoreDiscoveredServers {
				t.Errorf("compression=%q ignoreDiscovered=%v", r.Compression.Mode, r.IgnoreDiscoveredServers)
			}
		}},
		{"websocket", func(c *Config) { c.Transport = TransportWebsocket }, func(t *testing.T, c Config) {
			o, err := buildOptions(c, testBundle(), sign, hubTLS)
			if err != nil {
				t.Fatal(err)
			}
			if u := o.LeafNode.Remotes[0].URLs; len(u) != 1 || u[0].Scheme != "wss" {
				t.Errorf("websocket remote URLs = %v, want the bundle's wss URL", u)
			}
		}},
		{"websocket without urls", func(c *Config) { c.Transport = TransportWebsocket }, func(t *testing.T, c Config) {
			b := testBundle()
			b.WebsocketURLs = nil
			_, err := buildOptions(c, b, sign, hubTLS)
			if err == nil || !strings.Contains(err.Error(), "websocket_urls") {
				t.Errorf("err = %v, want one naming websocket_urls", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("config invalid: %v", err)
			}
			tc.check(t, c)
		})
	}
}

func TestValidateNamesFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"missing bundle and data", func(c *Config) { c.Bundle, c.DataDir = "", "" }, []string{"bundle:", "data_dir:"}},
		{"public listen", func(c *Config) { c.Listen = "0.0.0.0:4222" }, []string{"listen:", "allow_remote_clients"}},
		{"bad transport", func(c *Config) { c.Transport = "quic" }, []string{"transport:", `"tls"`, `"websocket"`}},
		{"bad compression", func(c *Config) { c.Compression = "gzip" }, []string{"compression:"}},
		{"bad sync", func(c *Config) { c.SyncInterval = 0 }, []string{"sync_interval:"}},
		{"no budget refit", func(c *Config) { c.BudgetRefitInterval = 0 }, []string{"budget_refit_interval:"}},
		{"negative idle trim", func(c *Config) { c.IdleTrimInterval = -time.Second }, []string{"idle_trim_interval:", "0 (off) or a positive duration"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	c := validConfig()
	c.Listen, c.AllowRemoteClients = "0.0.0.0:4222", true
	if err := c.Validate(); err != nil {
		t.Errorf("public listen with allow_remote_clients: %v", err)
	}
}
