package test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// checker reads the CLOUD telemetry stream and counts, per producer, what
// was lost, duplicated or out of order. Payloads are "<producer>:<n>".
type checker struct {
	got   map[string][]int
	dups  int
	order int
	total int

	firstInversions []string
}

func newChecker() *checker { return &checker{got: map[string][]int{}} }

func (c *checker) add(data []byte) error {
	p, n, ok := strings.Cut(string(data), ":")
	if !ok {
		return fmt.Errorf("bad payload %q", data)
	}
	n, _, _ = strings.Cut(n, ":") // padding may follow
	i, err := strconv.Atoi(n)
	if err != nil {
		return fmt.Errorf("bad payload %q", data)
	}
	seq := c.got[p]
	if len(seq) > 0 {
		last := seq[len(seq)-1]
		switch {
		case i == last:
			c.dups++
		case i < last:
			c.order++
			if c.order <= 3 {
				c.firstInversions = append(c.firstInversions, fmt.Sprintf("%s:%d after %d", p, i, last))
			}
		}
	}
	c.got[p] = append(seq, i)
	c.total++
	return nil
}

// verify reports anything but exactly 0..want-1 once, in order, per producer.
func (c *checker) verify(want map[string]int) error {
	var errs []string
	for p, n := range want {
		seen := map[int]int{}
		for _, i := range c.got[p] {
			seen[i]++
		}
		lost, dup := 0, 0
		for i := 0; i < n; i++ {
			switch seen[i] {
			case 0:
				lost++
			case 1:
			default:
				dup += seen[i] - 1
			}
		}
		if lost > 0 || dup > 0 || len(c.got[p]) != n {
			errs = append(errs, fmt.Sprintf("producer %s: got %d messages for %d sent: %d lost, %d duplicated", p, len(c.got[p]), n, lost, dup))
		}
	}
	if c.order > 0 {
		errs = append(errs, fmt.Sprintf("%d messages out of order (first: %v)", c.order, c.firstInversions))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// drainCloud reads edges.<edge>.telemetry.> from the CLOUD stream into c
// until it holds total messages or d passes.
func drainCloud(t *testing.T, cloud *nats.Conn, edge string, c *checker, total int, d time.Duration) {
	t.Helper()
	js, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var cons jetstream.Consumer
	tethertest.WaitFor(t, d, func() error { // a hub may just have died
		cons, err = js.OrderedConsumer(ctx, contract.TelemetryStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{"edges." + edge + ".telemetry.>"},
		})
		return err
	})
	for c.total < total {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		for m := range batch.Messages() {
			if got := m.Headers().Get(contract.HeaderEdge); got != edge {
				t.Fatalf("message without the %s header naming %s: %v", contract.HeaderEdge, edge, m.Headers())
			}
			if err := c.add(m.Data()); err != nil {
				t.Fatal(err)
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("cloud holds %d of %d messages after %s", c.total, total, d)
		}
	}
}

// publisher publishes "<name>:<i>" on telemetry.<name> at an edge with
// JetStream, so each publish is acknowledged once the edge stored it.
func publish(t *testing.T, js jetstream.JetStream, name string, from, to int) {
	t.Helper()
	// In chunks: the async publisher refuses more than its max pending.
	for lo := from; lo < to; lo += 500 {
		publishChunk(t, js, name, lo, min(lo+500, to))
	}
}

func publishChunk(t *testing.T, js jetstream.JetStream, name string, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var futures []jetstream.PubAckFuture
	for i := from; i < to; i++ {
		f, err := js.PublishAsync("telemetry."+name, []byte(fmt.Sprintf("%s:%d", name, i)),
			jetstream.WithMsgID(fmt.Sprintf("%s-%d", name, i)))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("edge did not store message %d: %v", from+i, err)
		case <-ctx.Done():
			t.Fatalf("edge did not acknowledge message %d", from+i)
		}
	}
}

type fabric struct {
	store *accounts.Store
	hub   *hub.Server
	proxy *netproxy.Proxy
	cfg   leaf.Config
	leaf  *leaf.Server
	cloud *nats.Conn
	edge  jetstream.JetStream
}

// newFabric runs a hub and an edge whose link goes through a proxy; edits
// change the edge's config before it starts.
func newFabric(t *testing.T, edits ...func(*leaf.Config)) *fabric {
	t.Helper()
	f := &fabric{store: tethertest.NewStore(t)}
	f.hub = tethertest.RunHub(t, tethertest.HubConfig(t, f.store, "hub-1"), nil)
	tethertest.AddEdge(t, f.store, "plant-7", f.hub)
	p, err := netproxy.New(strings.TrimPrefix(f.hub.LeafURL(), "tls://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	f.proxy = p
	f.cfg = tethertest.LeafConfig(t, tethertest.BundleFile(t, f.store, "plant-7", []string{"tls://" + p.Addr()}, nil))
	f.cfg.PingInterval = 500 * time.Millisecond
	for _, edit := range edits {
		edit(&f.cfg)
	}
	f.startLeaf(t)
	f.cloud = tethertest.ConnectCloud(t, f.store, f.hub)
	return f
}

// cutLink cuts the link at the proxy and waits until the edge sees it
// down.
func cutLink(t *testing.T, p *netproxy.Proxy, l *leaf.Server) {
	t.Helper()
	p.SetMode(netproxy.Cut)
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if l.Link().Connected {
			return fmt.Errorf("link still up")
		}
		return nil
	})
}

func (f *fabric) startLeaf(t *testing.T) {
	t.Helper()
	f.leaf = tethertest.RunLeaf(t, f.cfg, nil)
	js, err := jetstream.New(tethertest.Connect(t, f.leaf.ClientURL()), jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		t.Fatal(err)
	}
	f.edge = js
}

// TestLinkCutUnderLoad: publishing goes on while the link is cut; after it
// heals the cloud holds exactly everything, in order, within a bound.
func TestLinkCutUnderLoad(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	publish(t, f.edge, "p1", 0, 2000)
	cutLink(t, f.proxy, f.leaf)
	publish(t, f.edge, "p1", 2000, 6000) // offline: buffered on the edge's disk
	if st := f.leaf.Status().Buffer; st.BacklogMsgs == 0 {
		t.Fatalf("offline edge shows no backlog: %+v", st)
	}
	f.proxy.SetMode(netproxy.Pass)
	healed := time.Now()
	c := newChecker()
	drainCloud(t, f.cloud, "plant-7", c, 6000, 30*time.Second)
	t.Logf("caught up %s after the link healed", time.Since(healed))
	if err := c.verify(map[string]int{"p1": 6000}); err != nil {
		t.Fatalf("%v (edge buffer: %+v)", err, f.leaf.Status().Buffer)
	}
	tethertest.WaitFor(t, 5*time.Second, func() error {
		if st := f.leaf.Status().Buffer; st.BacklogMsgs != 0 || st.Forwarded != 6000 {
			return fmt.Errorf("buffer after catch-up: %+v", st)
		}
		return nil
	})
}

// TestFlappingLink: many short cuts while publishing, including cuts in
// the middle of catch-up; the cloud ends with exactly everything in order.
func TestFlappingLink(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	const rounds, per = 8, 750
	for r := 0; r < rounds; r++ {
		publish(t, f.edge, "p1", r*per, (r+1)*per)
		f.proxy.SetMode(netproxy.Cut)
		publish(t, f.edge, "p2", r*per, (r+1)*per)
		f.proxy.SetMode(netproxy.Pass)
		tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	}
	c := newChecker()
	drainCloud(t, f.cloud, "plant-7", c, 2*rounds*per, 60*time.Second)
	if err := c.verify(map[string]int{"p1": rounds * per, "p2": rounds * per}); err != nil {
		t.Fatal(err)
	}
}

// TestEdgeRestartKeepsBuffer: an edge stopped with a backlog and started
// again on the same data directory delivers everything once.
func TestEdgeRestartKeepsBuffer(t *testing.T) {
	f := newFabric(t)
	f.proxy.SetMode(netproxy.Cut)
	publish(t, f.edge, "p1", 0, 3000)
	if err := f.leaf.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.proxy.SetMode(netproxy.Pass)
	f.startLeaf(t)
	publish(t, f.edge, "p1", 3000, 4000)
	c := newChecker()
	drainCloud(t, f.cloud, "plant-7", c, 4000, 30*time.Second)
	if err := c.verify(map[string]int{"p1": 4000}); err != nil {
		t.Fatal(err)
	}
}

// TestBufferFullRejects: with the default policy a full buffer refuses new
// publishes with a clear error and keeps everything it acknowledged.
func TestBufferFullRejects(t *testing.T) {
	f := &fabric{store: tethertest.NewStore(t)}
	f.hub = tethertest.RunHub(t, tethertest.HubConfig(t, f.store, "hub-1"), nil)
	tethertest.AddEdge(t, f.store, "plant-7", f.hub)
	// No reachable hub: everything stays in the buffer.
	f.cfg = tethertest.LeafConfig(t, tethertest.BundleFile(t, f.store, "plant-7", []string{"tls://" + tethertest.FreeAddr(t)}, nil))
	f.cfg.BufferMaxBytes = 1 << 20
	f.startLeaf(t)
	payload := strings.Repeat("x", 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acked := 0
	var err error
	for i := 0; i < 5000; i++ {
		if _, err = f.edge.Publish(ctx, "telemetry.big", []byte(payload)); err != nil {
			break
		}
		acked++
	}
	if err == nil || !strings.Contains(err.Error(), "maximum bytes exceeded") {
		t.Fatalf("publish into a full buffer: err = %v after %d acked, want 'maximum bytes exceeded'", err, acked)
	}
	st := f.leaf.Status().Buffer
	if int(st.BacklogMsgs) != acked || !st.Full {
		t.Fatalf("buffer = %+v, want %d messages kept and full", st, acked)
	}
	t.Logf("1 MiB buffer took %d x 1000 B before refusing: %v", acked, err)
}

// TestCommandsQueuedWhileOffline: commands the cloud sends while the edge
// is offline wait in the cloud and reach the edge's local cmd.> subscribers
// on reconnect, in order, once; live commands keep flowing after.
func TestCommandsQueuedWhileOffline(t *testing.T) {
	f := newFabric(t)
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	local := tethertest.Connect(t, f.leaf.ClientURL())
	got, err := local.SubscribeSync("cmd.>")
	if err != nil {
		t.Fatal(err)
	}
	local.Flush()
	cloudJS, err := jetstream.NewWithDomain(f.cloud, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	send := func(from, to int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := from; i < to; i++ {
			// The PubAck proves the command is queued in the cloud.
			if _, err := cloudJS.Publish(ctx, "edges.plant-7.cmd.set", []byte(strconv.Itoa(i))); err != nil {
				t.Fatalf("queue command %d: %v", i, err)
			}
		}
	}
	expect := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			m, err := got.NextMsg(15 * time.Second)
			if err != nil {
				t.Fatalf("command %d not delivered: %v (edge status %+v)", i, err, f.leaf.Status().Commands)
			}
			if m.Subject != "cmd.set" || string(m.Data) != strconv.Itoa(i) {
				t.Fatalf("got %s %q, want cmd.set %q (in order, once)", m.Subject, m.Data, strconv.Itoa(i))
			}
		}
	}
	send(0, 5)
	expect(0, 5)

	cutLink(t, f.proxy, f.leaf)
	send(5, 105)
	if _, err := got.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatal("a command reached the edge while its link was cut")
	}
	f.proxy.SetMode(netproxy.Pass)
	healed := time.Now()
	tethertest.WaitLinked(t, f.leaf, 10*time.Second)
	t.Logf("relinked after %s", time.Since(healed))
	expect(5, 6)
	first := time.Since(healed)
	expect(6, 105)
	took := time.Since(healed)
	t.Logf("100 queued commands delivered %s after the link healed (first after %s)", took, first)
	// Bound: reconnect, plus at worst one delivery lost to a pull made
	// just before the cut (redelivered after the 2 s ack wait).
	if took > 5*time.Second {
		t.Errorf("queued commands took %s after heal, want < 5s", took)
	}
	send(105, 110)
	expect(105, 110)
	if m, err := got.NextMsg(500 * time.Millisecond); err == nil {
		t.Fatalf("extra command delivered: %s %q", m.Subject, m.Data)
	}
}
