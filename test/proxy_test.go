package test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/pki"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/leaf"
)

// tinyproxy is a real HTTP forward proxy (Debian's tinyproxy) on a free
// loopback port, run in the foreground by the test; it keeps its port
// across restarts.
type tinyproxy struct {
	bin  string
	dir  string
	addr string // 127.0.0.1:port
	proc *binaryProcess
	runs int
}

// tinyproxyBinary returns tinyproxy's path. Outside CI a machine without
// it skips the test; in CI (.ci/run installs it) its absence fails it.
func tinyproxyBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("tinyproxy")
	if err == nil {
		return bin
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("tinyproxy is not installed, and CI must run this test (.ci/run installs it): %v", err)
	}
	t.Skip("tinyproxy is not installed (apt-get install tinyproxy); CI installs it and runs this test")
	return ""
}

// proxyRules is what a tinyproxy run allows.
type proxyRules struct {
	connectPorts []int  // ports CONNECT may reach; others get 403
	auth         string // "user password" required (else 407), or ""
}

// startTinyproxy starts tinyproxy on a free loopback port with rules.
func startTinyproxy(t *testing.T, rules proxyRules) *tinyproxy {
	t.Helper()
	p := &tinyproxy{bin: tinyproxyBinary(t), dir: t.TempDir(), addr: tethertest.FreeAddr(t)}
	p.start(t, rules)
	return p
}

// URL is the proxy's URL for the leaf's proxy key.
func (p *tinyproxy) URL() string { return "http://" + p.addr }

// start runs tinyproxy with rules on p.addr and waits until it accepts
// connections.
func (p *tinyproxy) start(t *testing.T, rules proxyRules) {
	t.Helper()
	_, port, _ := net.SplitHostPort(p.addr)
	conf := []string{
		"Port " + port,
		"Listen 127.0.0.1",
		"Timeout 600",
		"MaxClients 100",
		"LogLevel Connect",
		"Allow 127.0.0.1",
		"DisableViaHeader Yes",
	}
	for _, cp := range rules.connectPorts {
		conf = append(conf, "ConnectPort "+strconv.Itoa(cp))
	}
	if rules.auth != "" {
		conf = append(conf, "BasicAuth "+rules.auth)
	}
	p.runs++
	file := filepath.Join(p.dir, fmt.Sprintf("tinyproxy-%d.conf", p.runs))
	if err := os.WriteFile(file, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.proc = startProcess(t, fmt.Sprintf("tinyproxy (run %d)", p.runs), exec.Command(p.bin, "-d", "-c", file))
	binaryWaitFor(t, 10*time.Second, "tinyproxy to accept connections on "+p.addr, func() error {
		if p.proc.exited() {
			t.Fatalf("tinyproxy exited: %v\n%s%s", p.proc.err, p.proc.stdout.String(), p.proc.stderr.String())
		}
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// kill stops tinyproxy with SIGKILL: every tunnel through it drops.
func (p *tinyproxy) kill(t *testing.T) {
	t.Helper()
	_ = p.proc.cmd.Process.Kill()
	select {
	case <-p.proc.done:
	case <-time.After(10 * time.Second):
		t.Fatal("tinyproxy still running 10s after SIGKILL")
	}
}

// tunnels counts the CONNECT requests for target this run of the proxy logged.
func (p *tinyproxy) tunnels(target string) int {
	log := p.proc.stdout.String() + p.proc.stderr.String()
	return strings.Count(log, "CONNECT "+target+" HTTP/1.1")
}

// portOf returns the port of a tls:// or wss:// URL.
func portOf(t *testing.T, u string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(u[strings.Index(u, "://")+3:])
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return n
}

// hostPort returns the host:port of a tls:// or wss:// URL.
func hostPort(u string) string { return u[strings.Index(u, "://")+3:] }

// proxiedFabric is a hub, its cloud connection and plant-7's bundle.
type proxiedFabric struct {
	store  *accounts.Store
	hub    *hub.Server
	bundle string
	cloud  *nats.Conn
}

func newProxiedFabric(t *testing.T) *proxiedFabric {
	t.Helper()
	f := &proxiedFabric{store: tethertest.NewStore(t)}
	f.hub = tethertest.RunHub(t, tethertest.HubConfig(t, f.store, "hub-1"), nil)
	f.bundle = tethertest.WriteBundle(t, f.store, "plant-7", f.hub)
	f.cloud = tethertest.ConnectCloud(t, f.store, f.hub)
	return f
}

// hubURL is the URL the edge dials over transport.
func (f *proxiedFabric) hubURL(transport string) string {
	if transport == leaf.TransportWebsocket {
		return f.hub.WebsocketURL()
	}
	return f.hub.LeafURL()
}

// credsFile writes "user:password" to a 0600 file.
func credsFile(t *testing.T, userPassword string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "proxy.creds")
	if err := os.WriteFile(path, []byte(userPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runProxiedLeaf starts plant-7's edge over transport through proxy,
// with the credentials in creds ("" for none).
func (f *proxiedFabric) runProxiedLeaf(t *testing.T, transport, proxy, creds string, log *tethertest.LogBuffer) (*leaf.Server, jetstream.JetStream) {
	t.Helper()
	cfg := tethertest.LeafConfig(t, f.bundle)
	cfg.Transport = transport
	cfg.Proxy = proxy
	if creds != "" {
		cfg.ProxyCredentialsFile = creds
	}
	l := tethertest.RunLeaf(t, cfg, log.Logger())
	js, err := jetstream.New(tethertest.Connect(t, l.ClientURL()), jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		t.Fatal(err)
	}
	return l, js
}

// expectCloudHolds waits until the cloud holds total messages of plant-7
// and checks they are p1's 0..total-1, exactly once and in order.
func expectCloudHolds(t *testing.T, cloud *nats.Conn, total int) {
	t.Helper()
	binaryWaitFor(t, 60*time.Second, "the cloud to hold everything", func() error {
		if n := crashCloudCount(t, cloud, "plant-7"); n != total {
			return fmt.Errorf("cloud holds %d of %d", n, total)
		}
		return nil
	})
	if err := crashVerify(crashReadCloud(t, cloud, "plant-7", total, 30*time.Second), total, func(int) bool { return true }); err != nil {
		t.Fatal(err)
	}
}

// waitLinkDown waits until the edge sees its link down.
func waitLinkDown(t *testing.T, l *leaf.Server, d time.Duration) {
	t.Helper()
	tethertest.WaitFor(t, d, func() error {
		if l.Link().Connected {
			return errors.New("link still up")
		}
		return nil
	})
}

// TestProxyTelemetryReachesCloud: an edge whose only configured way out is
// a forward proxy with basic auth links over TLS and over WebSocket, and
// what it buffers reaches the cloud exactly once, in order. The proxy's
// log shows the tunnel to the hub; the hub's TLS is verified end to end
// (the edge trusts only the bundle's CA, so a proxy that terminated TLS
// would fail the handshake).
func TestProxyTelemetryReachesCloud(t *testing.T) {
	tinyproxyBinary(t) // skip or fail before starting anything
	for _, transport := range []string{leaf.TransportTLS, leaf.TransportWebsocket} {
		t.Run(transport, func(t *testing.T) {
			f := newProxiedFabric(t)
			hubURL := f.hubURL(transport)
			p := startTinyproxy(t, proxyRules{connectPorts: []int{portOf(t, hubURL)}, auth: "edge s3cret"})
			var log tethertest.LogBuffer
			l, js := f.runProxiedLeaf(t, transport, p.URL(), credsFile(t, "edge:s3cret"), &log)
			tethertest.WaitLinked(t, l, 20*time.Second)
			if link := l.Link(); link.Proxy != p.URL() || link.Transport != transport {
				t.Errorf("link = %+v, want it through proxy %s over %s", link, p.URL(), transport)
			}
			if n := p.tunnels(hostPort(hubURL)); n < 1 {
				t.Fatalf("the proxy logged no CONNECT to the hub %s: the edge did not use it", hostPort(hubURL))
			}
			publish(t, js, "p1", 0, 1000)
			expectCloudHolds(t, f.cloud, 1000)
			// The proxy saw CONNECTs only: the WebSocket upgrade and
			// everything after it ran inside the edge's TLS to the hub.
			if plog := p.proc.stdout.String() + p.proc.stderr.String(); strings.Count(plog, "Request (file descriptor") != strings.Count(plog, "): CONNECT ") {
				t.Errorf("the proxy saw requests other than CONNECT:\n%s", plog)
			}
			if strings.Contains(log.String(), "s3cret") {
				t.Errorf("the edge's log shows the proxy's password")
			}
			if !log.Contains("dialling the hubs through a forward proxy") || !log.Contains(p.URL()) {
				t.Errorf("the edge does not log which proxy it dials through:\n%s", log.String())
			}
		})
	}
}

// TestProxyRefuses: a proxy that refuses the edge's credentials (407) or
// the hub's port (403) keeps the link down, and the edge says so in its
// log and its status, naming the proxy and the refusal. Once the proxy
// allows the tunnel, what was buffered meanwhile arrives exactly once.
func TestProxyRefuses(t *testing.T) {
	tinyproxyBinary(t) // skip or fail before starting anything
	f := newProxiedFabric(t)
	hubPort := portOf(t, f.hub.LeafURL())

	t.Run("no credentials", func(t *testing.T) {
		p := startTinyproxy(t, proxyRules{connectPorts: []int{hubPort}, auth: "edge right"})
		var log tethertest.LogBuffer
		l, _ := f.runProxiedLeaf(t, leaf.TransportTLS, p.URL(), "", &log)
		expectProxyRefusal(t, l, &log, p, "407", "wants credentials: put user:password in a 0600 file named by proxy_credentials_file")
	})

	t.Run("wrong credentials", func(t *testing.T) {
		p := startTinyproxy(t, proxyRules{connectPorts: []int{hubPort}, auth: "edge right"})
		creds := credsFile(t, "edge:Wr0ngPw")
		var log tethertest.LogBuffer
		l, _ := f.runProxiedLeaf(t, leaf.TransportTLS, p.URL(), creds, &log)
		// tinyproxy answers wrong credentials with 401, none with 407.
		expectProxyRefusal(t, l, &log, p, "401", "refused the credentials of proxy_credentials_file "+creds)
		if strings.Contains(log.String(), "Wr0ngPw") || strings.Contains(l.Status().Link.LastError, "Wr0ngPw") {
			t.Errorf("the edge shows the proxy's password")
		}
	})

	// A limit of nats-server v2.15.2, told rather than hidden: it looks
	// the hub's name up on the edge before it dials the proxy.
	t.Run("hub name the edge cannot resolve", func(t *testing.T) {
		p := startTinyproxy(t, proxyRules{connectPorts: []int{hubPort}})
		cfg := tethertest.LeafConfig(t, tethertest.BundleFile(t, f.store, "plant-7", []string{"tls://hub.invalid:" + strconv.Itoa(hubPort)}, nil))
		cfg.Proxy = p.URL()
		var log tethertest.LogBuffer
		l := tethertest.RunLeaf(t, cfg, log.Logger())
		binaryWaitFor(t, 20*time.Second, "the edge's status to explain the lookup", func() error {
			if e := l.Link().LastError; !strings.Contains(e, `lookup for host "hub.invalid"`) || !strings.Contains(e, "resolve the hubs' names itself") {
				return fmt.Errorf("link %+v", l.Link())
			}
			return nil
		})
		if !log.Contains("resolve the hubs' names itself") {
			t.Errorf("the edge's log does not explain the lookup:\n%s", log.String())
		}
	})

	t.Run("forbidden port, then allowed", func(t *testing.T) {
		p := startTinyproxy(t, proxyRules{connectPorts: []int{hubPort + 1}})
		var log tethertest.LogBuffer
		l, js := f.runProxiedLeaf(t, leaf.TransportTLS, p.URL(), "", &log)
		expectProxyRefusal(t, l, &log, p, "403", "ConnectPort")
		publish(t, js, "p1", 0, 500) // buffered while the proxy refuses
		if l.Link().Connected {
			t.Fatal("the link is up although the proxy refuses the hub's port: the edge bypassed the proxy")
		}
		p.kill(t)
		p.start(t, proxyRules{connectPorts: []int{hubPort}})
		tethertest.WaitLinked(t, l, 20*time.Second)
		if l.Link().LastError != "" {
			t.Errorf("link up, but status still shows the error %q", l.Link().LastError)
		}
		publish(t, js, "p1", 500, 1000)
		expectCloudHolds(t, f.cloud, 1000)
	})
}

// expectProxyRefusal waits for the edge's status to show the proxy's
// refusal (status code want) and checks the edge logged it with a hint
// containing hint.
func expectProxyRefusal(t *testing.T, l *leaf.Server, log *tethertest.LogBuffer, p *tinyproxy, want, hint string) {
	t.Helper()
	var st leaf.Status
	binaryWaitFor(t, 20*time.Second, "the edge's status to show the proxy's refusal", func() error {
		st = l.Status()
		if e := st.Link.LastError; !strings.Contains(e, p.URL()) || !strings.Contains(e, "CONNECT failed: "+want) || !strings.Contains(e, hint) {
			return fmt.Errorf("link %+v, want a last error naming %s, %s and %q", st.Link, p.URL(), want, hint)
		}
		return nil
	})
	t.Logf("status: %s", st.Link.LastError)
	if st.Link.Connected || st.Link.Proxy != p.URL() {
		t.Errorf("link = %+v, want down, through %s", st.Link, p.URL())
	}
	if !log.Contains("the forward proxy did not open a tunnel to the hub") || !log.Contains(want) || !log.Contains(hint) {
		t.Errorf("the edge's log does not explain the refusal:\n%s", log.String())
	}
	if n := log.Count("the forward proxy did not open a tunnel to the hub"); n != 1 {
		t.Errorf("the edge logged the same refusal %d times, want once", n)
	}
}

// TestProxyDropsTunnel: the proxy dies while the edge publishes and
// forwards, and comes back on the same port; the edge links again through
// it and the cloud holds everything published, exactly once, in order.
func TestProxyDropsTunnel(t *testing.T) {
	tinyproxyBinary(t) // skip or fail before starting anything
	for _, transport := range []string{leaf.TransportTLS, leaf.TransportWebsocket} {
		t.Run(transport, func(t *testing.T) {
			f := newProxiedFabric(t)
			hubURL := f.hubURL(transport)
			rules := proxyRules{connectPorts: []int{portOf(t, hubURL)}, auth: "edge s3cret"}
			p := startTinyproxy(t, rules)
			var log tethertest.LogBuffer
			l, js := f.runProxiedLeaf(t, transport, p.URL(), credsFile(t, "edge:s3cret"), &log)
			tethertest.WaitLinked(t, l, 20*time.Second)

			const total = 4000
			var published atomic.Int64
			done := make(chan error, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			go func() { done <- publishCounted(ctx, js, "p1", total, &published) }()

			binaryWaitFor(t, 30*time.Second, "forwarding to be under way", func() error {
				if n := crashCloudCount(t, f.cloud, "plant-7"); n < 200 {
					return fmt.Errorf("cloud holds %d", n)
				}
				return nil
			})
			atKill := published.Load()
			killed := time.Now()
			p.kill(t)
			waitLinkDown(t, l, 10*time.Second)
			down := time.Since(killed)
			t.Logf("proxy killed after %d of %d published; cloud holds %d", atKill, total, crashCloudCount(t, f.cloud, "plant-7"))
			p.start(t, rules)
			restarted := time.Now()
			tethertest.WaitLinked(t, l, 30*time.Second)
			t.Logf("link seen down %s after the kill, up again %s after the proxy accepted connections (reconnect_interval %s)",
				down.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond), tethertest.LeafConfig(t, f.bundle).ReconnectInterval)
			if n := p.tunnels(hostPort(hubURL)); n < 1 {
				t.Fatalf("the edge linked again without a CONNECT through the restarted proxy")
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-ctx.Done():
				t.Fatalf("publisher did not finish: %d of %d", published.Load(), total)
			}
			expectCloudHolds(t, f.cloud, total)
		})
	}
}

// publishCounted publishes p1's 0..total-1 to the edge in chunks, waiting
// for the edge's acknowledgement of each chunk, and counts them.
func publishCounted(ctx context.Context, js jetstream.JetStream, name string, total int, published *atomic.Int64) error {
	const chunk = 100
	for lo := 0; lo < total; lo += chunk {
		var futures []jetstream.PubAckFuture
		for i := lo; i < min(lo+chunk, total); i++ {
			f, err := js.PublishAsync("telemetry."+name, []byte(fmt.Sprintf("%s:%d", name, i)),
				jetstream.WithMsgID(fmt.Sprintf("%s-%d", name, i)))
			if err != nil {
				return fmt.Errorf("publish %d: %w", i, err)
			}
			futures = append(futures, f)
		}
		for i, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("edge did not store message %d: %w", lo+i, err)
			case <-ctx.Done():
				return fmt.Errorf("edge did not acknowledge message %d: %w", lo+i, ctx.Err())
			}
		}
		published.Store(int64(min(lo+chunk, total)))
	}
	return nil
}

// TestProxyEnroll: a device whose only way out is the proxy enrolls
// through it (the proxy's log shows the tunnel before the edge runs), then
// links through it with its new key.
func TestProxyEnroll(t *testing.T) {
	tinyproxyBinary(t) // skip or fail before starting anything
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	p := startTinyproxy(t, proxyRules{connectPorts: []int{portOf(t, h.LeafURL())}, auth: "edge s3cret"})
	tok := tethertest.EnrollToken(t, store, "plant-7", 0, h)
	c := enrollConfig(t)
	c.Proxy, c.ProxyCredentialsFile = p.URL(), credsFile(t, "edge:s3cret")
	var log tethertest.LogBuffer
	if _, err := enroll(t, c, tok, &log); err != nil {
		t.Fatalf("enroll through the proxy: %v\nedge log:\n%s", err, log.String())
	}
	enrollTunnels := p.tunnels(hostPort(h.LeafURL()))
	if enrollTunnels < 1 {
		t.Fatalf("the proxy logged no CONNECT to the hub during enrollment: it did not go through the proxy")
	}
	l := tethertest.RunLeaf(t, c, log.Logger())
	tethertest.WaitLinked(t, l, 20*time.Second)
	if n := p.tunnels(hostPort(h.LeafURL())); n <= enrollTunnels {
		t.Errorf("the proxy logged %d CONNECTs after the edge linked, as many as after enrollment: the edge did not go through it", n)
	}
}

// tlsFront is a TLS terminator in front of a forward proxy: what an https
// proxy is to the edge. It accepts TLS on a free loopback port with a
// certificate for 127.0.0.1 signed by its own CA, and pipes each
// connection's plaintext to the proxy behind it.
type tlsFront struct {
	addr   string
	caFile string // the PEM of the CA that signed its certificate
	ln     net.Listener
	conns  atomic.Int64  // TLS handshakes completed
	done   chan struct{} // closed at cleanup: every pipe ends
}

// startTLSFront starts a TLS terminator for the proxy at backend.
func startTLSFront(t *testing.T, backend string) *tlsFront {
	t.Helper()
	ca, _, err := pki.NewCA("test proxy CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("proxy", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ServerTLS(certPEM, keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFront{caFile: filepath.Join(t.TempDir(), "proxy-ca.pem"), done: make(chan struct{})}
	if err := os.WriteFile(f.caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if f.ln, err = tls.Listen("tcp", "127.0.0.1:0", cfg); err != nil {
		t.Fatal(err)
	}
	f.addr = f.ln.Addr().String()
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(f.done)
		f.ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := f.ln.Accept()
			if err != nil {
				return // closed at cleanup
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.pipe(c.(*tls.Conn), backend)
			}()
		}
	}()
	return f
}

// URL is the https proxy's URL for the leaf's proxy key.
func (f *tlsFront) URL() string { return "https://" + f.addr }

// pipe completes c's handshake and copies between it and the proxy until
// either side closes (or the listener does: cleanup waits for the pipes).
func (f *tlsFront) pipe(c *tls.Conn, backend string) {
	defer c.Close()
	hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.HandshakeContext(hctx); err != nil {
		return // an edge that does not trust the certificate
	}
	f.conns.Add(1)
	b, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		return
	}
	defer b.Close()
	stop := make(chan struct{})
	go func() { // the listener's close ends the pipe
		select {
		case <-stop:
		case <-f.done:
		}
		c.Close()
		b.Close()
	}()
	defer close(stop)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(b, c)
		close(done)
	}()
	_, _ = io.Copy(c, b)
	c.Close()
	b.Close()
	<-done
}

// httpsProxyLeaf starts plant-7's edge over transport through the https
// proxy front, verified with caFile ("" for the system's roots), with
// basic-auth credentials.
func (f *proxiedFabric) httpsProxyLeaf(t *testing.T, transport string, front *tlsFront, caFile string, log *tethertest.LogBuffer) (*leaf.Server, jetstream.JetStream) {
	t.Helper()
	cfg := tethertest.LeafConfig(t, f.bundle)
	cfg.Transport, cfg.Proxy, cfg.ProxyCAFile = transport, front.URL(), caFile
	cfg.ProxyCredentialsFile = credsFile(t, "edge:s3cret")
	l := tethertest.RunLeaf(t, cfg, log.Logger())
	js, err := jetstream.New(tethertest.Connect(t, l.ClientURL()), jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		t.Fatal(err)
	}
	return l, js
}

// TestProxyHTTPS: an edge whose way out is an https forward proxy (TLS to
// the proxy, verified against proxy_ca_file; a real tinyproxy with basic
// auth behind a TLS terminator) links over TLS and over WebSocket, and
// what it buffers reaches the cloud exactly once, in order.
func TestProxyHTTPS(t *testing.T) {
	tinyproxyBinary(t) // skip or fail before starting anything
	for _, transport := range []string{leaf.TransportTLS, leaf.TransportWebsocket} {
		t.Run(transport, func(t *testing.T) {
			f := newProxiedFabric(t)
			hubURL := f.hubURL(transport)
			p := startTinyproxy(t, proxyRules{connectPorts: []int{portOf(t, hubURL)}, auth: "edge s3cret"})
			front := startTLSFront(t, p.addr)
			var log tethertest.LogBuffer
			l, js := f.httpsProxyLeaf(t, transport, front, front.caFile, &log)
			tethertest.WaitLinked(t, l, 20*time.Second)
			if link := l.Link(); link.Proxy != front.URL() || link.Transport != transport {
				t.Errorf("link = %+v, want it through proxy %s over %s", link, front.URL(), transport)
			}
			if front.conns.Load() < 1 || p.tunnels(hostPort(hubURL)) < 1 {
				t.Fatalf("TLS connections to the https proxy: %d, CONNECTs to the hub %s it logged: %d; want both >= 1",
					front.conns.Load(), hostPort(hubURL), p.tunnels(hostPort(hubURL)))
			}
			publish(t, js, "p1", 0, 1000)
			expectCloudHolds(t, f.cloud, 1000)
			if !log.Contains("proxy_ca_file "+front.caFile) || strings.Contains(log.String(), "s3cret") {
				t.Errorf("the edge's log does not name the proxy's CA file, or shows the proxy's password:\n%s", log.String())
			}
		})
	}
}

// TestProxyHTTPSUntrusted: an https proxy whose certificate the edge
// cannot verify (by the system's roots, or by a proxy_ca_file of another
// CA) gets no CONNECT from the edge; the link stays down and the edge's
// status and log name the proxy, the certificate error and the key to set.
func TestProxyHTTPSUntrusted(t *testing.T) {
	tinyproxyBinary(t) // skip or fail before starting anything
	f := newProxiedFabric(t)
	p := startTinyproxy(t, proxyRules{connectPorts: []int{portOf(t, f.hub.LeafURL())}, auth: "edge s3cret"})
	other := startTLSFront(t, p.addr) // only for its CA file
	for _, tc := range []struct {
		name   string
		caFile string
		hint   string
	}{
		{"system roots", "", "under this system's roots: name the CA that signed it in proxy_ca_file"},
		{"another CA", other.caFile, "under the CA of proxy_ca_file " + other.caFile + ": name the CA that signed it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			front := startTLSFront(t, p.addr)
			var log tethertest.LogBuffer
			l, _ := f.httpsProxyLeaf(t, leaf.TransportTLS, front, tc.caFile, &log)
			var st leaf.Status
			binaryWaitFor(t, 20*time.Second, "the edge's status to show the proxy's certificate error", func() error {
				st = l.Status()
				if e := st.Link.LastError; !strings.Contains(e, front.URL()) || !strings.Contains(e, "proxy TLS handshake failed") ||
					!strings.Contains(e, "certificate signed by unknown authority") || !strings.Contains(e, tc.hint) {
					return fmt.Errorf("link %+v, want a last error naming %s, the unknown authority and %q", st.Link, front.URL(), tc.hint)
				}
				return nil
			})
			t.Logf("status: %s", st.Link.LastError)
			if st.Link.Connected || front.conns.Load() != 0 {
				t.Errorf("link %+v, %d TLS connections accepted by the proxy: want down, none", st.Link, front.conns.Load())
			}
			if !log.Contains("the forward proxy did not open a tunnel to the hub") || !log.Contains(tc.hint) {
				t.Errorf("the edge's log does not explain the certificate error:\n%s", log.String())
			}
		})
	}
	if n := p.tunnels(hostPort(f.hub.LeafURL())); n != 0 {
		t.Errorf("the proxy logged %d CONNECTs to the hub from edges that could not verify it, want 0", n)
	}
}

// TestProxyConnectNamesHub: through a proxy the edge asks for a tunnel to
// the hub by the name in its bundle, not by the address it looked up
// itself (README "Through a forward proxy": the proxy resolves the name
// again, and its rules see the name).
func TestProxyConnectNamesHub(t *testing.T) {
	tinyproxyBinary(t) // skip or fail before starting anything
	f := newProxiedFabric(t)
	port := strconv.Itoa(portOf(t, f.hub.LeafURL()))
	p := startTinyproxy(t, proxyRules{connectPorts: []int{portOf(t, f.hub.LeafURL())}})
	cfg := tethertest.LeafConfig(t, tethertest.BundleFile(t, f.store, "plant-7", []string{"tls://localhost:" + port}, nil))
	cfg.Proxy = p.URL()
	var log tethertest.LogBuffer
	l := tethertest.RunLeaf(t, cfg, log.Logger())
	tethertest.WaitLinked(t, l, 20*time.Second)
	if byName, byAddr := p.tunnels("localhost:"+port), p.tunnels("127.0.0.1:"+port); byName < 1 || byAddr != 0 {
		t.Errorf("the proxy logged %d CONNECTs to localhost:%s and %d to 127.0.0.1:%s; want the name only", byName, port, byAddr, port)
	}
}
