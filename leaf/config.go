package leaf

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tether-fabric/tether/internal/netaddr"
)

// Transports an edge can use to reach the hubs.
const (
	TransportTLS       = "tls"
	TransportWebsocket = "websocket"
)

// Config configures an edge. The zero value of a field means its default
// where a default is stated.
type Config struct {
	// Bundle is the path of the edge bundle written by 'tether edge add'.
	// Required; it must be mode 0600.
	Bundle string `mapstructure:"bundle"`
	// DataDir holds the edge's JetStream store. Required.
	DataDir string `mapstructure:"data_dir"`
	// Listen is the local client address. Default "127.0.0.1:4222";
	// port 0 picks a free port. A non-loopback host needs AllowRemoteClients.
	Listen string `mapstructure:"listen"`
	// AllowRemoteClients permits Listen on a non-loopback address. Default
	// false: nothing at the site but this host can reach the edge.
	AllowRemoteClients bool `mapstructure:"allow_remote_clients"`
	// Transport is how the edge reaches the hubs: "tls" (leafnode port,
	// default) or "websocket" (WebSocket-TLS, e.g. on 443 through proxies).
	Transport string `mapstructure:"transport"`
	// Proxy is the HTTP(S) forward proxy the edge dials the hubs through
	// (HTTP CONNECT; the TLS to the hub stays end to end), for both
	// transports: http://host[:port] or https://host[:port], without
	// credentials. Default "" (unset): the environment's https_proxy or
	// HTTPS_PROXY, minus the hubs no_proxy or NO_PROXY exempts (http_proxy
	// never applies: the hubs are only dialled over TLS). "off" or "none"
	// dials the hubs directly whatever the environment says.
	Proxy string `mapstructure:"proxy"`
	// ProxyCredentialsFile is a file (mode 0600) holding "user:password"
	// for the proxy's basic authentication. Default "": no credentials.
	ProxyCredentialsFile string `mapstructure:"proxy_credentials_file"`
	// ProxyCAFile is a PEM file of the CA certificates that verify an
	// https:// proxy's certificate (the TLS from the edge to the proxy,
	// around the tunnel; the hubs are still verified against the
	// bundle's CA). Default "": the system's roots. Only for an https
	// proxy.
	ProxyCAFile string `mapstructure:"proxy_ca_file"`
	// PingInterval is how often the link is pinged when idle. Default 2s;
	// with MaxPingsOut 2 a dead link is noticed within about 6s.
	PingInterval time.Duration `mapstructure:"ping_interval"`
	// MaxPingsOut is how many pings may go unanswered. Default 2.
	MaxPingsOut int `mapstructure:"max_pings_out"`
	// ReconnectInterval is the base delay between attempts to reach a hub;
	// each attempt waits between it and twice it (jitter). Default 2s.
	ReconnectInterval time.Duration `mapstructure:"reconnect_interval"`
	// SyncInterval bounds how long acknowledged JetStream data may sit in
	// the OS page cache before fsync: what a power loss can cost. Default 1s.
	SyncInterval time.Duration `mapstructure:"sync_interval"`
	// SyncAlways fsyncs before every acknowledgement (slow, lossless).
	SyncAlways bool `mapstructure:"sync_always"`
	// Compression of the link: off, s2_fast, s2_better, s2_best, s2_auto.
	// Default "s2_fast": edges usually sit behind metered or slow links,
	// and even on loopback s2_fast beat "off" in our benchmarks (fewer,
	// larger TLS records); see docs/BENCHMARKS.md before changing it.
	Compression string `mapstructure:"compression"`
	// BufferMaxBytes is the disk budget of the telemetry buffer. Default
	// 1 GiB. JetStream's own store limit is set just above it, so a full
	// buffer never disables JetStream. The budget in effect is at most 3/4
	// of the space the filesystem has for the store (free space plus what
	// the store already holds), fitted at start and every
	// BudgetRefitInterval, so the buffer fills up (a clean "maximum bytes
	// exceeded" for the publisher) before the disk does (which would make
	// JetStream stop writing).
	BufferMaxBytes int64 `mapstructure:"buffer_max_bytes"`
	// BufferFull is what happens when the buffer is full: "reject"
	// (default: the local publisher gets an error, nothing stored is
	// dropped) or "drop_oldest" (the oldest buffered messages make room).
	BufferFull string `mapstructure:"buffer_full"`
	// BudgetRefitInterval is how often the running edge measures its data
	// dir's filesystem again and refits the buffer's budget to it: cut
	// when other programs fill the filesystem (never below what the buffer
	// holds, unless BufferFull is drop_oldest), raised again, up to
	// BufferMaxBytes, when they free it. Default 10s; it must be > 0.
	BudgetRefitInterval time.Duration `mapstructure:"budget_refit_interval"`
	// StatusInterval is how often the edge reports its status (link,
	// backlog, last error) to the cloud while linked; it also reports at
	// once on link-up and when stalled, full, drained or the last error
	// change. Default 5s. The fleet view calls an edge stalled when its
	// last report is older than 3 intervals while its link is up.
	StatusInterval time.Duration `mapstructure:"status_interval"`
	// Gateway is the service gateway's configuration file: the JSON of a
	// policy.Gateway (exposed services, grants and their limits), read at
	// start and again whenever it changes. Empty: the edge exposes no
	// service (every call from the fabric is answered "no such service").
	Gateway string `mapstructure:"gateway"`
	// StallAfter is how long a backlog may go without anything reaching
	// the cloud, while linked, before the transfer is called stalled.
	// Default 15s.
	StallAfter time.Duration `mapstructure:"stall_after"`
	// LinkWatchdog: when the link is down and the embedded server has
	// made no attempt to reach a hub for this long, its connect loop has
	// stopped (nats-server #7615; seen here when 200 edges attached at
	// once) and the edge stops with an error, for its supervisor (systemd,
	// Docker) to restart it; the buffer is on disk. Default 1m; 0 turns it
	// off. It must exceed twice the reconnect interval plus the dial time.
	LinkWatchdog time.Duration `mapstructure:"link_watchdog"`
	// IdleTrimInterval is how often the `tether leaf` process trims its
	// memory while it is idle (the Go runtime ran at most one collection
	// in the interval): it collects its garbage, returns the free heap to
	// the OS and releases the pages of its executable that it mapped since
	// (an idle edge's RSS would otherwise creep up for minutes). Default
	// 30s; 0 turns it off. A busy edge is never trimmed. It is a setting
	// of the process, applied by the tether binary, not by an embedded
	// Server; GOGC and GOMEMLIMIT in the environment apply as usual.
	IdleTrimInterval time.Duration `mapstructure:"idle_trim_interval"`
}

// Buffer-full behaviours.
const (
	BufferReject     = "reject"
	BufferDropOldest = "drop_oldest"
)

// Defaults returns the default configuration.
func Defaults() Config {
	return Config{
		Listen:              "127.0.0.1:4222",
		Transport:           TransportTLS,
		PingInterval:        2 * time.Second,
		MaxPingsOut:         2,
		ReconnectInterval:   2 * time.Second,
		SyncInterval:        time.Second,
		Compression:         "s2_fast",
		BufferMaxBytes:      1 << 30,
		BufferFull:          BufferReject,
		BudgetRefitInterval: 10 * time.Second,
		StatusInterval:      5 * time.Second,
		StallAfter:          15 * time.Second,
		LinkWatchdog:        time.Minute,
		IdleTrimInterval:    30 * time.Second,
	}
}

var compressionModes = map[string]bool{
	"off": true, "s2_fast": true, "s2_better": true, "s2_best": true, "s2_auto": true, "s2_uncompressed": true,
}

// Validate reports every problem in c, each naming its field.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if c.Bundle == "" {
		add("bundle", "must name the bundle file written by 'tether edge add'")
	}
	if c.DataDir == "" {
		add("data_dir", "must name a directory for the edge's store")
	}
	if host, _, err := netaddr.Split(c.Listen); err != nil {
		add("listen", "%v", err)
	} else if !netaddr.IsLoopback(host) && !c.AllowRemoteClients {
		add("listen", "%q is not a loopback address; set allow_remote_clients to accept clients from the network", c.Listen)
	}
	if c.Transport != TransportTLS && c.Transport != TransportWebsocket {
		add("transport", "%q: want %q or %q", c.Transport, TransportTLS, TransportWebsocket)
	}
	if err := validateProxy(c.Proxy); err != nil {
		add("proxy", "%v", err)
	}
	if c.ProxyCAFile != "" && (proxyOff(c.Proxy) || strings.HasPrefix(c.Proxy, "http://")) {
		add("proxy_ca_file", "set, but proxy is %q: the CA verifies an https:// proxy (unset proxy_ca_file, or set proxy to https://host:port)", c.Proxy)
	}
	if c.ProxyCredentialsFile != "" && proxyOff(c.Proxy) {
		add("proxy_credentials_file", "set, but proxy is %q: the hubs are dialled directly (unset proxy_credentials_file, or set proxy)", c.Proxy)
	}
	if c.PingInterval <= 0 {
		add("ping_interval", "must be > 0, got %s", c.PingInterval)
	}
	if c.MaxPingsOut <= 0 {
		add("max_pings_out", "must be > 0, got %d", c.MaxPingsOut)
	}
	if c.ReconnectInterval <= 0 {
		add("reconnect_interval", "must be > 0, got %s", c.ReconnectInterval)
	}
	if c.SyncInterval <= 0 && !c.SyncAlways {
		add("sync_interval", "must be > 0, got %s", c.SyncInterval)
	}
	if c.BufferMaxBytes < 1<<20 {
		add("buffer_max_bytes", "must be at least 1048576 (1 MiB), got %d", c.BufferMaxBytes)
	}
	if c.BufferFull != BufferReject && c.BufferFull != BufferDropOldest {
		add("buffer_full", "%q: want %q or %q", c.BufferFull, BufferReject, BufferDropOldest)
	}
	if c.BudgetRefitInterval <= 0 {
		add("budget_refit_interval", "must be > 0, got %s", c.BudgetRefitInterval)
	}
	if c.IdleTrimInterval < 0 {
		add("idle_trim_interval", "must be 0 (off) or a positive duration, got %s", c.IdleTrimInterval)
	}
	if c.LinkWatchdog < 0 || c.LinkWatchdog > 0 && c.LinkWatchdog <= 2*c.ReconnectInterval+linkDialTimeout {
		add("link_watchdog", "must be 0 (off) or more than twice reconnect_interval plus %s, got %s", time.Duration(linkDialTimeout), c.LinkWatchdog)
	}
	if c.StatusInterval <= 0 {
		add("status_interval", "must be > 0, got %s", c.StatusInterval)
	}
	if c.StallAfter <= 0 {
		add("stall_after", "must be > 0, got %s", c.StallAfter)
	}
	if !compressionModes[c.Compression] {
		add("compression", "%q: want one of off, s2_fast, s2_better, s2_best, s2_auto", c.Compression)
	}
	return errors.Join(errs...)
}
