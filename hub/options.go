package hub

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/netaddr"
	"github.com/tether-fabric/tether/internal/pki"
)

// material is what Start loads from the store before building options.
type material struct {
	operator  *jwt.OperatorClaims
	serverTLS *tls.Config // client, leafnode and websocket listeners
	routeTLS  *tls.Config // mutual TLS between hubs
}

// buildOptions turns a validated Config and loaded material into
// nats-server options. It does no I/O; the account resolver is set by Start.
func buildOptions(c Config, m material) (*server.Options, error) {
	o := &server.Options{
		ServerName:       c.Name,
		NoSigs:           true,
		PingInterval:     c.PingInterval,
		MaxPingsOut:      c.MaxPingsOut,
		LameDuckDuration: c.LameDuck,
		JetStream:        true,
		JetStreamDomain:  contract.CloudDomain,
		StoreDir:         filepath.Join(c.DataDir, "jetstream"),
		TrustedOperators: []*jwt.OperatorClaims{m.operator},
		SystemAccount:    m.operator.SystemAccount,
		TLSConfig:        m.serverTLS,
		TLS:              true,
		TLSVerify:        false,
		TLSTimeout:       2,
		MaxControlLine:   contract.HubMaxControlLine,
	}
	if c.LameDuck > 0 {
		o.LameDuckGracePeriod = c.LameDuck / 5
	}
	var err error
	if o.Host, o.Port, err = netaddr.Split(c.Listen); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if o.LeafNode.Host, o.LeafNode.Port, err = netaddr.Split(c.LeafListen); err != nil {
		return nil, fmt.Errorf("leaf_listen: %w", err)
	}
	// Edges' listeners ask for (never require nor verify) a client
	// certificate: an edge presents its run's key, which the one-link
	// guard keys on (links.go); the NATS user JWT still authenticates.
	edgeTLS := pki.RequestClientCertificate(m.serverTLS)
	o.LeafNode.TLSConfig = edgeTLS
	o.LeafNode.TLSTimeout = 2
	// Edges must not learn internal hub addresses; they use their bundle's URLs.
	o.LeafNode.NoAdvertise = true
	o.LeafNode.Compression = server.CompressionOpts{Mode: c.Compression}
	if c.WebsocketListen != Off {
		if o.Websocket.Host, o.Websocket.Port, err = netaddr.Split(c.WebsocketListen); err != nil {
			return nil, fmt.Errorf("websocket_listen: %w", err)
		}
		o.Websocket.TLSConfig = edgeTLS
		o.Websocket.HandshakeTimeout = 2e9
	}
	if c.MonitorListen != Off {
		if o.HTTPHost, o.HTTPPort, err = netaddr.Split(c.MonitorListen); err != nil {
			return nil, fmt.Errorf("monitor_listen: %w", err)
		}
	}
	if c.Cluster.Listen != "" {
		o.Cluster.Name = c.Cluster.Name
		if o.Cluster.Host, o.Cluster.Port, err = netaddr.Split(c.Cluster.Listen); err != nil {
			return nil, fmt.Errorf("cluster.listen: %w", err)
		}
		o.Cluster.TLSConfig = m.routeTLS
		o.Cluster.TLSTimeout = 2
		o.Cluster.NoAdvertise = false
		for _, r := range c.Cluster.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("cluster.routes: %w", err)
			}
			o.Routes = append(o.Routes, u)
		}
	}
	return o, nil
}
