//go:build bench

package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds of every workload.
const (
	// pubWindowBytes bounds what the publisher may have in flight (sent,
	// not yet received by the cloud subscriber), so that no buffer on the
	// path overflows and drops: end-to-end flow control.
	pubWindowBytes = 8 << 20
	// pubCheckEvery is how often (in messages) the publisher checks the
	// window; the subscriber signals progress at the same interval.
	pubCheckEvery = 1000
	// stallTimeout ends a publish run that stopped making progress; what
	// did not arrive by then is reported as lost.
	stallTimeout = 5 * time.Second
	// runTimeout bounds any single measurement.
	runTimeout = 2 * time.Minute
	// reqTimeout is the timeout of one request.
	reqTimeout = 2 * time.Second
)

// pubResult is one edge->cloud publish run.
type pubResult struct {
	rate float64 // messages that reached the cloud per second
	lost int
}

// sink observes, on the cloud side, what the edge published.
type sink interface {
	// count returns how many measured messages arrived so far.
	count() int64
	// progress fires (coalesced) as arrivals advance, probes included.
	progress() <-chan struct{}
	// expect sets the count whose arrival time done reports.
	expect(n int64)
	// done returns when the expected count was reached, once it was.
	done() (time.Time, bool)
	close()
}

// measurePublish publishes count messages of size bytes on the edge and
// counts what reaches the cloud, timed from the first publish to the last
// arrival.
func measurePublish(t *testing.T, top *topology, size, count int) pubResult {
	t.Helper()
	pub := connect(t, top.edgeURL)
	defer pub.Close()
	s := top.newSink(t, size)
	defer s.close()
	// Interest (or a sourcing consumer) crosses the link asynchronously:
	// probe until a message lands.
	probeUntil(t, func() error { return pub.Publish(top.probeSubject, []byte("w")) }, s.progress())
	base := s.count()
	s.expect(base + int64(count))

	payload := randomPayload(size)
	window := int64(max(pubWindowBytes/size, 2*pubCheckEvery))
	deadline := time.Now().Add(runTimeout)
	start := time.Now()
	for i := 1; i <= count; i++ {
		if err := pub.Publish(top.pubSubject, payload); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if i%pubCheckEvery != 0 {
			continue
		}
		for int64(i)-(s.count()-base) > window && time.Now().Before(deadline) {
			select {
			case <-s.progress():
			case <-time.After(stallTimeout):
				t.Logf("%s: no progress for %s at %d/%d sent", top.name, stallTimeout, s.count()-base, i)
				deadline = time.Now() // stop waiting; the loss is counted below
			}
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatalf("flush publisher: %v", err)
	}
	// Wait for the rest, giving up after a stall.
	last, lastAt := s.count()-base, time.Now()
	for {
		if end, ok := s.done(); ok {
			return pubResult{rate: float64(count) / end.Sub(start).Seconds()}
		}
		select {
		case <-s.progress():
		case <-time.After(50 * time.Millisecond):
		}
		if n := s.count() - base; n != last {
			last, lastAt = n, time.Now()
		}
		if time.Since(lastAt) > stallTimeout || time.Now().After(start.Add(runTimeout)) {
			return pubResult{rate: float64(last) / lastAt.Sub(start).Seconds(), lost: count - int(last)}
		}
	}
}

// subSink counts size-byte messages delivered to a core subscription;
// other messages (probes) only signal progress.
type subSink struct {
	nc      *nats.Conn
	got     atomic.Int64
	want    atomic.Int64
	endNano atomic.Int64
	prog    chan struct{}
}

func newSubSink(t *testing.T, url, subject string, size int, opts ...nats.Option) sink {
	t.Helper()
	s := &subSink{nc: connect(t, url, opts...), prog: make(chan struct{}, 1)}
	s.want.Store(-1)
	sub, err := s.nc.Subscribe(subject, func(m *nats.Msg) {
		if len(m.Data) == size {
			n := s.got.Add(1)
			if n == s.want.Load() {
				s.endNano.Store(time.Now().UnixNano())
			}
			if n%pubCheckEvery != 0 {
				return
			}
		}
		select {
		case s.prog <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := s.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *subSink) count() int64              { return s.got.Load() }
func (s *subSink) progress() <-chan struct{} { return s.prog }
func (s *subSink) expect(n int64)            { s.want.Store(n) }
func (s *subSink) close()                    { s.nc.Close() }

func (s *subSink) done() (time.Time, bool) {
	ns := s.endNano.Load()
	return time.Unix(0, ns), ns != 0
}

// streamSink counts messages on subject in a cloud stream by polling its
// state every streamPoll; arrival times are as precise as the poll. Any
// change under filter (probes included) signals progress.
type streamSink struct {
	nc      *nats.Conn
	got     atomic.Int64
	want    atomic.Int64
	endNano atomic.Int64
	prog    chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// streamPoll is the resolution of streamSink's arrival times.
const streamPoll = 10 * time.Millisecond

func newStreamSink(t *testing.T, url, stream, filter, subject string, opts ...nats.Option) sink {
	t.Helper()
	s := &streamSink{nc: connect(t, url, opts...), prog: make(chan struct{}, 1)}
	s.want.Store(-1)
	js, err := jetstream.New(s.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout+time.Minute)
	s.cancel = cancel
	str, err := js.Stream(ctx, stream)
	if err != nil {
		cancel()
		t.Fatalf("stream %s: %v", stream, err)
	}
	var total uint64
	poll := func() {
		info, err := str.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			return
		}
		var all uint64
		for _, n := range info.State.Subjects {
			all += n
		}
		if all == total {
			return
		}
		total = all
		n := int64(info.State.Subjects[subject])
		s.got.Store(n)
		if w := s.want.Load(); w > 0 && n >= w && s.endNano.Load() == 0 {
			s.endNano.Store(time.Now().UnixNano())
		}
		select {
		case s.prog <- struct{}{}:
		default:
		}
	}
	poll()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(streamPoll)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				poll()
			}
		}
	}()
	return s
}

func (s *streamSink) count() int64              { return s.got.Load() }
func (s *streamSink) progress() <-chan struct{} { return s.prog }
func (s *streamSink) expect(n int64)            { s.want.Store(n) }

func (s *streamSink) done() (time.Time, bool) {
	ns := s.endNano.Load()
	return time.Unix(0, ns), ns != 0
}

func (s *streamSink) close() {
	s.cancel()
	s.wg.Wait()
	s.nc.Close()
}

// echo is a request-reply pair on one topology: a responder on the edge's
// local port answering svc.echo, and a requester on the hub.
type echo struct {
	top       *topology
	resp, req *nats.Conn
	payload   []byte
	// subject is what the requester calls ("" : svc.echo).
	subject string
}

// startEcho connects the pair and waits until requests are answered; the
// caller closes it.
func startEcho(t *testing.T, top *topology, size int) *echo {
	t.Helper()
	e := &echo{top: top, resp: connect(t, top.edgeURL), req: connect(t, top.reqURL, top.reqOpts...),
		payload: randomPayload(size)}
	if _, err := e.resp.Subscribe("svc.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := e.resp.Flush(); err != nil {
		t.Fatal(err)
	}
	// Interest in svc.echo crosses the link asynchronously.
	ok := make(chan struct{}, 1)
	probeUntil(t, func() error {
		if _, err := e.req.Request("svc.echo", e.payload, 100*time.Millisecond); err == nil {
			ok <- struct{}{}
		}
		return nil
	}, ok)
	for range 200 { // warm caches and connections
		if _, err := e.request(); err != nil {
			t.Fatalf("%s: warm-up request: %v", top.name, err)
		}
	}
	return e
}

func (e *echo) request() (*nats.Msg, error) {
	subj := e.subject
	if subj == "" {
		subj = "svc.echo"
	}
	return e.req.Request(subj, e.payload, reqTimeout)
}

func (e *echo) close() {
	e.req.Close()
	e.resp.Close()
}

// latency is the result of sequential requests on one topology.
type latency struct {
	p50, p99 time.Duration
	errors   int
}

// measureLatency sends n sequential requests on each pair, interleaved
// request by request (the order alternating), so that every system sees
// the same machine state: on a small, shared VM the latency of one
// request depends on how busy and how awake the cores are.
func measureLatency(t *testing.T, pairs []*echo, n int) []latency {
	t.Helper()
	lats := make([][]time.Duration, len(pairs))
	res := make([]latency, len(pairs))
	deadline := time.Now().Add(runTimeout)
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		for k := range pairs {
			j := k
			if i%2 == 1 {
				j = len(pairs) - 1 - k
			}
			t0 := time.Now()
			if _, err := pairs[j].request(); err != nil {
				res[j].errors++
				continue
			}
			lats[j] = append(lats[j], time.Since(t0))
		}
	}
	for j, l := range lats {
		if len(l) == 0 {
			t.Fatalf("%s: no request answered", pairs[j].top.name)
		}
		slices.Sort(l)
		res[j].p50, res[j].p99 = l[len(l)/2], l[len(l)*99/100]
	}
	return res
}

// measureInflight sends total requests from inflight concurrent callers
// sharing one connection and returns answered requests per second and
// the number that failed.
func measureInflight(e *echo, total, inflight int) (float64, int) {
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
	)
	per := total / inflight
	deadline := time.Now().Add(runTimeout)
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if time.Now().After(deadline) {
					failed.Add(1)
					continue
				}
				if _, err := e.request(); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return float64(per*inflight-int(failed.Load())) / elapsed.Seconds(), int(failed.Load())
}

// probeUntil calls probe every 50ms until signal fires, for at most 10s.
func probeUntil(t *testing.T, probe func() error, signal <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := probe(); err != nil {
			t.Fatalf("probe: %v", err)
		}
		select {
		case <-signal:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("interest did not cross the link within 10s")
}

// randomPayload returns size pseudo-random bytes (fixed seed): nearly
// incompressible, the worst case for link compression. A repeated byte
// compresses to almost nothing and would flatter s2.
func randomPayload(size int) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(1, uint64(size)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// connect dials url; the caller closes the connection.
func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.Timeout(5 * time.Second), nats.Name("bench")}, opts...)...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	return nc
}

// fmtRate formats a rate as e.g. "512.3k".
func fmtRate(r float64) string {
	if r >= 1e3 {
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}
