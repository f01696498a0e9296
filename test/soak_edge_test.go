package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/netproxy"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// soakPubAckWait is how long a producer waits for the edge's PubAck. A
// paused or killed edge leaves its publishes unacknowledged after this.
const soakPubAckWait = 5 * time.Second

// soakEdge is one edge of the soak: successive runs of a real 'tether leaf'
// process on the same data directory, whose link to each hub goes through
// its own proxy. The chaos loop (the test goroutine) owns leaf and the
// proxies; producers reach the current run through client.
type soakEdge struct {
	name      string
	bundle    string
	data      string
	proxies   []*netproxy.Proxy
	producers []*soakProducer
	runs      int
	// watchdogStops counts the runs its link watchdog ended.
	watchdogStops int
	leaf          *crashLeaf       // the current run; nil while the edge is down
	procs         []*binaryProcess // every run, for their logs

	mu      sync.Mutex
	js      jetstream.JetStream // on the current run; nil while the edge is down
	changed chan struct{}       // closed when js changes
}

// newSoakEdge adds edge name to the store and the hubs, puts a proxy in
// front of each hub for it and starts its first run.
func newSoakEdge(t *testing.T, store *accounts.Store, hubs []*hub.Server, name string) *soakEdge {
	t.Helper()
	tethertest.AddEdge(t, store, name, hubs...)
	e := &soakEdge{name: name, data: t.TempDir(), changed: make(chan struct{})}
	var urls []string
	e.proxies, urls = proxyHubs(t, hubs)
	e.bundle = tethertest.BundleFile(t, store, name, urls, nil)
	e.start(t)
	return e
}

// start runs the edge again on its data directory and hands the new run
// to the producers.
func (e *soakEdge) start(t *testing.T) {
	t.Helper()
	e.runs++
	e.leaf = startCrashLeaf(t, fmt.Sprintf("%s (run %d)", e.name, e.runs), e.bundle, e.data)
	e.procs = append(e.procs, e.leaf.proc)
	js, err := jetstream.New(e.leaf.nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(soakPubAckWait))
	if err != nil {
		t.Fatal(err)
	}
	e.setClient(js)
}

// saveLogs writes the log of each of the edge's runs into dir.
func (e *soakEdge) saveLogs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, p := range e.procs {
		name := filepath.Join(dir, fmt.Sprintf("%s-run%d.log", e.name, i+1))
		if err := os.WriteFile(name, []byte(p.stderr.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// kill SIGKILLs the current run and waits for it to end.
func (e *soakEdge) kill(t *testing.T) {
	t.Helper()
	e.setClient(nil)
	if err := e.leaf.kill(); err != nil {
		t.Fatalf("SIGKILL %s: %v", e.leaf.proc.name, err)
	}
	select {
	case <-e.leaf.proc.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running 10s after SIGKILL", e.leaf.proc.name)
	}
	e.leaf = nil
}

// signal sends sig (SIGSTOP, SIGCONT) to the current run.
func (e *soakEdge) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := e.leaf.signal(sig); err != nil {
		t.Fatalf("%s to %s: %v", sig, e.leaf.proc.name, err)
	}
}

// setLink puts every proxy of the edge in mode m.
func (e *soakEdge) setLink(m netproxy.Mode) {
	for _, p := range e.proxies {
		p.SetMode(m)
	}
}

func (e *soakEdge) setClient(js jetstream.JetStream) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.js = js
	close(e.changed)
	e.changed = make(chan struct{})
}

// client returns a JetStream client on the edge's current run, waiting
// while the edge is down; nil once ctx ends.
func (e *soakEdge) client(ctx context.Context) jetstream.JetStream {
	for {
		e.mu.Lock()
		js, changed := e.js, e.changed
		e.mu.Unlock()
		if js != nil {
			return js
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// soakProducer publishes "<name>:<i>" on telemetry.<name> at its edge at a
// steady rate, to whichever run of the edge is up, and records which
// publishes the edge acknowledged. It never publishes an index twice, so an
// index the edge did not acknowledge may be missing in the cloud but can
// only be there once.
type soakProducer struct {
	name    string
	acked   atomic.Int64
	refused atomic.Int64 // publishes the client refused (edge gone, too many pending)
	done    chan struct{}

	mu   sync.Mutex
	sent int    // indices [0, sent) were issued
	ok   []bool // ok[i]: the edge acknowledged index i
}

// soakPending is a publish awaiting the edge's PubAck.
type soakPending struct {
	i int
	f jetstream.PubAckFuture
}

// startSoakProducer publishes one message every interval until ctx ends.
func startSoakProducer(ctx context.Context, e *soakEdge, name string, every time.Duration) *soakProducer {
	p := &soakProducer{name: name, done: make(chan struct{})}
	// PubAcks are awaited in publish order, away from the publishing loop,
	// so a paused edge does not slow the producer down.
	pending := make(chan soakPending, 16384)
	var resolver sync.WaitGroup
	resolver.Go(func() {
		for in := range pending {
			p.resolve(in)
		}
	})
	go func() {
		defer close(p.done)
		defer resolver.Wait()
		defer close(pending)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			js := e.client(ctx)
			if js == nil {
				return
			}
			p.mu.Lock()
			p.sent, p.ok = i+1, append(p.ok, false)
			p.mu.Unlock()
			f, err := js.PublishAsync("telemetry."+name, fmt.Appendf(nil, "%s:%d", name, i),
				jetstream.WithMsgID(fmt.Sprintf("%s-%s-%d", e.name, name, i)))
			if err != nil {
				p.refused.Add(1)
				continue
			}
			pending <- soakPending{i, f}
		}
	}()
	return p
}

// resolve waits for one publish's PubAck (the client's async timeout
// bounds the wait; the timer is a safety net).
func (p *soakProducer) resolve(in soakPending) {
	safety := time.NewTimer(soakPubAckWait + 10*time.Second)
	defer safety.Stop()
	select {
	case <-in.f.Ok():
		p.mu.Lock()
		p.ok[in.i] = true
		p.mu.Unlock()
		p.acked.Add(1)
	case <-in.f.Err():
	case <-safety.C:
	}
}

// wait waits up to d for the producer to stop.
func (p *soakProducer) wait(d time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("producer %s still running after %s", p.name, d)
	}
}

// result returns, once the producer stopped, how many indices it issued
// and which of them the edge acknowledged.
func (p *soakProducer) result() (sent int, ok []bool) {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, append([]bool(nil), p.ok...)
}
