package leaf

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/netaddr"
	"github.com/tether-fabric/tether/internal/sitefile"
)

// Link timeouts for slow links (satellite, LTE); nats-server's 1s default
// cannot connect over a 500ms link (nats-server #5417).
const (
	linkDialTimeout = 5e9
	linkInfoTimeout = 5e9
)

// buildOptions turns a validated Config and a loaded bundle into
// nats-server options. It does no I/O.
func buildOptions(c Config, b *sitefile.Bundle, sign server.SignatureHandler, hubTLS *tls.Config) (*server.Options, error) {
	o := &server.Options{
		ServerName:      contract.EdgeDomain(b.Edge),
		NoSigs:          true,
		PingInterval:    c.PingInterval,
		MaxPingsOut:     c.MaxPingsOut,
		JetStream:       true,
		JetStreamDomain: b.Domain,
		StoreDir:        filepath.Join(c.DataDir, "jetstream"),
		SyncInterval:    c.SyncInterval,
		SyncAlways:      c.SyncAlways,
		// Room for the buffer at its configured budget plus JetStream's own
		// metadata: the buffer stream, not the server, is what fills up.
		// The budget in effect may be lower (fitted to the filesystem) but
		// is raised back up to the configured one at run time, which the
		// server refuses unless its limit reserves room for it.
		JetStreamMaxStore: c.BufferMaxBytes + c.BufferMaxBytes/10 + 64<<20,
		// No subject the edge takes may be too long for the hubs once the
		// forwarder added its prefix and reply (sizes: forwarder.bufferConfig).
		MaxPayload:     contract.HubMaxPayload,
		MaxControlLine: contract.EdgeMaxControlLine,
	}
	var err error
	if o.Host, o.Port, err = netaddr.Split(c.Listen); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	raw := b.HubURLs
	if c.Transport == TransportWebsocket {
		raw = b.WebsocketURLs
		if len(raw) == 0 {
			return nil, fmt.Errorf("transport: %q but the bundle of edge %s has no websocket_urls (use transport tls, or re-create the bundle from a store made with 'tether init --ws-url')", c.Transport, b.Edge)
		}
	}
	urls := make([]*url.URL, 0, len(raw))
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("bundle hub URL %q: %w", r, err)
		}
		urls = append(urls, u)
	}
	o.LeafNode.ReconnectInterval = c.ReconnectInterval
	o.LeafNode.Remotes = []*server.RemoteLeafOpts{{
		URLs:             urls,
		SignatureCB:      sign,
		TLS:              true,
		TLSConfig:        hubTLS,
		TLSTimeout:       5,
		DialTimeout:      linkDialTimeout,
		FirstInfoTimeout: linkInfoTimeout,
		Compression:      server.CompressionOpts{Mode: c.Compression},
		// The bundle's URLs are the only hubs an edge dials.
		IgnoreDiscoveredServers: true,
	}}
	return o, nil
}
