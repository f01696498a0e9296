// Package tethertest starts real Tether hubs and edges in process for tests:
// every server listens on a free loopback port, keeps its data in
// t.TempDir() and is shut down by t.Cleanup.
package tethertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/fleet"
	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/leaf"
)

// NewStore creates an identity store for hubs on loopback. Its fabric hub
// URLs are placeholders; bundles made with Bundle point at real hubs.
func NewStore(t testing.TB) *accounts.Store {
	t.Helper()
	opts := accounts.DefaultInitOptions()
	s, err := accounts.Init(filepath.Join(t.TempDir(), "store"), opts)
	if err != nil {
		t.Fatalf("init store: %v", err)
	}
	return s
}

// HubConfig returns a hub config on free loopback ports for store.
func HubConfig(t testing.TB, store *accounts.Store, name string) hub.Config {
	t.Helper()
	c := hub.Defaults()
	c.Name = name
	c.Store = store.Dir()
	c.DataDir = filepath.Join(t.TempDir(), name)
	c.Listen = "127.0.0.1:0"
	c.LeafListen = "127.0.0.1:0"
	c.WebsocketListen = "127.0.0.1:0"
	c.MonitorListen = "127.0.0.1:0"
	return c
}

// RunHub starts a hub with the given config.
func RunHub(t testing.TB, c hub.Config, log *slog.Logger) *hub.Server {
	t.Helper()
	h, err := startHub(t, c, log)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Listen == "" { // a cluster is ready once all its hubs run
		waitHubReady(t, h)
	}
	return h
}

// startHub starts a hub that t.Cleanup shuts down.
func startHub(t testing.TB, c hub.Config, log *slog.Logger) (*hub.Server, error) {
	h, err := hub.New(c, log)
	if err != nil {
		return nil, fmt.Errorf("new hub: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("start hub: %w", err)
	}
	shutdownAtCleanup(t, h)
	return h, nil
}

// shutdownAtCleanup shuts h down when t ends, unless RestartHub replaced
// it first. The cleanup must not hold a hub that a test shut down and
// replaced: holding every restarted hub kept each one's stopped
// nats-server (raft queues, caches) alive until the test ended, and the
// soak's memory grew by about 15 MB a minute with a hub restart a minute.
func shutdownAtCleanup(t testing.TB, h *hub.Server) {
	r := &hubRef{h: h}
	startedHubs.Store(h, r)
	t.Cleanup(func() {
		if h := r.take(); h != nil {
			startedHubs.Delete(h)
			_ = h.Shutdown(context.Background())
		}
	})
}

// startedHubs maps each hub started here and not yet shut down at cleanup
// or replaced to its cleanup's reference.
var startedHubs sync.Map // *hub.Server -> *hubRef

// hubRef is a hub a cleanup will shut down, until taken.
type hubRef struct {
	mu sync.Mutex
	h  *hub.Server
}

func (r *hubRef) take() *hub.Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.h
	r.h = nil
	return h
}

// forgetHub drops h, shut down by its test, from its cleanup.
func forgetHub(h *hub.Server) {
	if r, ok := startedHubs.LoadAndDelete(h); ok {
		r.(*hubRef).take()
	}
}

func waitHubReady(t testing.TB, h *hub.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.WaitReady(ctx); err != nil {
		t.Fatalf("hub ready: %v", err)
	}
}

// RunCluster starts n hubs routed to each other and waits for JetStream.
// Route ports are reserved up front (every hub must know all routes to
// form a JetStream cluster); if another process takes one in between, the
// cluster is started again on new ports.
func RunCluster(t testing.TB, store *accounts.Store, n int) []*hub.Server {
	t.Helper()
	return RunClusterLogged(t, store, n, nil)
}

// RunClusterLogged is RunCluster with hub i logging into logs(i) (nil
// logs: no logging).
func RunClusterLogged(t testing.TB, store *accounts.Store, n int, logs func(i int) *LogBuffer) []*hub.Server {
	t.Helper()
	for attempt := 0; ; attempt++ {
		hubs, err := startCluster(t, store, n, logs)
		if err == nil {
			return hubs
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 2 {
			t.Fatalf("cluster: %v", err)
		}
	}
}

func startCluster(t testing.TB, store *accounts.Store, n int, logs func(i int) *LogBuffer) ([]*hub.Server, error) {
	t.Helper()
	var routes, listens []string
	for i := 0; i < n; i++ {
		addr := FreeAddr(t)
		listens = append(listens, addr)
		routes = append(routes, "tls://"+addr)
	}
	// A forming cluster elects its JetStream meta leader and then every
	// hub creates the CLOUD streams and buckets (R3), each waiting out "no
	// leader" answers: on a loaded 2-core machine that took over 30 s
	// (seen twice in a full run).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var hubs []*hub.Server
	stopAll := func() {
		for _, h := range hubs {
			_ = h.Shutdown(context.Background())
		}
	}
	for i := 0; i < n; i++ {
		c := HubConfig(t, store, fmt.Sprintf("hub-%d", i+1))
		c.Cluster.Listen = listens[i]
		c.Cluster.Routes = routes
		var log *slog.Logger
		if logs != nil {
			log = logs(i).Logger()
		}
		h, err := hub.New(c, log)
		if err == nil {
			err = h.Start(ctx)
		}
		if err != nil {
			stopAll()
			return nil, err
		}
		hubs = append(hubs, h)
		shutdownAtCleanup(t, h)
	}
	for _, h := range hubs {
		if err := h.WaitReady(ctx); err != nil {
			stopAll()
			return nil, err
		}
	}
	return hubs, nil
}

// RestartHub starts h again after it was shut down, on its data directory
// and on the client and leafnode ports it had (the route address is in its
// config already), so clients, proxies and the other hubs of its cluster
// find it where they left it. It returns once the hub is ready; the caller
// uses the returned hub from then on.
func RestartHub(t testing.TB, h *hub.Server, log *slog.Logger) *hub.Server {
	t.Helper()
	forgetHub(h)
	c := h.Config()
	c.Listen = strings.TrimPrefix(h.ClientURL(), "tls://")
	c.LeafListen = strings.TrimPrefix(h.LeafURL(), "tls://")
	// While the hub was down, one of its ports may have become the local
	// port of an outgoing connection for a moment (ports picked by the
	// kernel come from the ephemeral range): try again for a while.
	deadline := time.Now().Add(30 * time.Second)
	for {
		restarted, err := startHub(t, c, log)
		if err == nil {
			waitHubReady(t, restarted)
			return restarted
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatalf("restart hub %s: %v", c.Name, err)
		}
		time.Sleep(200 * time.Millisecond) // retry interval
	}
}

// FreeAddr returns a loopback host:port that was free a moment ago, for
// configurations that must name each other's ports before they start.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// WriteBundle adds edge to the store (if needed, pushing its account to
// the hubs) and writes its bundle, pointed at the given hubs, to a 0600
// file; it returns the file's path.
func WriteBundle(t testing.TB, store *accounts.Store, edge string, hubs ...*hub.Server) string {
	t.Helper()
	AddEdge(t, store, edge, hubs...)
	var tlsURLs, wsURLs []string
	for _, h := range hubs {
		tlsURLs = append(tlsURLs, h.LeafURL())
		wsURLs = append(wsURLs, h.WebsocketURL())
	}
	return BundleFile(t, store, edge, tlsURLs, wsURLs)
}

// AddEdge adds edge to the store unless it exists and pushes its account
// to the given running hubs.
func AddEdge(t testing.TB, store *accounts.Store, edge string, hubs ...*hub.Server) {
	t.Helper()
	addEdge(t, store, edge, store.AddEdge, hubs...)
}

// addEdge creates edge with create unless it exists, pushes its account to
// the hubs and prepares its command consumer.
func addEdge(t testing.TB, store *accounts.Store, edge string, create func(string) (*accounts.Edge, error), hubs ...*hub.Server) {
	t.Helper()
	if _, err := store.Edge(edge); err == nil {
		return
	}
	if _, err := create(edge); err != nil {
		t.Fatalf("add edge: %v", err)
	}
	PushAccount(t, store, contract.EdgeAccountName(edge), hubs...)
	if len(hubs) > 0 {
		cloud := ConnectCloud(t, store, hubs[0])
		defer cloud.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := fleet.PrepareEdge(ctx, cloud, edge); err != nil {
			t.Fatalf("prepare edge %s: %v", edge, err)
		}
	}
}

// BundleFile writes the edge's bundle with the given hub URLs to a 0600
// file and returns its path.
func BundleFile(t testing.TB, store *accounts.Store, edge string, tlsURLs, wsURLs []string) string {
	t.Helper()
	b, err := store.Bundle(edge)
	if err != nil {
		t.Fatalf("bundle: %v", err)
	}
	b.HubURLs, b.WebsocketURLs = tlsURLs, wsURLs
	path := filepath.Join(t.TempDir(), edge+".bundle")
	if err := sitefile.WriteBundle(path, b); err != nil {
		t.Fatalf("write bundle: %v", err)
	}
	return path
}

// PushAccount pushes the named account to the hubs through the first one
// and fails the test unless every hub acknowledged it.
func PushAccount(t testing.TB, store *accounts.Store, name string, hubs ...*hub.Server) {
	t.Helper()
	if len(hubs) == 0 {
		return
	}
	nc, err := fleet.ConnectSystem(store, hubs[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := fleet.PushAccount(ctx, store, nc, name)
	if err != nil {
		t.Fatalf("push %s: %v (%+v)", name, err, res)
	}
	if len(res) != len(hubs) {
		t.Fatalf("push %s: %d hubs answered, want %d: %+v", name, len(res), len(hubs), res)
	}
}

// LeafConfig returns an edge config on a free loopback port.
func LeafConfig(t testing.TB, bundle string) leaf.Config {
	t.Helper()
	c := leaf.Defaults()
	c.Bundle = bundle
	c.DataDir = t.TempDir()
	c.Listen = "127.0.0.1:0"
	c.ReconnectInterval = 250 * time.Millisecond
	return c
}

// RunLeaf starts an edge with the given config; it does not wait for the link.
func RunLeaf(t testing.TB, c leaf.Config, log *slog.Logger) *leaf.Server {
	t.Helper()
	l, err := leaf.New(c, log)
	if err != nil {
		t.Fatalf("new leaf: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.Start(ctx); err != nil {
		t.Fatalf("start leaf: %v", err)
	}
	t.Cleanup(func() { _ = l.Shutdown(context.Background()) })
	return l
}

// WaitLinked waits up to d for the edge's link to be up.
func WaitLinked(t testing.TB, l *leaf.Server, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := l.WaitLinked(ctx); err != nil {
		t.Fatal(err)
	}
}

// ConnectCloud connects to a hub with the store's cloud user.
func ConnectCloud(t testing.TB, store *accounts.Store, h *hub.Server) *nats.Conn {
	t.Helper()
	return Connect(t, h.ClientURL(), nats.UserCredentials(store.CloudCredsFile()), nats.RootCAs(store.CAFile()))
}

// Connect dials url and closes the connection at cleanup.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.Timeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// WaitFor polls cond every 20ms until it returns nil or d passes, then
// fails the test with cond's last error.
func WaitFor(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LogBuffer is a concurrency-safe log sink for asserting log lines.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger returns a debug-level text logger writing into the buffer.
func (b *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Contains reports whether any logged line contains s.
func (b *LogBuffer) Contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Contains(b.buf.String(), s)
}

// Count returns how many times s occurs in the log.
func (b *LogBuffer) Count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

// String returns everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ProcRSS reads VmRSS, the resident set size of process pid, in bytes,
// from /proc.
func ProcRSS(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of pid %d: %q: %w", pid, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
