//go:build bench

package bench

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/leaf/forwarder"
)

// startForwarderSF is the third system of the store-and-forward bench:
// Tether's forwarder (leaf/forwarder, the same code as in tether leaf)
// between the plain twin's two nats-servers (no accounts, TLS leaf link
// with s2_fast through a proxy). The hub stream takes tether.up.telemetry.>
// directly, as edges.e1.telemetry.>, with fast batches and the hub's 2 min
// dedup window; no service import is crossed. Against "plain" it measures
// what the forwarder's design costs by itself; against "tether" what
// Tether's per-edge accounts add (docs/ARCHITECTURE.md, "Store-and-forward").
func startForwarderSF(t *testing.T) *sfTopo {
	t.Helper()
	var p *netproxy.Proxy
	h, edge := startPlainPair(t, "fwd-sf", "s2_fast", plainOpts{js: true, proxy: &p})
	cloudSubject := "edges." + edgeName + ".telemetry.>"
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hnc := connect(t, h.ClientURL())
	defer hnc.Close()
	hjs, err := jetstream.New(hnc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hjs.CreateStream(ctx, jetstream.StreamConfig{
		Name:              "TELEMETRY",
		Subjects:          []string{contract.UplinkPrefix + contract.LocalTelemetry},
		SubjectTransform:  &jetstream.SubjectTransformConfig{Source: contract.UplinkPrefix + "telemetry.>", Destination: cloudSubject},
		Storage:           jetstream.FileStorage,
		Duplicates:        2 * time.Minute,
		AllowBatchPublish: true,
	}); err != nil {
		t.Fatalf("hub stream: %v", err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(edge), nats.Name("bench-forwarder"),
		nats.MaxReconnects(-1), nats.CustomInboxPrefix(contract.UplinkInbox))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	linked := func() bool { return edge.NumLeafNodes() > 0 }
	fwd, err := forwarder.New(ctx, forwarder.Config{
		Edge: edgeName, Conn: nc, BufferConn: nc, DataDir: t.TempDir(), StallAfter: 15 * time.Second,
		MaxBytes: 1 << 30, Linked: linked, Log: benchLog(t, "forwarder"),
	})
	if err != nil {
		t.Fatalf("forwarder: %v", err)
	}
	go fwd.Run(ctx)
	return &sfTopo{
		name:    "forwarder",
		edgeURL: edge.ClientURL(),
		proxy:   p,
		linked:  linked,
		cloud:   func(t *testing.T) *nats.Conn { return connect(t, h.ClientURL()) },
		cloudJS: func(nc *nats.Conn) (jetstream.JetStream, error) { return jetstream.New(nc) },
		stream:  "TELEMETRY",
		subject: "edges." + edgeName + ".telemetry.x",
	}
}
