package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// crashLeaf is a real 'tether leaf' child process with a connection to its
// local client port. The connection does not reconnect: once the process
// dies, publishes on it fail instead of being buffered by the client.
type crashLeaf struct {
	proc *binaryProcess
	url  string
	nc   *nats.Conn
}

// startCrashLeaf runs 'tether leaf' on bundle and data with a free loopback
// client port, read from its "edge ready" log line.
func startCrashLeaf(t *testing.T, name, bundle, data string) *crashLeaf {
	t.Helper()
	return attachCrashLeaf(t, startBinary(t, name, "--log-json", "leaf",
		"--bundle", bundle, "--data", data, "--listen", "127.0.0.1:0"))
}

// attachCrashLeaf waits for a started 'tether --log-json leaf' process to
// be ready and connects to its local client port.
func attachCrashLeaf(t *testing.T, p *binaryProcess) *crashLeaf {
	t.Helper()
	name := p.name
	ready := p.waitLogJSON(t, "edge ready", 30*time.Second)
	url, _ := ready["client"].(string)
	if !strings.HasPrefix(url, "nats://") {
		t.Fatalf("%s: edge ready: client %v, want nats://host:port", name, ready["client"])
	}
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second), nats.NoReconnect())
	if err != nil {
		t.Fatalf("connect to %s at %s: %v", name, url, err)
	}
	t.Cleanup(nc.Close)
	return &crashLeaf{proc: p, url: url, nc: nc}
}

// status asks the edge for its status over its local port.
func (l *crashLeaf) status() (leaf.Status, error) {
	var st leaf.Status
	m, err := l.nc.Request(contract.LeafStatusSubject, nil, 3*time.Second)
	if err != nil {
		return st, fmt.Errorf("%s: status: %w", l.proc.name, err)
	}
	if err := json.Unmarshal(m.Data, &st); err != nil {
		return st, fmt.Errorf("%s: status: %w", l.proc.name, err)
	}
	return st, nil
}

// waitStatus polls the edge's status until cond accepts it or d passes.
func (l *crashLeaf) waitStatus(t *testing.T, d time.Duration, what string, cond func(leaf.Status) error) leaf.Status {
	t.Helper()
	var st leaf.Status
	binaryWaitFor(t, d, what, func() error {
		if l.proc.exited() {
			t.Fatalf("%s exited (%v) while waiting for %s", l.proc.name, l.proc.err, what)
		}
		var err error
		if st, err = l.status(); err != nil {
			return err
		}
		return cond(st)
	})
	return st
}

// kill sends SIGKILL: the process gets no chance to flush or close anything.
func (l *crashLeaf) kill() error { return l.signal(syscall.SIGKILL) }

// signal sends sig to the process (SIGSTOP and SIGCONT pause and resume it).
func (l *crashLeaf) signal(sig syscall.Signal) error { return l.proc.cmd.Process.Signal(sig) }

// proxyHubs puts a proxy in front of each hub's leafnode port; it returns
// the proxies and the URLs an edge dials to go through them.
func proxyHubs(t *testing.T, hubs []*hub.Server) ([]*netproxy.Proxy, []string) {
	t.Helper()
	proxies := make([]*netproxy.Proxy, len(hubs))
	urls := make([]string, len(hubs))
	for i, h := range hubs {
		p, err := netproxy.New(strings.TrimPrefix(h.LeafURL(), "tls://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		proxies[i], urls[i] = p, "tls://"+p.Addr()
	}
	return proxies, urls
}

// backlogBehind starts plant-7's edge dialing urls (the proxies' addresses,
// 500 ms pings), cuts every proxy and buffers backlog messages of p1 on the
// edge.
func backlogBehind(t *testing.T, store *accounts.Store, proxies []*netproxy.Proxy, urls []string, backlog int) *leaf.Server {
	t.Helper()
	cfg := tethertest.LeafConfig(t, tethertest.BundleFile(t, store, "plant-7", urls, nil))
	cfg.PingInterval = 500 * time.Millisecond
	l := tethertest.RunLeaf(t, cfg, nil)
	tethertest.WaitLinked(t, l, 20*time.Second)
	edge, err := jetstream.New(tethertest.Connect(t, l.ClientURL()), jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range proxies {
		p.SetMode(netproxy.Cut)
	}
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if l.Link().Connected {
			return fmt.Errorf("link still up")
		}
		return nil
	})
	crashPublish(t, edge, "p1", 0, backlog)
	return l
}

// crashPublisher publishes "<name>:<i>" for i in [0, n) on telemetry.<name>
// with JetStream in a goroutine, keeping up to a window of publishes in
// flight, and records which ones the edge acknowledged (stored). It stops
// issuing publishes at the first error.
type crashPublisher struct {
	acked atomic.Int64 // number of acknowledged publishes
	done  chan struct{}

	mu   sync.Mutex
	sent int    // publishes issued: messages [0, sent) may have reached the edge
	ok   []bool // ok[i]: the edge acknowledged message i
	err  error  // why publishing stopped early, if it did
}

// startCrashPublisher starts publishing; onAck, if set, runs in the
// publishing goroutine after each acknowledgement with the count so far.
func startCrashPublisher(js jetstream.JetStream, name string, n int, onAck func(acked int)) *crashPublisher {
	p := &crashPublisher{done: make(chan struct{}), ok: make([]bool, n)}
	type inflight struct {
		i int
		f jetstream.PubAckFuture
	}
	const window = 256
	go func() {
		defer close(p.done)
		var pending []inflight
		stop := false
		resolve := func(in inflight) {
			// The context's async timeout bounds this wait; the timer
			// is a safety net should a future never resolve.
			safety := time.NewTimer(30 * time.Second)
			defer safety.Stop()
			var err error
			select {
			case <-in.f.Ok():
				p.mu.Lock()
				p.ok[in.i] = true
				p.mu.Unlock()
				if a := p.acked.Add(1); onAck != nil {
					onAck(int(a))
				}
				return
			case err = <-in.f.Err():
			case <-safety.C:
				err = errors.New("neither acknowledged nor failed after 30s")
			}
			stop = true
			p.mu.Lock()
			if p.err == nil {
				p.err = fmt.Errorf("message %d: %w", in.i, err)
			}
			p.mu.Unlock()
		}
		for i := 0; i < n && !stop; i++ {
			f, err := js.PublishAsync("telemetry."+name, []byte(fmt.Sprintf("%s:%d", name, i)),
				jetstream.WithMsgID(fmt.Sprintf("%s-%d", name, i)))
			if err != nil {
				p.mu.Lock()
				if p.err == nil {
					p.err = fmt.Errorf("publish %d: %w", i, err)
				}
				p.mu.Unlock()
				break
			}
			p.mu.Lock()
			p.sent = i + 1
			p.mu.Unlock()
			pending = append(pending, inflight{i, f})
			if len(pending) >= window {
				resolve(pending[0])
				pending = pending[1:]
			}
		}
		for _, in := range pending {
			resolve(in)
		}
	}()
	return p
}

// wait waits up to d for the publisher to finish and returns how many
// publishes it issued, which were acknowledged and why it stopped early.
func (p *crashPublisher) wait(t *testing.T, d time.Duration) (sent int, ok []bool, err error) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("publisher still running after %s", d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, append([]bool(nil), p.ok...), p.err
}

// crashCloudMsg is a message of the CLOUD telemetry stream: its payload
// (producer and index) and the edge's forwarding headers.
type crashCloudMsg struct {
	producer string
	idx      int
	origin   string
	seq      uint64
}

// crashCloudCount returns how many messages of edge the CLOUD stream holds.
func crashCloudCount(t *testing.T, cloud *nats.Conn, edge string) int {
	t.Helper()
	js, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	// Retried: right after a hub went away the JetStream API may answer
	// "temporarily unavailable" until the meta leader is elected again.
	binaryWaitFor(t, 20*time.Second, "cloud stream info", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, contract.TelemetryStream)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter("edges."+edge+".telemetry.>"))
		if err != nil {
			return err
		}
		n = 0
		for _, c := range info.State.Subjects {
			n += int(c)
		}
		return nil
	})
	return n
}

// crashReadCloud reads the first n messages of edge from the CLOUD stream,
// within d. Payloads are "<producer>:<i>".
func crashReadCloud(t *testing.T, cloud *nats.Conn, edge string, n int, d time.Duration) []crashCloudMsg {
	t.Helper()
	js, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var cons jetstream.Consumer
	binaryWaitFor(t, d, "a consumer on the cloud stream", func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		cons, err = js.OrderedConsumer(cctx, contract.TelemetryStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{"edges." + edge + ".telemetry.>"},
		})
		return err
	})
	out := make([]crashCloudMsg, 0, n)
	for len(out) < n {
		batch, err := cons.Fetch(min(1000, n-len(out)), jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		for m := range batch.Messages() {
			h := m.Headers()
			if got := h.Get(contract.HeaderEdge); got != edge {
				t.Fatalf("message without the %s header naming %s: %v", contract.HeaderEdge, edge, h)
			}
			producer, num, _ := strings.Cut(string(m.Data()), ":")
			i, err := strconv.Atoi(num)
			if err != nil {
				t.Fatalf("bad payload %q", m.Data())
			}
			seq, err := strconv.ParseUint(h.Get(contract.HeaderSeq), 10, 64)
			if err != nil {
				t.Fatalf("bad %s header: %v", contract.HeaderSeq, h)
			}
			out = append(out, crashCloudMsg{producer: producer, idx: i, origin: h.Get(contract.HeaderOrigin), seq: seq})
		}
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d messages from the cloud in %s", len(out), n, d)
		}
	}
	return out
}

// crashVerify checks what the cloud holds of one producer that published
// [0, n): indices strictly increasing (nothing duplicated or out of order),
// none outside [0, n), and every index for which must is true present.
func crashVerify(msgs []crashCloudMsg, n int, must func(i int) bool) error {
	seen := make([]int, n)
	var errs []string
	dups, order, bad := 0, 0, 0
	var examples []string // the first few anomalies, for the report
	note := func(k int, what string) {
		if len(examples) < 5 {
			prev := "nothing"
			if k > 0 {
				prev = fmt.Sprintf("%d (edge seq %d)", msgs[k-1].idx, msgs[k-1].seq)
			}
			examples = append(examples, fmt.Sprintf("%s: cloud message %d is %d (edge seq %d, origin %s) after %s",
				what, k, msgs[k].idx, msgs[k].seq, msgs[k].origin, prev))
		}
	}
	for k, m := range msgs {
		if m.idx < 0 || m.idx >= n {
			bad++
			note(k, "never published")
			continue
		}
		seen[m.idx]++
		if seen[m.idx] > 1 {
			dups++
			note(k, "duplicate")
		} else if k > 0 && m.idx < msgs[k-1].idx {
			order++
			note(k, "out of order")
		}
	}
	lost := 0
	firstLost := -1
	for i := 0; i < n; i++ {
		if seen[i] == 0 && must(i) {
			if firstLost < 0 {
				firstLost = i
			}
			lost++
		}
	}
	if lost > 0 {
		errs = append(errs, fmt.Sprintf("%d acknowledged messages lost (first: %d)", lost, firstLost))
	}
	if dups > 0 {
		errs = append(errs, fmt.Sprintf("%d duplicated", dups))
	}
	if order > 0 {
		errs = append(errs, fmt.Sprintf("%d out of order", order))
	}
	if bad > 0 {
		errs = append(errs, fmt.Sprintf("%d never published", bad))
	}
	if len(errs) > 0 {
		return fmt.Errorf("cloud holds %d messages: %s\n%s", len(msgs), strings.Join(errs, "; "), strings.Join(examples, "\n"))
	}
	return nil
}

// crashPublish publishes [from, to) like publish, a chunk at a time, so the
// client never has more publishes pending than its async window allows.
func crashPublish(t *testing.T, js jetstream.JetStream, name string, from, to int) {
	t.Helper()
	const chunk = 500
	for i := from; i < to; i += chunk {
		publish(t, js, name, i, min(i+chunk, to))
	}
}
