package hub

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/tether-fabric/tether/internal/netaddr"
)

// Config configures a hub. The zero value of a field means its default
// where a default is stated.
type Config struct {
	// Name is the server name, unique in the cluster. Default "hub-1".
	Name string `mapstructure:"name"`
	// Store is the directory written by 'tether init'. Required.
	Store string `mapstructure:"store"`
	// DataDir holds JetStream data and the account resolver. Required.
	DataDir string `mapstructure:"data_dir"`
	// Listen is the client (TLS) address. Default "127.0.0.1:4222";
	// port 0 picks a free port.
	Listen string `mapstructure:"listen"`
	// LeafListen is the leafnode (TLS) address. Default "0.0.0.0:7422".
	LeafListen string `mapstructure:"leaf_listen"`
	// WebsocketListen is the WebSocket-TLS address for edges behind
	// proxies. Default "0.0.0.0:7443"; "off" disables it.
	WebsocketListen string `mapstructure:"websocket_listen"`
	// MonitorListen is the HTTP monitoring address (/healthz, /varz, ...).
	// Default "127.0.0.1:8222"; "off" disables it.
	MonitorListen string `mapstructure:"monitor_listen"`
	// Cluster configures routes between hubs. Empty Listen: no cluster.
	Cluster ClusterConfig `mapstructure:"cluster"`
	// PingInterval is how often idle connections are pinged. Default 10s;
	// a dead edge is noticed after PingInterval*(MaxPingsOut+1).
	PingInterval time.Duration `mapstructure:"ping_interval"`
	// MaxPingsOut is how many pings may go unanswered. Default 2.
	MaxPingsOut int `mapstructure:"max_pings_out"`
	// LameDuck is how long Shutdown spends moving clients and edges off
	// this hub before it stops. Default 0: stop at once.
	LameDuck time.Duration `mapstructure:"lame_duck"`
	// Compression is the leafnode compression mode offered to edges:
	// off, accept, s2_fast, s2_better, s2_best, s2_auto. Default "accept":
	// each edge chooses for its own link.
	Compression string `mapstructure:"compression"`
	// TelemetryReplicas is the CLOUD telemetry stream's replica count.
	// Default 0: 3 in a cluster of 3 or more hubs, else 1.
	TelemetryReplicas int `mapstructure:"telemetry_replicas"`
	// TelemetryDedupWindow is how long message ids are remembered to drop
	// duplicates re-sent by edges after a lost acknowledgement. Default
	// 2m: the map costs ~112 B of hub memory per message in the window
	// (measured), so 10m at 23k msg/s would hold ~1.5 GB.
	TelemetryDedupWindow time.Duration `mapstructure:"telemetry_dedup_window"`
	// TelemetryMaxAge bounds how long telemetry is kept. Default 0: forever
	// (until consumed and removed by cloud applications' own policy).
	TelemetryMaxAge time.Duration `mapstructure:"telemetry_max_age"`
	// CommandTTL is how long a command waits for an offline edge before it
	// expires. Default 24h.
	CommandTTL time.Duration `mapstructure:"command_ttl"`
	// CommandMaxBytes bounds the command queue of all edges; when full, new
	// commands are refused. Default 1 GiB.
	CommandMaxBytes int64 `mapstructure:"command_max_bytes"`
}

// ClusterConfig configures the hub cluster.
type ClusterConfig struct {
	// Name of the cluster. Default "tether".
	Name string `mapstructure:"name"`
	// Listen is the route address, e.g. "0.0.0.0:6222". Empty: no cluster.
	Listen string `mapstructure:"listen"`
	// Routes are the other hubs' route URLs, e.g. "tls://hub-2:6222".
	Routes []string `mapstructure:"routes"`
}

// Off disables an optional listener.
const Off = "off"

// Defaults returns the default configuration.
func Defaults() Config {
	return Config{
		Name:            "hub-1",
		Listen:          "127.0.0.1:4222",
		LeafListen:      "0.0.0.0:7422",
		WebsocketListen: "0.0.0.0:7443",
		MonitorListen:   "127.0.0.1:8222",
		Cluster:         ClusterConfig{Name: "tether"},
		PingInterval:    10 * time.Second,
		MaxPingsOut:     2,
		Compression:     "accept",

		TelemetryDedupWindow: 2 * time.Minute,
		CommandTTL:           24 * time.Hour,
		CommandMaxBytes:      1 << 30,
	}
}

var compressionModes = map[string]bool{
	"off": true, "accept": true, "s2_fast": true, "s2_better": true, "s2_best": true, "s2_auto": true, "s2_uncompressed": true,
}

// Validate reports every problem in c, each naming its field.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if c.Name == "" {
		add("name", "must not be empty")
	}
	if c.Store == "" {
		add("store", "must name the directory written by 'tether init'")
	}
	if c.DataDir == "" {
		add("data_dir", "must name a directory for JetStream data")
	}
	for _, l := range []struct{ field, addr string }{
		{"listen", c.Listen}, {"leaf_listen", c.LeafListen},
	} {
		if _, _, err := netaddr.Split(l.addr); err != nil {
			add(l.field, "%v", err)
		}
	}
	for _, l := range []struct{ field, addr string }{
		{"websocket_listen", c.WebsocketListen}, {"monitor_listen", c.MonitorListen},
	} {
		if l.addr == Off {
			continue
		}
		if _, _, err := netaddr.Split(l.addr); err != nil {
			add(l.field, "%v (or %q to disable)", err, Off)
		}
	}
	if c.Cluster.Listen != "" {
		if _, _, err := netaddr.Split(c.Cluster.Listen); err != nil {
			add("cluster.listen", "%v", err)
		}
		if c.Cluster.Name == "" {
			add("cluster.name", "must not be empty")
		}
	}
	for i, r := range c.Cluster.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "tls" || u.Port() == "" {
			add(fmt.Sprintf("cluster.routes[%d]", i), "%q: want tls://host:port", r)
		}
	}
	if len(c.Cluster.Routes) > 0 && c.Cluster.Listen == "" {
		add("cluster.routes", "routes need cluster.listen")
	}
	if c.Cluster.Listen != "" && len(c.Cluster.Routes) == 0 {
		add("cluster.routes", "a JetStream cluster needs the route URLs of its hubs (tls://host:port each; listing this hub too is fine)")
	}
	if c.PingInterval <= 0 {
		add("ping_interval", "must be > 0, got %s", c.PingInterval)
	}
	if c.MaxPingsOut <= 0 {
		add("max_pings_out", "must be > 0, got %d", c.MaxPingsOut)
	}
	if c.LameDuck < 0 {
		add("lame_duck", "must be >= 0, got %s", c.LameDuck)
	}
	if c.TelemetryReplicas < 0 || c.TelemetryReplicas > 5 {
		add("telemetry_replicas", "want 0 (auto) to 5, got %d", c.TelemetryReplicas)
	}
	if c.TelemetryDedupWindow <= 0 {
		add("telemetry_dedup_window", "must be > 0, got %s", c.TelemetryDedupWindow)
	}
	if c.CommandTTL <= 0 {
		add("command_ttl", "must be > 0, got %s", c.CommandTTL)
	}
	if c.CommandMaxBytes < 1<<20 {
		add("command_max_bytes", "must be at least 1048576 (1 MiB), got %d", c.CommandMaxBytes)
	}
	if c.TelemetryMaxAge < 0 {
		add("telemetry_max_age", "must be >= 0, got %s", c.TelemetryMaxAge)
	}
	if !compressionModes[c.Compression] {
		add("compression", "%q: want one of off, accept, s2_fast, s2_better, s2_best, s2_auto", c.Compression)
	}
	return errors.Join(errs...)
}
