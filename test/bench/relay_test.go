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
// timer and no goroutine per call. plain-imports adds the hub's accounts
// and imports of Tether's path (accounts are the server's, so the caller's
// identity is still stamped by the server).

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
// which may be recv) with reply subjects prefix.<nuid>.<n>; it stops at
// cleanup.
func startRelay(t *testing.T, recv, call *nats.Conn, in, out, prefix string) {
	t.Helper()
	r := &relay{recv: recv, call: call, out: out, prefix: prefix + "." + nuid.Next(), pending: map[string]string{}}
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
func inProcess(t *testing.T, s *server.Server, name string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(s), nats.Name(name)}, opts...)...)
	if err != nil {
		t.Fatalf("connect %s in process: %v", name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// relayShape is what a plain floor system puts on the path.
type relayShape int

const (
	// edgeRelay: a relay at the edge (where the gateway is).
	edgeRelay relayShape = iota
	// twoRelays: and a relay at the hub (where the router is).
	twoRelays
	// twoRelaysImports: and the hub's accounts and imports of Tether's
	// path: the requester in CLOUD calls edges.e1.svc.echo.echo through
	// CLOUD's service import from SVC (caller's identity shared), the hub
	// relay in SVC sends it on as tether.svc.req.e1.echo.echo through a
	// stream import into E1 (the leaf link's account) with a reply
	// tether.svc.rep.e1.<n>, which comes back through E1's service import
	// from SVC.
	twoRelaysImports
)

// startRelayEcho starts the plain TLS pair (s2_fast) with a responder on
// local.echo at the edge and a relay at the edge to it, on two connections
// like the gateway's (one takes the calls, one calls the site's service),
// and what shape adds: a relay at the hub on one connection, like the
// router, and the hub's accounts and imports.
func startRelayEcho(t *testing.T, name string, shape relayShape, size int) *echo {
	t.Helper()
	top, hub, edge := startPlainTLSPair(t, name, "s2_fast", shape == twoRelaysImports)
	edgeIn := "svc.echo"
	var hubOpts []nats.Option
	if shape == twoRelaysImports {
		edgeIn = "tether.svc.req.e1.echo.echo"
		acc := map[string]*server.Account{}
		for _, n := range plainAccounts {
			a, err := hub.LookupAccount(n)
			if err != nil {
				t.Fatal(err)
			}
			acc[n] = a
		}
		for _, err := range []error{
			acc["SVC"].AddServiceExport("edges.*.svc.>", nil),
			acc["CLOUD"].AddServiceImport(acc["SVC"], "edges.*.svc.>", ""),
			acc["CLOUD"].SetServiceImportSharing(acc["SVC"], "edges.*.svc.>", true),
			acc["SVC"].AddStreamExport("tether.svc.req.>", nil),
			acc["E1"].AddStreamImport(acc["SVC"], "tether.svc.req.e1.>", ""),
			acc["SVC"].AddServiceExport("tether.svc.rep.>", nil),
			acc["E1"].AddServiceImport(acc["SVC"], "tether.svc.rep.e1.>", ""),
		} {
			if err != nil {
				t.Fatalf("%s imports: %v", name, err)
			}
		}
		top.reqOpts = append(top.reqOpts, nats.UserInfo("CLOUD", "CLOUD"))
		hubOpts = []nats.Option{nats.UserInfo("SVC", "SVC")}
	}
	e := &echo{top: top, resp: connect(t, top.edgeURL), req: connect(t, top.reqURL, top.reqOpts...),
		payload: randomPayload(size), subject: edgeIn}
	if _, err := e.resp.Subscribe("local.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := e.resp.Flush(); err != nil {
		t.Fatal(err)
	}
	startRelay(t, inProcess(t, edge, "edge-relay"), inProcess(t, edge, "edge-relay-site"), edgeIn, "local.echo", "relay")
	switch shape {
	case twoRelays:
		nc := inProcess(t, hub, "hub-relay")
		startRelay(t, nc, nc, "cloud.echo", "svc.echo", "relay")
		e.subject = "cloud.echo"
	case twoRelaysImports:
		nc := inProcess(t, hub, "hub-relay", hubOpts...)
		startRelay(t, nc, nc, "edges.*.svc.>", edgeIn, "tether.svc.rep.e1")
		e.subject = "edges.e1.svc.echo.echo"
	}
	// Interest in the edge relay's subject and in the hub relay's replies
	// crosses the link asynchronously.
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
