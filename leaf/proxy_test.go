package leaf

import (
	"bytes"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/pki"
)

func mustPool(t *testing.T, pem []byte) *x509.CertPool {
	t.Helper()
	pool, err := pki.Pool(pem)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// TestProxyOptions checks the proxy each config and environment gives the
// link's remote, and the errors for the ones that cannot work.
func TestProxyOptions(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "proxy.creds")
	if err := os.WriteFile(creds, []byte("edge:s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.creds")
	if err := os.WriteFile(open, []byte("edge:s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca, _, err := pki.NewCA("proxy CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "proxy-ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.creds")
	if err := os.WriteFile(bad, []byte("edge\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		edit      func(*Config)
		getenv    func(string) string
		hubs      []string // the bundle's TLS URLs; default testBundle's
		wantURL   string   // the remote's Proxy.URL; "" for direct
		wantUser  string
		wantCA    bool     // the remote verifies the proxy with caFile
		wantErr   []string // substrings of the error, if one is wanted
		wantNoErr bool
	}{
		{name: "none", wantURL: ""},
		{name: "config", edit: func(c *Config) { c.Proxy = "http://proxy.plant:3128" }, wantURL: "http://proxy.plant:3128"},
		{name: "config https with creds", edit: func(c *Config) { c.Proxy, c.ProxyCredentialsFile = "https://proxy.plant", creds },
			wantURL: "https://proxy.plant", wantUser: "edge"},
		{name: "config for websocket", edit: func(c *Config) { c.Proxy, c.Transport = "http://proxy.plant:3128", TransportWebsocket },
			wantURL: "http://proxy.plant:3128"},
		{name: "config beats environment", edit: func(c *Config) { c.Proxy = "http://mine:3128" },
			getenv: env("HTTPS_PROXY", "http://theirs:8080"), wantURL: "http://mine:3128"},
		{name: "config ignores no_proxy", edit: func(c *Config) { c.Proxy = "http://mine:3128" },
			getenv: env("NO_PROXY", "*"), wantURL: "http://mine:3128"},
		{name: "off beats environment", edit: func(c *Config) { c.Proxy = ProxyOff },
			getenv: env("HTTPS_PROXY", "http://theirs:8080"), wantURL: ""},
		{name: "none beats environment", edit: func(c *Config) { c.Proxy = ProxyNone },
			getenv: env("https_proxy", "http://theirs:8080"), wantURL: ""},
		{name: "HTTPS_PROXY", getenv: env("HTTPS_PROXY", "http://theirs:8080"), wantURL: "http://theirs:8080"},
		{name: "https_proxy wins over HTTPS_PROXY", getenv: env("HTTPS_PROXY", "http://upper:1", "https_proxy", "http://lower:2"),
			wantURL: "http://lower:2"},
		{name: "host:port in the environment", getenv: env("HTTPS_PROXY", "theirs:8080"), wantURL: "http://theirs:8080"},
		{name: "environment with creds file", edit: func(c *Config) { c.ProxyCredentialsFile = creds },
			getenv: env("HTTPS_PROXY", "http://theirs:8080"), wantURL: "http://theirs:8080", wantUser: "edge"},
		{name: "environment for websocket", edit: func(c *Config) { c.Transport = TransportWebsocket },
			getenv: env("HTTPS_PROXY", "http://theirs:8080"), wantURL: "http://theirs:8080"},
		{name: "HTTP_PROXY never applies", getenv: env("HTTP_PROXY", "http://plain:80", "http_proxy", "http://plain:80"), wantURL: ""},
		{name: "NO_PROXY exempts every hub", getenv: env("HTTPS_PROXY", "http://theirs:8080", "NO_PROXY", "hub-1,hub-2"), wantURL: ""},
		{name: "no_proxy suffix", getenv: env("HTTPS_PROXY", "http://theirs:8080", "no_proxy", ".example.com"),
			hubs: []string{"tls://a.example.com:7422", "tls://b.example.com:7422"}, wantURL: ""},
		{name: "no_proxy star", getenv: env("HTTPS_PROXY", "http://theirs:8080", "no_proxy", "*"), wantURL: ""},
		{name: "NO_PROXY other hosts", getenv: env("HTTPS_PROXY", "http://theirs:8080", "NO_PROXY", "intranet,10.0.0.0/8"),
			wantURL: "http://theirs:8080"},
		{name: "loopback hubs are never proxied by the environment", getenv: env("HTTPS_PROXY", "http://theirs:8080"),
			hubs: []string{"tls://127.0.0.1:7422", "tls://localhost:7422"}, wantURL: ""},
		{name: "NO_PROXY exempts some hubs", getenv: env("HTTPS_PROXY", "http://theirs:8080", "NO_PROXY", "hub-1"),
			wantErr: []string{"NO_PROXY exempts hubs hub-1:7422", "not hub-2:7422", "proxy key"}},
		{name: "bad environment proxy", getenv: env("https_proxy", "socks5://theirs:1080"),
			wantErr: []string{"environment https_proxy", `scheme "socks5"`, "http://host[:port]"}},
		{name: "credentials in the environment's URL", getenv: env("HTTPS_PROXY", "http://edge:s3cret@theirs:8080"),
			wantErr: []string{"environment HTTPS_PROXY", "proxy_credentials_file"}},
		{name: "creds file open to others", edit: func(c *Config) { c.Proxy, c.ProxyCredentialsFile = "http://p:3128", open },
			wantErr: []string{"proxy_credentials_file", "mode 0644, want 0600"}},
		{name: "creds file without a password", edit: func(c *Config) { c.Proxy, c.ProxyCredentialsFile = "http://p:3128", bad },
			wantErr: []string{"proxy_credentials_file", "want one line user:password"}},
		{name: "creds file missing", edit: func(c *Config) { c.Proxy, c.ProxyCredentialsFile = "http://p:3128", filepath.Join(dir, "nope") },
			wantErr: []string{"proxy_credentials_file", "no such file"}},
		{name: "https with a CA file", edit: func(c *Config) { c.Proxy, c.ProxyCAFile = "https://proxy.plant:3129", caFile },
			wantURL: "https://proxy.plant:3129", wantCA: true},
		{name: "environment https with a CA file", edit: func(c *Config) { c.ProxyCAFile = caFile },
			getenv: env("HTTPS_PROXY", "https://theirs:8443"), wantURL: "https://theirs:8443", wantCA: true},
		{name: "CA file for the environment's http proxy", edit: func(c *Config) { c.ProxyCAFile = caFile },
			getenv: env("https_proxy", "http://theirs:8080"), wantErr: []string{"proxy_ca_file " + caFile, "http://theirs:8080", "from https_proxy", "https://"}},
		{name: "CA file without a certificate", edit: func(c *Config) { c.Proxy, c.ProxyCAFile = "https://p:3129", bad },
			wantErr: []string{"proxy_ca_file " + bad, "no PEM certificate"}},
		{name: "CA file missing", edit: func(c *Config) { c.Proxy, c.ProxyCAFile = "https://p:3129", filepath.Join(dir, "nope") },
			wantErr: []string{"proxy_ca_file", "no such file"}},
		{name: "creds file unused when direct", edit: func(c *Config) { c.ProxyCredentialsFile = filepath.Join(dir, "nope") }, wantURL: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			if tc.edit != nil {
				tc.edit(&c)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("config invalid: %v", err)
			}
			b := testBundle()
			if tc.hubs != nil {
				b.HubURLs = tc.hubs
			}
			getenv := tc.getenv
			if getenv == nil {
				getenv = env()
			}
			o, err := buildOptions(c, b, sign, nil)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			p, err := linkProxyFor(c, o, getenv, slog.New(slog.NewTextHandler(&logs, nil)))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("proxy %v, want an error containing %q", p, tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q shows the proxy's password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := o.LeafNode.Remotes[0]
			p.apply(r)
			if r.Proxy.URL != tc.wantURL || r.Proxy.Username != tc.wantUser {
				t.Errorf("remote proxy = %q user %q, want %q user %q", r.Proxy.URL, r.Proxy.Username, tc.wantURL, tc.wantUser)
			}
			if gotCA := r.Proxy.TLSConfig != nil && r.Proxy.TLSConfig.RootCAs != nil; gotCA != tc.wantCA {
				t.Errorf("remote proxy verified with the CA file: %v, want %v", gotCA, tc.wantCA)
			} else if gotCA && (!r.Proxy.TLSConfig.RootCAs.Equal(mustPool(t, ca.PEM)) || r.Proxy.TLSConfig.InsecureSkipVerify) {
				t.Errorf("remote proxy TLS does not verify against the CA file")
			}
			if tc.wantUser != "" && r.Proxy.Password != "s3cret" {
				t.Errorf("remote proxy password = %q, want the file's", r.Proxy.Password)
			}
			if !r.TLS || r.TLSConfig != nil && r.TLSConfig.InsecureSkipVerify {
				t.Errorf("through a proxy the remote must still verify the hub's TLS: TLS=%v", r.TLS)
			}
			if strings.Contains(logs.String(), "s3cret") {
				t.Errorf("the log shows the proxy's password:\n%s", logs.String())
			}
			if tc.wantURL != "" && !strings.Contains(logs.String(), tc.wantURL) {
				t.Errorf("the log does not name the proxy %s:\n%s", tc.wantURL, logs.String())
			}
		})
	}
}

// TestValidateProxy checks the proxy keys are refused with the key's name
// and what would be valid, and that no password reaches the message.
func TestValidateProxy(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string // empty: valid
	}{
		{"http", func(c *Config) { c.Proxy = "http://proxy:3128" }, nil},
		{"https without port", func(c *Config) { c.Proxy = "https://proxy" }, nil},
		{"ipv6", func(c *Config) { c.Proxy = "http://[::1]:3128" }, nil},
		{"trailing slash", func(c *Config) { c.Proxy = "http://proxy:3128/" }, nil},
		{"off", func(c *Config) { c.Proxy = "off" }, nil},
		{"none", func(c *Config) { c.Proxy = "none" }, nil},
		{"socks", func(c *Config) { c.Proxy = "socks5://proxy:1080" }, []string{"proxy:", `scheme "socks5"`, "http://host[:port] or https://host[:port]", "off or none"}},
		{"no scheme", func(c *Config) { c.Proxy = "proxy:3128" }, []string{"proxy:", "http://host[:port]"}},
		{"no host", func(c *Config) { c.Proxy = "http://:3128" }, []string{"proxy:", "has no host"}},
		{"path", func(c *Config) { c.Proxy = "http://proxy:3128/x" }, []string{"proxy:", "path"}},
		{"bad port", func(c *Config) { c.Proxy = "http://edge:s3cret@proxy:port" }, []string{"proxy:", "not a URL", `invalid port ":port"`}},
		{"opaque", func(c *Config) { c.Proxy = "http:edge:s3cret@proxy" }, []string{"proxy:", "not of the form scheme://host[:port]"}},
		{"credentials", func(c *Config) { c.Proxy = "http://edge:s3cret@proxy:3128" }, []string{"proxy:", "proxy_credentials_file", "xxxxx"}},
		{"https with a CA file", func(c *Config) { c.Proxy, c.ProxyCAFile = "https://proxy:3129", "/ca.pem" }, nil},
		{"CA file, proxy from the environment", func(c *Config) { c.ProxyCAFile = "/ca.pem" }, nil},
		{"CA file for an http proxy", func(c *Config) { c.Proxy, c.ProxyCAFile = "http://proxy:3128", "/ca.pem" },
			[]string{"proxy_ca_file:", `proxy is "http://proxy:3128"`, "https://host:port"}},
		{"CA file but off", func(c *Config) { c.Proxy, c.ProxyCAFile = "none", "/ca.pem" }, []string{"proxy_ca_file:", `proxy is "none"`}},
		{"creds file but off", func(c *Config) { c.Proxy, c.ProxyCredentialsFile = "off", "/p" }, []string{"proxy_credentials_file:", `proxy is "off"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the proxy's password", err)
			}
		})
	}
}

// TestProxyHint checks what the edge says about each refusal nats-server
// reports while dialling through the proxy.
func TestProxyHint(t *testing.T) {
	p, err := resolveProxy(Config{Proxy: "http://proxy:3128"}, nil, env())
	if err != nil {
		t.Fatal(err)
	}
	withCreds := p
	tlsProxy, err := resolveProxy(Config{Proxy: "https://proxy.plant:3129"}, nil, env())
	if err != nil {
		t.Fatal(err)
	}
	withCA := tlsProxy
	withCA.caFile = "/etc/tether/proxy-ca.pem"
	const unknownCA = "proxy TLS handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"
	withCreds.user, withCreds.credFile = "edge", "/etc/tether/proxy.creds"
	for _, tc := range []struct {
		name   string
		p      linkProxy
		msg    string
		want   string
		wantOK bool
	}{
		{"407 without creds", p, "proxy CONNECT failed: 407 Proxy Authentication Required", "wants credentials: put user:password in a 0600 file named by proxy_credentials_file", true},
		{"407 with creds", withCreds, "proxy CONNECT failed: 407 Proxy Authentication Required", "/etc/tether/proxy.creds", true},
		{"401 with creds", withCreds, "proxy CONNECT failed: 401 Unauthorized", "refused the credentials of proxy_credentials_file /etc/tether/proxy.creds", true},
		{"403", p, "proxy CONNECT failed: 403 Access violation", "tinyproxy: ConnectPort", true},
		{"unreachable", p, "failed to connect to proxy: dial tcp 127.0.0.1:1: connect: connection refused", "cannot be reached", true},
		{"hub name not resolved", p, `lookup for host "hub.example.com": lookup hub.example.com: no such host`, "resolve the hubs' names itself", true},
		{"https proxy, system roots", tlsProxy, unknownCA, "not valid for proxy.plant under this system's roots: name the CA that signed it in proxy_ca_file", true},
		{"https proxy, CA file", withCA, unknownCA, "not valid for proxy.plant under the CA of proxy_ca_file /etc/tether/proxy-ca.pem", true},
		{"https to an http proxy", tlsProxy, "proxy TLS handshake failed: tls: first record does not look like a TLS handshake", "does not speak TLS: use http://", true},
		{"not the proxy", p, "dial tcp 127.0.0.1:7422: connect: connection refused", "", false},
		{"direct", linkProxy{}, "proxy CONNECT failed: 407", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hint, ok := tc.p.proxyHint(tc.msg)
			if ok != tc.wantOK || !strings.Contains(hint, tc.want) {
				t.Errorf("proxyHint(%q) = %q, %v; want one containing %q, %v", tc.msg, hint, ok, tc.want, tc.wantOK)
			}
		})
	}
}
