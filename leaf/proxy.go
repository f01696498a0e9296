package leaf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/net/http/httpproxy"

	"github.com/tether-fabric/tether/internal/securefile"
)

// Values of Config.Proxy that dial the hubs directly, whatever the
// environment says.
const (
	ProxyOff  = "off"
	ProxyNone = "none"
)

// proxyFromConfig is linkProxy.from for a proxy set by Config.Proxy.
const proxyFromConfig = "config key proxy"

// proxyWant is what a valid proxy URL looks like, for error messages.
const proxyWant = "want http://host[:port] or https://host[:port] (an HTTP forward proxy that allows CONNECT), off or none"

func proxyOff(v string) bool { return v == ProxyOff || v == ProxyNone }

// parseProxyURL checks a forward proxy's URL: http or https, a host, an
// optional port, nothing else. Credentials in it are refused (they would
// show in ps, config files and logs): they belong in a 0600 file.
func parseProxyURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// The url.Error quotes the whole URL, credentials included: only
		// its cause is shown.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("not a URL (%v); %s", err, proxyWant)
	}
	switch {
	case u.Opaque != "" && strings.Contains(raw, "@"): // scheme:user:password@host
		return nil, fmt.Errorf("not of the form scheme://host[:port]; %s", proxyWant)
	case u.Opaque != "": // host:port
		return nil, fmt.Errorf("%q is not of the form scheme://host[:port]; %s", raw, proxyWant)
	case u.User != nil:
		return nil, fmt.Errorf("%q holds credentials: put user:password in proxy_credentials_file (mode 0600) instead", u.Redacted())
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q: scheme %q; %s", raw, u.Scheme, proxyWant)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%q has no host; %s", raw, proxyWant)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%q has a path, query or fragment; %s", raw, proxyWant)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// validateProxy checks Config.Proxy.
func validateProxy(v string) error {
	if v == "" || proxyOff(v) {
		return nil
	}
	_, err := parseProxyURL(v)
	return err
}

// linkProxy is the forward proxy the edge dials the hubs through: the
// proxy sees a CONNECT to the hub's host:port and then only the TLS the
// edge speaks with the hub, end to end.
type linkProxy struct {
	url *url.URL // nil: the hubs are dialled directly
	// from is proxyFromConfig or the environment variable that set url.
	from     string
	credFile string
	user     string
	password string
	// caFile and tls verify an https proxy (nil tls: the system's roots).
	caFile string
	tls    *tls.Config
}

// String names the proxy without its credentials, or "direct".
func (p linkProxy) String() string {
	if p.url == nil {
		return "direct"
	}
	return p.url.String()
}

// LogValue never shows the password.
func (p linkProxy) LogValue() slog.Value {
	if p.url == nil {
		return slog.StringValue("direct")
	}
	auth := "none"
	if p.user != "" {
		auth = "basic, user " + p.user + " from " + p.credFile
	}
	attrs := []slog.Attr{slog.String("url", p.url.String()), slog.String("from", p.from), slog.String("auth", auth)}
	if p.url.Scheme == "https" {
		attrs = append(attrs, slog.String("ca", p.caName()))
	}
	return slog.GroupValue(attrs...)
}

// apply makes the remote dial its hubs through p (nats-server's own HTTP
// CONNECT tunnel; the remote's TLS runs inside it).
func (p linkProxy) apply(r *server.RemoteLeafOpts) {
	if p.url == nil {
		return
	}
	r.Proxy.URL = p.url.String()
	r.Proxy.Username, r.Proxy.Password = p.user, p.password
	r.Proxy.TLSConfig = p.tls
}

// caName says what verifies an https proxy.
func (p linkProxy) caName() string {
	if p.caFile != "" {
		return "proxy_ca_file " + p.caFile
	}
	return "the system's roots"
}

// withCA makes an https proxy in use verified against the CA certificates
// of file (PEM); "" keeps the system's roots. A CA file for an http proxy
// (one set by the environment: Validate refuses a configured one) is an
// error: the edge would not speak TLS to it.
func (p linkProxy) withCA(file string) (linkProxy, error) {
	if p.url == nil || file == "" {
		return p, nil
	}
	if p.url.Scheme != "https" {
		return p, fmt.Errorf("proxy_ca_file %s: set, but the proxy %s (from %s) is http://, which the edge does not speak TLS to; use https://, or unset proxy_ca_file", file, p.url, p.from)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return p, fmt.Errorf("proxy_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return p, fmt.Errorf("proxy_ca_file %s: no PEM certificate in it; want the CA certificate(s) that signed the proxy's certificate", file)
	}
	p.caFile = file
	p.tls = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return p, nil
}

// firstEnv returns the first of names that getenv has a value for.
func firstEnv(getenv func(string) string, names ...string) (name, value string) {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return n, v
		}
	}
	return "", ""
}

// resolveProxy picks the proxy for hubs, the remote's URLs (tls:// or
// wss://). An explicit c.Proxy applies to every hub; "off"/"none" to none.
// Unset, https_proxy (or HTTPS_PROXY) applies, for both transports: both
// are TLS to the hub, tunnelled like an https:// request. http_proxy is
// for plain http and never applies. no_proxy (or NO_PROXY) exempts hubs
// from the environment's proxy, with Go's net/http rules (a name matches
// its subdomains, CIDR blocks, "*"; localhost and loopback addresses are
// always direct). The edge dials all its hubs one way: a no_proxy that
// exempts some of them but not all is an error. It reads no files: the
// credentials are added by withCredentials.
func resolveProxy(c Config, hubs []*url.URL, getenv func(string) string) (linkProxy, error) {
	switch {
	case proxyOff(c.Proxy):
		return linkProxy{}, nil
	case c.Proxy != "":
		u, err := parseProxyURL(c.Proxy)
		if err != nil {
			return linkProxy{}, fmt.Errorf("proxy: %w", err)
		}
		return linkProxy{url: u, from: proxyFromConfig}, nil
	}
	name, raw := firstEnv(getenv, "https_proxy", "HTTPS_PROXY")
	if raw == "" {
		return linkProxy{}, nil
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw // host:port, as net/http reads it
	}
	u, err := parseProxyURL(raw)
	if err != nil {
		return linkProxy{}, fmt.Errorf("environment %s: %w (or set the leaf's proxy key, or proxy off)", name, err)
	}
	noName, noProxy := firstEnv(getenv, "no_proxy", "NO_PROXY")
	use := (&httpproxy.Config{HTTPSProxy: u.String(), NoProxy: noProxy}).ProxyFunc()
	var direct, proxied []string
	for _, h := range hubs {
		if pu, _ := use(&url.URL{Scheme: "https", Host: h.Host}); pu != nil {
			proxied = append(proxied, h.Host)
		} else {
			direct = append(direct, h.Host)
		}
	}
	if len(proxied) == 0 {
		return linkProxy{}, nil
	}
	if len(direct) > 0 {
		return linkProxy{}, fmt.Errorf("environment %s exempts hubs %s from proxy %s (from %s) but not %s: the edge dials all its hubs one way; set the leaf's proxy key to the proxy, or to off",
			noName, strings.Join(direct, ", "), u, name, strings.Join(proxied, ", "))
	}
	return linkProxy{url: u, from: name}, nil
}

// withCredentials adds the basic-auth credentials read from file (mode
// 0600, one line "user:password") to a proxy in use.
func (p linkProxy) withCredentials(file string) (linkProxy, error) {
	if p.url == nil || file == "" {
		return p, nil
	}
	data, err := securefile.Read(file)
	if err != nil {
		return p, fmt.Errorf("proxy_credentials_file: %w", err)
	}
	line := strings.TrimRight(string(data), "\r\n")
	user, password, ok := strings.Cut(line, ":")
	if !ok || user == "" || password == "" || strings.ContainsAny(line, "\r\n") {
		return p, fmt.Errorf("proxy_credentials_file %s: want one line user:password", file)
	}
	p.user, p.password, p.credFile = user, password, file
	return p, nil
}

// proxyHint explains a failure nats-server reported while dialling a hub
// through p (its messages, as of v2.15.2: "failed to connect to proxy",
// "proxy TLS handshake failed", "proxy CONNECT failed: <status>", and a
// hub name the edge cannot resolve); ok is false when msg is not about the
// proxy.
func (p linkProxy) proxyHint(msg string) (hint string, ok bool) {
	if p.url == nil {
		return "", false
	}
	if strings.Contains(msg, "lookup for host") {
		// nats-server (v2.15.2) looks the hub's name up on the edge before
		// it dials the proxy, and gives up the attempt if that fails,
		// although the CONNECT names the host for the proxy to resolve.
		return "the edge must resolve the hubs' names itself, even through a proxy (DNS or /etc/hosts): the embedded nats-server looks them up before it dials the proxy", true
	}
	if !strings.Contains(msg, "proxy") {
		return "", false
	}
	switch {
	case strings.Contains(msg, "CONNECT failed: 407"), strings.Contains(msg, "CONNECT failed: 401"):
		// 407 asks for credentials; some proxies (tinyproxy) answer wrong
		// ones with 401.
		if p.user == "" {
			return "the proxy wants credentials: put user:password in a 0600 file named by proxy_credentials_file", true
		}
		return "the proxy refused the credentials of proxy_credentials_file " + p.credFile, true
	case strings.Contains(msg, "CONNECT failed: 403"), strings.Contains(msg, "CONNECT failed: 405"):
		return "the proxy forbids a tunnel to the hub's host and port: ask for CONNECT to it to be allowed (squid: SSL_ports/http_access, tinyproxy: ConnectPort)", true
	case strings.Contains(msg, "CONNECT failed"):
		return "the proxy refused the tunnel to the hub", true
	case strings.Contains(msg, "failed to connect to proxy"):
		return "the proxy cannot be reached: check the proxy setting (" + p.from + ") and the network to it", true
	case strings.Contains(msg, "TLS handshake") && strings.Contains(msg, "does not look like a TLS handshake"):
		return "the proxy does not speak TLS: use http:// for it", true
	case strings.Contains(msg, "TLS handshake") && p.caFile != "":
		return "the https proxy's certificate is not valid for " + p.url.Hostname() + " under the CA of proxy_ca_file " + p.caFile + ": name the CA that signed it", true
	case strings.Contains(msg, "TLS handshake"):
		return "the https proxy's certificate is not valid for " + p.url.Hostname() + " under this system's roots: name the CA that signed it in proxy_ca_file", true
	}
	return "check the proxy (" + p.from + ")", true
}

// linkProxyFor resolves the proxy of the remote in o (built from c) and
// reads its credentials; it logs which proxy the edge uses and why.
func linkProxyFor(c Config, o *server.Options, getenv func(string) string, log *slog.Logger) (linkProxy, error) {
	p, err := resolveProxy(c, o.LeafNode.Remotes[0].URLs, getenv)
	if err != nil {
		return p, err
	}
	if p, err = p.withCredentials(c.ProxyCredentialsFile); err != nil {
		return p, err
	}
	if p, err = p.withCA(c.ProxyCAFile); err != nil {
		return p, err
	}
	if p.url != nil {
		log.Info("dialling the hubs through a forward proxy", "proxy", p)
	} else if name, _ := firstEnv(getenv, "http_proxy", "HTTP_PROXY"); name != "" && c.Proxy == "" {
		if hn, _ := firstEnv(getenv, "https_proxy", "HTTPS_PROXY"); hn == "" {
			log.Info("dialling the hubs directly: " + name + " is set, but it is for plain http; the hubs are dialled over TLS, through https_proxy or the leaf's proxy key")
		}
	}
	return p, nil
}

// proxyURL is the proxy for Link, "" when the link is direct.
func (s *Server) proxyURL() string {
	if s.proxy.url == nil {
		return ""
	}
	return s.proxy.url.String()
}
