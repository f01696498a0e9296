package hub

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
)

func testMaterial() material {
	oc := jwt.NewOperatorClaims("OTEST")
	oc.SystemAccount = "ASYS"
	return material{operator: oc, serverTLS: &tls.Config{}, routeTLS: &tls.Config{}}
}

func validConfig() Config {
	c := Defaults()
	c.Store, c.DataDir = "/s", "/d"
	return c
}

func TestBuildOptions(t *testing.T) {
	m := testMaterial()
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		check func(t *testing.T, c Config)
	}{
		{"defaults", func(*Config) {}, func(t *testing.T, c Config) {
			o, err := buildOptions(c, m)
			if err != nil {
				t.Fatal(err)
			}
			if !o.NoSigs || !o.JetStream || o.JetStreamDomain != "hub" || o.SystemAccount != "ASYS" {
				t.Errorf("core options wrong: NoSigs=%v JetStream=%v domain=%q sys=%q", o.NoSigs, o.JetStream, o.JetStreamDomain, o.SystemAccount)
			}
			if o.Host != "127.0.0.1" || o.Port != 4222 || !o.TLS || o.TLSConfig == nil {
				t.Errorf("client listener = %s:%d tls=%v, want TLS on 127.0.0.1:4222", o.Host, o.Port, o.TLS)
			}
			if o.LeafNode.Port != 7422 || o.LeafNode.TLSConfig == nil || !o.LeafNode.NoAdvertise {
				t.Errorf("leafnode = %+v, want TLS on 7422 without advertising", o.LeafNode)
			}
			if o.Websocket.Port != 7443 || o.Websocket.TLSConfig == nil {
				t.Errorf("websocket = %d tls=%v, want TLS on 7443", o.Websocket.Port, o.Websocket.TLSConfig != nil)
			}
			// Edges are asked for their run's key; clients are not.
			if o.LeafNode.TLSConfig.ClientAuth != tls.RequestClientCert || o.Websocket.TLSConfig.ClientAuth != tls.RequestClientCert || o.TLSConfig.ClientAuth != tls.NoClientCert {
				t.Errorf("client auth: leaf %v websocket %v client %v, want request, request, none",
					o.LeafNode.TLSConfig.ClientAuth, o.Websocket.TLSConfig.ClientAuth, o.TLSConfig.ClientAuth)
			}
			if o.HTTPHost != "127.0.0.1" || o.HTTPPort != 8222 {
				t.Errorf("monitor = %s:%d, want loopback 127.0.0.1:8222", o.HTTPHost, o.HTTPPort)
			}
			if o.Cluster.Port != 0 || len(o.Routes) != 0 {
				t.Errorf("cluster enabled by default: %+v", o.Cluster)
			}
			if o.PingInterval != 10*time.Second || o.MaxPingsOut != 2 {
				t.Errorf("ping = %s x %d", o.PingInterval, o.MaxPingsOut)
			}
		}},
		{"random ports and listeners off", func(c *Config) {
			c.Listen, c.WebsocketListen, c.MonitorListen = "127.0.0.1:0", Off, Off
		}, func(t *testing.T, c Config) {
			o, err := buildOptions(c, m)
			if err != nil {
				t.Fatal(err)
			}
			if o.Port != -1 || o.Websocket.Port != 0 || o.HTTPPort != 0 {
				t.Errorf("port=%d ws=%d http=%d, want -1, 0, 0", o.Port, o.Websocket.Port, o.HTTPPort)
			}
		}},
		{"cluster", func(c *Config) {
			c.Cluster.Listen = "0.0.0.0:6222"
			c.Cluster.Routes = []string{"tls://hub-2:6222", "tls://hub-3:6222"}
		}, func(t *testing.T, c Config) {
			o, err := buildOptions(c, m)
			if err != nil {
				t.Fatal(err)
			}
			if o.Cluster.Name != "tether" || o.Cluster.Port != 6222 || len(o.Routes) != 2 || o.Cluster.TLSConfig == nil {
				t.Errorf("cluster = %+v routes=%v, want mutual-TLS cluster tether on 6222 with 2 routes", o.Cluster, o.Routes)
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
		{"missing store and data", func(c *Config) { c.Store, c.DataDir = "", "" }, []string{"store:", "data_dir:"}},
		{"bad listen", func(c *Config) { c.Listen = "4222" }, []string{"listen:", "host:port"}},
		{"bad port", func(c *Config) { c.LeafListen = "0.0.0.0:99999" }, []string{"leaf_listen:", "0-65535"}},
		{"bad websocket", func(c *Config) { c.WebsocketListen = "nope" }, []string{"websocket_listen:", `"off"`}},
		{"routes without listen", func(c *Config) { c.Cluster.Routes = []string{"tls://h:6222"} }, []string{"cluster.routes: routes need cluster.listen"}},
		{"listen without routes", func(c *Config) { c.Cluster.Listen = "0.0.0.0:6222" }, []string{"cluster.routes:", "route URLs"}},
		{"plaintext route", func(c *Config) {
			c.Cluster.Listen = "0.0.0.0:6222"
			c.Cluster.Routes = []string{"nats://h:6222"}
		}, []string{"cluster.routes[0]", "tls://host:port"}},
		{"bad compression", func(c *Config) { c.Compression = "zip" }, []string{"compression:", "s2_fast"}},
		{"bad ping", func(c *Config) { c.PingInterval = 0 }, []string{"ping_interval:"}},
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
}

func TestNewDoesNoIO(t *testing.T) {
	c := validConfig()
	c.Store = "/nonexistent/store"
	if _, err := New(c, nil); err != nil {
		t.Fatalf("New with a missing store = %v, want nil (the store is read by Start)", err)
	}
}
