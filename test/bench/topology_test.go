//go:build bench

package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/pki"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// edgeName is the edge of the Tether topology.
const edgeName = "e1"

// topology is one edge linked to one hub, seen from the clients' side.
type topology struct {
	name string
	// Edge-local clients: publisher and responder.
	edgeURL string
	// pubSubject is what the edge publishes in measurements, probeSubject
	// what it publishes to find out that the path is up.
	pubSubject, probeSubject string
	// newSink observes the edge's messages of the given size in the cloud.
	newSink func(t *testing.T, size int) sink
	// reqURL and reqOpts connect the cloud-side requester; requests go to
	// svc.echo.
	reqURL  string
	reqOpts []nats.Option
	// compression returns the link's negotiated compression mode.
	compression func() string
}

// startTether starts a Tether hub and one edge linked to it over TLS with
// the given leaf compression.
func startTether(t *testing.T, compression string) *topology {
	t.Helper()
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	lc := tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, edgeName, h))
	lc.Compression = compression
	l := tethertest.RunLeaf(t, lc, nil)
	tethertest.WaitLinked(t, l, 10*time.Second)

	// The CLOUD account cannot reach edge services yet: the requester is
	// a user of the edge's own account, allowed what the leaf user answers.
	var perms jwt.Permissions
	perms.Pub.Allow.Add("svc.>")
	perms.Sub.Allow.Add("_INBOX.>")
	creds, err := store.IssueUser(contract.EdgeAccountName(edgeName), "bench-cloud", perms, nil, time.Time{})
	if err != nil {
		t.Fatalf("issue requester user: %v", err)
	}
	credsFile := filepath.Join(t.TempDir(), "bench-cloud.creds")
	if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return &topology{
		name:         "tether",
		edgeURL:      l.ClientURL(),
		pubSubject:   "telemetry.x",
		probeSubject: "telemetry.probe",
		newSink: func(t *testing.T, size int) sink {
			return newSubSink(t, h.ClientURL(), "edges."+edgeName+".telemetry.>", size,
				nats.UserCredentials(store.CloudCredsFile()), nats.RootCAs(store.CAFile()))
		},
		reqURL:      h.ClientURL(),
		reqOpts:     []nats.Option{nats.UserCredentials(credsFile), nats.RootCAs(store.CAFile())},
		compression: func() string { return l.Link().Compression },
	}
}

// startPlain starts the plain-NATS twin of the core path: a hub with a TLS
// leafnode listener and a leaf dialing it, no auth, no JetStream, plain
// client ports.
func startPlain(t *testing.T, compression string) *topology {
	t.Helper()
	hub, edge := startPlainPair(t, "plain", compression, plainOpts{})
	return &topology{
		name:         "plain",
		edgeURL:      edge.ClientURL(),
		pubSubject:   "telemetry.x",
		probeSubject: "telemetry.probe",
		newSink: func(t *testing.T, size int) sink {
			return newSubSink(t, hub.ClientURL(), "telemetry.>", size)
		},
		reqURL:      hub.ClientURL(),
		compression: func() string { return leafCompression(edge) },
	}
}

// startPlainTLS is startPlain with TLS required on the hub's client port,
// as on a Tether hub; it isolates what client TLS costs a cloud requester.
func startPlainTLS(t *testing.T, compression string) *topology {
	t.Helper()
	top, _, _ := startPlainTLSPair(t, "plain-tls", compression, false)
	return top
}

// startPlainTLSPair is startPlainTLS under another name, with the hub's
// accounts of plainAccounts if accounts; it also returns the servers.
func startPlainTLSPair(t *testing.T, name, compression string, accounts bool) (top *topology, hub, edge *server.Server) {
	t.Helper()
	var clientTLS *tls.Config
	hub, edge = startPlainPair(t, name, compression, plainOpts{clientTLS: &clientTLS, accounts: accounts})
	return &topology{
		name:        name,
		edgeURL:     edge.ClientURL(),
		reqURL:      strings.Replace(hub.ClientURL(), "nats://", "tls://", 1),
		reqOpts:     []nats.Option{nats.Secure(clientTLS)},
		compression: func() string { return leafCompression(edge) },
	}, hub, edge
}

// plainDomain is the JetStream domain of the plain durable twin's leaf.
const plainDomain = "edge-" + edgeName

// startPlainDurable starts the plain-NATS twin of the durable path, what
// nats-server offers without Tether: the leaf (JetStream domain edge-e1,
// sync interval as Tether's edge) stores telemetry.> in a file stream, and
// a hub file stream sources it across the link, renaming telemetry.> to
// edges.e1.telemetry.>. Arrival is "stored in the hub stream".
func startPlainDurable(t *testing.T, compression string) *topology {
	t.Helper()
	hub, edge := startPlainPair(t, "plain-js", compression, plainOpts{js: true})
	cloudSubject := createPlainDurableStreams(t, hub, edge)
	return &topology{
		name:         "plain-js",
		edgeURL:      edge.ClientURL(),
		pubSubject:   "telemetry.x",
		probeSubject: "telemetry.probe",
		newSink: func(t *testing.T, _ int) sink {
			return newStreamSink(t, hub.ClientURL(), "TELEMETRY", cloudSubject, "edges."+edgeName+".telemetry.x")
		},
		compression: func() string { return leafCompression(edge) },
	}
}

// createPlainDurableStreams creates the durable twin's streams: the edge's
// Limits file stream TELEMETRY on telemetry.> and the hub's file stream
// TELEMETRY sourcing it from domain edge-e1. It returns the hub stream's
// subjects (edges.e1.telemetry.>).
func createPlainDurableStreams(t *testing.T, hub, edge *server.Server) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	enc := connect(t, edge.ClientURL())
	defer enc.Close()
	ejs, err := jetstream.New(enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ejs.CreateStream(ctx, jetstream.StreamConfig{
		Name: "TELEMETRY", Subjects: []string{"telemetry.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatalf("edge stream: %v", err)
	}
	hnc := connect(t, hub.ClientURL())
	defer hnc.Close()
	hjs, err := jetstream.New(hnc)
	if err != nil {
		t.Fatal(err)
	}
	cloudSubject := "edges." + edgeName + ".telemetry.>"
	if _, err := hjs.CreateStream(ctx, jetstream.StreamConfig{
		Name:    "TELEMETRY",
		Storage: jetstream.FileStorage,
		Sources: []*jetstream.StreamSource{{
			Name:              "TELEMETRY",
			Domain:            plainDomain,
			SubjectTransforms: []jetstream.SubjectTransformConfig{{Source: "telemetry.>", Destination: cloudSubject}},
		}},
	}); err != nil {
		t.Fatalf("hub stream: %v", err)
	}
	return cloudSubject
}

// plainOpts vary the plain pair.
type plainOpts struct {
	// js runs JetStream on both servers (domains hub and edge-e1).
	js bool
	// clientTLS, if not nil, requires TLS on the hub's client port and
	// receives the client TLS configuration that trusts it.
	clientTLS **tls.Config
	// proxy, if not nil, routes the leaf link through a netproxy (so that
	// it can be cut) and receives the proxy.
	proxy **netproxy.Proxy
	// accounts gives the hub the accounts of Tether's named-services path
	// (plainAccounts) and binds the leaf link to E1.
	accounts bool
}

// plainAccounts are the hub accounts of the plain named-services floor
// with imports (relay_test.go): the requester's, the router's and the
// edge's, with users of the same names (password = name).
var plainAccounts = []string{"CLOUD", "SVC", "E1"}

// startPlainPair starts a plain hub with a TLS leafnode listener and a leaf
// dialing it with the given compression, no auth, and waits for the link.
func startPlainPair(t *testing.T, name, compression string, po plainOpts) (hub, edge *server.Server) {
	t.Helper()
	ca, _, err := pki.NewCA("bench CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(name+"-hub", []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := pki.ServerTLS(certPEM, keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.Pool(ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	comp := server.CompressionOpts{Mode: compression}

	hubOpts := &server.Options{
		ServerName: name + "-hub",
		Host:       "127.0.0.1",
		Port:       -1,
		LeafNode: server.LeafNodeOpts{
			Host:        "127.0.0.1",
			Port:        -1,
			TLSConfig:   serverTLS,
			TLSTimeout:  2,
			Compression: comp,
		},
	}
	leafOpts := &server.Options{
		ServerName: name + "-leaf",
		Host:       "127.0.0.1",
		Port:       -1,
	}
	if po.accounts {
		for _, name := range plainAccounts {
			acc := server.NewAccount(name)
			hubOpts.Accounts = append(hubOpts.Accounts, acc)
			hubOpts.Users = append(hubOpts.Users, &server.User{Username: name, Password: name, Account: acc})
		}
		hubOpts.LeafNode.Username, hubOpts.LeafNode.Password, hubOpts.LeafNode.Account = "E1", "E1", "E1"
	}
	if po.clientTLS != nil {
		hubOpts.TLSConfig, hubOpts.TLS, hubOpts.TLSTimeout = serverTLS, true, 2
		*po.clientTLS = pki.ClientTLS(pool)
	}
	if po.js {
		hubOpts.JetStream, hubOpts.JetStreamDomain, hubOpts.StoreDir = true, "hub", t.TempDir()
		leafOpts.JetStream, leafOpts.JetStreamDomain, leafOpts.StoreDir = true, plainDomain, t.TempDir()
		leafOpts.SyncInterval = time.Second
	}
	hub = runServer(t, hubOpts)
	// The server writes the port it bound back into its options.
	hubLeaf := &url.URL{Scheme: "tls", Host: fmt.Sprintf("127.0.0.1:%d", hubOpts.LeafNode.Port)}
	if po.accounts {
		hubLeaf.User = url.UserPassword("E1", "E1")
	}
	if po.proxy != nil {
		p, err := netproxy.New(hubLeaf.Host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		*po.proxy, hubLeaf.Host = p, p.Addr()
	}
	leafOpts.LeafNode = server.LeafNodeOpts{
		ReconnectInterval: 250 * time.Millisecond,
		Remotes: []*server.RemoteLeafOpts{{
			URLs:        []*url.URL{hubLeaf},
			TLS:         true,
			TLSConfig:   pki.ClientTLS(pool),
			TLSTimeout:  5,
			Compression: comp,
		}},
	}
	if po.proxy != nil {
		// Otherwise the leaf learns the hub's own leafnode URL from its
		// INFO and reconnects around the cut proxy (as Tether's edge,
		// which dials only its bundle's URLs).
		leafOpts.LeafNode.Remotes[0].IgnoreDiscoveredServers = true
	}
	edge = runServer(t, leafOpts)
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if hub.NumLeafNodes() == 0 || edge.NumLeafNodes() == 0 {
			return fmt.Errorf("%s leaf link not up", name)
		}
		return nil
	})
	return hub, edge
}

// leafCompression returns the negotiated compression of s's leaf link.
func leafCompression(s *server.Server) string {
	lz, err := s.Leafz(nil)
	if err != nil || len(lz.Leafs) == 0 {
		return ""
	}
	return lz.Leafs[0].Compression
}

// runServer starts a nats-server and shuts it down at cleanup.
func runServer(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	o.NoSigs, o.NoLog = true, true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("new server %s: %v", o.ServerName, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatalf("server %s not ready after 10s", o.ServerName)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}
