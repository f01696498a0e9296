//go:build bench

package bench

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// The floor of the named-services path: plain request-reply over the
// plain TLS leaf link with do-nothing relay clients where Tether has its
// gateway (at the edge) and its router (at the hub). A relay is an
// in-process client of its server, like the gateway and the router; it
// takes a request, sends it on under a reply subject of its own that it
// tracks (as the router does), and relays the answer: the least any
// client on the path can do. It does no access check, no header, no
// timer and no goroutine per call.

// relay is one do-nothing relay client.
type relay struct {
	recv, call *nats.Conn // recv takes requests and answers them; call sends them on
	out        string
	prefix     string // the relay's reply subjects are prefix.<n>

	mu      sync.Mutex
	n       uint64
	pending map[string]string // n -> the caller's reply subject
}

// startRelay relays requests on in (taken on recv) to out (sent on call,
// which may be recv); it stops at cleanup.
func startRelay(t *testing.T, recv, call *nats.Conn, in, out string) {
	t.Helper()
	r := &relay{recv: recv, call: call, out: out, prefix: "relay." + nuid.Next(), pending: map[string]string{}}
	if _, err := call.Subscribe(r.prefix+".*", r.answer); err != nil {
		t.Fatal(err)
	}
	if _, err := recv.Subscribe(in, r.take); err != nil {
		t.Fatal(err)
	}
	for _, nc := range []*nats.Conn{recv, call} {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *relay) take(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	r.mu.Lock()
	r.n++
	id := strconv.FormatUint(r.n, 36)
	r.pending[id] = m.Reply
	r.mu.Unlock()
	_ = r.call.PublishRequest(r.out, r.prefix+"."+id, m.Data)
}

func (r *relay) answer(m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, r.prefix+".")
	r.mu.Lock()
	reply, ok := r.pending[id]
	delete(r.pending, id)
	r.mu.Unlock()
	if ok {
		_ = r.recv.Publish(reply, m.Data)
	}
}

// inProcess connects to s in process, as Tether's gateway and router do;
// it is closed at cleanup.
func inProcess(t *testing.T, s *server.Server, name string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(s), nats.Name(name))
	if err != nil {
		t.Fatalf("connect %s in process: %v", name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// startRelayEcho starts the plain TLS pair (s2_fast) with a responder on
// local.echo at the edge and a relay at the edge from svc.echo to it, on
// two connections like the gateway's (one takes the calls, one calls the
// site's service). With hubRelay, a relay at the hub too, on one
// connection like the router, from cloud.echo to svc.echo; the requester
// calls cloud.echo then, svc.echo otherwise.
func startRelayEcho(t *testing.T, name string, hubRelay bool, size int) *echo {
	t.Helper()
	top, hub, edge := startPlainTLSPair(t, name, "s2_fast")
	e := &echo{top: top, resp: connect(t, top.edgeURL), req: connect(t, top.reqURL, top.reqOpts...),
		payload: randomPayload(size), subject: "svc.echo"}
	if _, err := e.resp.Subscribe("local.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := e.resp.Flush(); err != nil {
		t.Fatal(err)
	}
	startRelay(t, inProcess(t, edge, "edge-relay"), inProcess(t, edge, "edge-relay-site"), "svc.echo", "local.echo")
	if hubRelay {
		nc := inProcess(t, hub, "hub-relay")
		startRelay(t, nc, nc, "cloud.echo", "svc.echo")
		e.subject = "cloud.echo"
	}
	// Interest in svc.echo and in the hub relay's replies crosses the
	// link asynchronously.
	ok := make(chan struct{}, 1)
	probeUntil(t, func() error {
		if _, err := e.req.Request(e.subject, e.payload, 100*time.Millisecond); err == nil {
			ok <- struct{}{}
		}
		return nil
	}, ok)
	for range 200 { // warm caches and connections
		if _, err := e.request(); err != nil {
			t.Fatalf("%s: warm-up request: %v", name, err)
		}
	}
	return e
}
