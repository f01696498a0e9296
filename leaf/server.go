package leaf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-fabric/tether/internal/sitefile"
	"github.com/tether-fabric/tether/leaf/forwarder"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/nats-io/nuid"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/dirlock"
	"github.com/tether-fabric/tether/internal/natslog"
	"github.com/tether-fabric/tether/internal/netaddr"
	"github.com/tether-fabric/tether/internal/pki"
)

const (
	readyTimeout = 15 * time.Second
	// linkPoll is how often the link state is sampled while the link is
	// down, and for linkBurst after the embedded server logs a connection
	// event; linkIdlePoll while it stays up. A link that closes is noticed
	// at once: the server logs the close, which wakes the watcher.
	linkPoll     = 100 * time.Millisecond
	linkIdlePoll = time.Second
	linkBurst    = 10 * time.Second
	// linkHeld is how long a link must stay up to be logged as up: the
	// hubs close a refused link (a second run of the edge, hub/links.go)
	// within moments of accepting it, and a link that never held is not
	// news. Links closed sooner count as refused, in a row.
	linkHeld = time.Second
	// refusedAfter is how many links in a row must close within linkHeld
	// for the edge to report them refused; refusedLogEvery bounds how
	// often it logs so while they go on.
	refusedAfter    = 3
	refusedLogEvery = time.Minute
	// syncQueueLen is the message queue of the in-process connection's
	// synchronous subscriptions.
	syncQueueLen = 64
	// runCertValidity is how long a run's TLS client certificate is valid;
	// the hubs do not check it (only its key), TLS stacks in between may.
	runCertValidity = 10 * 365 * 24 * time.Hour
)

// Server is a running (or startable) edge.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ns     *server.Server
	opts   *server.Options
	bundle *sitefile.Bundle
	nc     *nats.Conn // the plumbing account's
	siteNC *nats.Conn // the edge's own in the site account
	up     *forwarder.Forwarder
	down   *downlink
	gw     *gateway
	id     *identity
	// lock holds the data dir for this process (released at Shutdown).
	lock *dirlock.Lock
	// reserve keeps room for the buffer's purges on a full filesystem.
	reserve *spaceReserve

	attempts  attempts
	stuck     chan error
	stuckSent bool // only touched by watchLink's goroutine
	// shortLinks counts links closed within linkHeld, in a row.
	shortLinks atomic.Int32
	// bufferMaxBytes and commandsMaxBytes are the budgets of the buffer
	// and the COMMANDS stream fitted to the filesystem at start
	// (cfg.BufferMaxBytes stays the configured budget); refitLoop keeps
	// the buffer's fitted while the edge runs, if the filesystem could be
	// measured (measured).
	bufferMaxBytes, commandsMaxBytes int64
	measured                         bool
	// measureRoom is storeRoom; tests replace it.
	measureRoom func(dataDir string) (free, room uint64, err error)
	// getenv reads the environment (the proxy variables); tests replace it.
	getenv func(string) string
	// proxy is the forward proxy the link goes through, if any.
	proxy linkProxy

	// linkEvent wakes the link watcher: the embedded server logged a
	// connection event.
	linkEvent chan struct{}
	// linkChanged wakes the report loop: the link went up or down.
	linkChanged chan struct{}

	mu   sync.Mutex
	link Link
	// linkErr is why the last dial of a hub failed; cleared on link-up.
	linkErr string
	// lost is closed when the link goes down, then replaced.
	lost chan struct{}
	// upLogged is whether the current link held and was logged up.
	upLogged bool
	// refusedLogged is when Link.Refused was last logged.
	refusedLogged time.Time

	cancel       context.CancelFunc
	wg           sync.WaitGroup
	shutdownOnce sync.Once
}

// Link is the state of the edge's connection to the hubs.
type Link struct {
	// Connected is true while a leaf connection to a hub is up.
	Connected bool `json:"connected"`
	// Since is when the link last changed state (or when the edge started).
	Since time.Time `json:"since"`
	// Hub is the address of the hub the edge is attached to, if connected.
	Hub string `json:"hub,omitempty"`
	// RTT is the last measured round-trip time to the hub.
	RTT string `json:"rtt,omitempty"`
	// Transport is "tls" or "websocket".
	Transport string `json:"transport"`
	// Compression is the negotiated compression mode, if connected.
	Compression string `json:"compression,omitempty"`
	// Proxy is the forward proxy the link goes through ("" when direct).
	Proxy string `json:"proxy,omitempty"`
	// LastError is why the last attempt to reach a hub failed, while the
	// link is down.
	LastError string `json:"last_error,omitempty"`
	// Refused says, while the hubs keep closing the link right after it
	// opens, how often and why that most likely is; cleared when a link
	// holds.
	Refused string `json:"refused,omitempty"`
}

// New validates cfg and returns an edge ready to Start. It does no I/O.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("leaf config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, stuck: make(chan error, 1), measureRoom: storeRoom, getenv: os.Getenv,
		linkEvent: make(chan struct{}, 1), linkChanged: make(chan struct{}, 1), lost: make(chan struct{})}, nil
}

// Start loads the bundle, starts the embedded server and the link monitor,
// and returns once local clients can connect. It does not wait for the hub.
func (s *Server) Start(ctx context.Context) error {
	if s.ns != nil {
		return errors.New("leaf already started")
	}
	b, err := sitefile.LoadBundle(s.cfg.Bundle)
	if err != nil {
		return err
	}
	s.bundle = b
	s.log = s.log.With("edge", b.Edge)
	id, err := newIdentity(b.Creds)
	if err != nil {
		return fmt.Errorf("bundle %s: creds: %w", s.cfg.Bundle, err)
	}
	s.id = id
	pool, err := pki.Pool([]byte(b.CA))
	if err != nil {
		return fmt.Errorf("bundle %s: ca: %w", s.cfg.Bundle, err)
	}
	probe, err := buildOptions(s.cfg, b, id.sign, nil) // nothing on disk for a bad bundle
	if err != nil {
		return fmt.Errorf("bundle %s: %w", s.cfg.Bundle, err)
	}
	if s.proxy, err = linkProxyFor(s.cfg, probe, s.getenv, s.log); err != nil {
		return fmt.Errorf("edge %s: %w", b.Edge, err)
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// A read-only or foreign-owned data dir is named at once, before the
	// embedded server starts (its JetStream would fail to start).
	if err := checkWritable(s.cfg.DataDir); err != nil {
		return fmt.Errorf("edge %s: data dir %s is not writable (the edge keeps its buffer there): %w", b.Edge, s.cfg.DataDir, err)
	}
	lock, err := openDataDir(s.cfg.DataDir, b.Edge, b.Account)
	if err != nil {
		return fmt.Errorf("edge %s: %w", b.Edge, err)
	}
	s.lock = lock
	started := false
	defer func() {
		if !started {
			lock.Release()
		}
	}()
	// The space reserve is made before the budgets are fitted, so they
	// leave it out of the room they share.
	s.reserve = newSpaceReserve(s.cfg.DataDir)
	if err := s.reserve.ensure(); err != nil {
		s.log.Warn("no space reserve: on a full filesystem the buffer may not drop what the cloud confirmed until space returns", "err", err)
	}
	if err := s.fitBudgets(); err != nil {
		return fmt.Errorf("edge %s: data dir %s: %w", b.Edge, s.cfg.DataDir, err)
	}
	// Each run of the edge has its own TLS client key, made here and never
	// written: the hubs tell this run reconnecting (same key) from a second
	// process with the same creds (another key, whatever name it gives),
	// which they refuse (hub/links.go). The name stays per run for people.
	runName := contract.EdgeDomain(b.Edge) + "-" + nuid.Next()[16:]
	runCert, err := pki.RunCertificate(runName, runCertValidity)
	if err != nil {
		return fmt.Errorf("edge %s: %w", b.Edge, err)
	}
	opts, err := buildOptions(s.cfg, b, id.sign, pki.WithClientCertificate(pki.ClientTLS(pool), runCert))
	if err != nil {
		return fmt.Errorf("bundle %s: %w", s.cfg.Bundle, err)
	}
	opts.ServerName = runName
	s.proxy.apply(opts.LeafNode.Remotes[0])
	internal, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	internalPub, _ := internal.PublicKey()
	siteAdmin, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	siteAdminPub, _ := siteAdmin.PublicKey()
	if err := applyLocalAccounts(opts, localUsers{plumbing: internalPub, site: siteAdminPub}); err != nil {
		return fmt.Errorf("edge %s: %w", b.Edge, err)
	}
	if err := netaddr.CheckFree(opts.Host, opts.Port); err != nil {
		return fmt.Errorf("edge %s: listen: %w", b.Edge, err)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("edge %s: %w", b.Edge, err)
	}
	// Debug on at the server, filtered by the adapter: the watchdog needs
	// to see the connect attempts, which the server logs at debug level.
	nl := natslog.New(s.log)
	nl.Observe = s.observeServerLog
	sl := newServerLog(nl, s.log, b.Edge)
	ns.SetLoggerV2(linkErrLog{Logger: sl, note: s.noteLinkErr}, true, false, false)
	s.ns, s.opts = ns, opts
	go ns.Start()
	wait := readyTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
		wait = time.Until(d)
	}
	if err := waitReady(ctx, ns, sl.fatal, wait); err != nil {
		ns.Shutdown()
		return fmt.Errorf("edge %s: %w", b.Edge, err)
	}
	if err := s.enableJetStream(); err != nil {
		ns.Shutdown()
		return fmt.Errorf("edge %s: %w", b.Edge, err)
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("tether-leaf"), nats.MaxReconnects(-1),
		nats.Nkey(internalPub, internal.Sign),
		nats.CustomInboxPrefix(uplinkInbox),
		// The only synchronous subscription is the downlink's inbox, which
		// holds a pull's answer or two; the default queue (65536 slots,
		// 512 KiB) would sit in the heap for nothing.
		nats.SyncQueueLen(syncQueueLen))
	if err != nil {
		ns.Shutdown()
		return fmt.Errorf("edge %s: in-process connection: %w", b.Edge, err)
	}
	s.nc = nc
	// The edge's own connection in the site account, where the buffer and
	// the COMMANDS stream live.
	siteNC, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("tether-leaf-site"), nats.MaxReconnects(-1),
		nats.Nkey(siteAdminPub, siteAdmin.Sign))
	if err != nil {
		nc.Close()
		ns.Shutdown()
		return fmt.Errorf("edge %s: in-process site connection: %w", b.Edge, err)
	}
	s.siteNC = siteNC
	s.link = Link{Since: time.Now(), Transport: s.cfg.Transport, Proxy: s.proxyURL()}
	if err := errors.Join(s.startStatusService(), s.startControl()); err != nil {
		nc.Close()
		ns.Shutdown()
		return err
	}
	up, err := forwarder.New(ctx, forwarder.Config{
		Edge: b.Edge, Conn: nc, BufferConn: siteNC, DataDir: s.cfg.DataDir, StallAfter: s.cfg.StallAfter,
		DropOldest: s.cfg.BufferFull == BufferDropOldest, MaxBytes: s.bufferMaxBytes,
		Linked: func() bool { return s.Link().Connected }, Log: s.log,
		FreeSpace: s.releaseReserve,
	})
	if err != nil {
		nc.Close()
		ns.Shutdown()
		return fmt.Errorf("edge %s: %w", b.Edge, err)
	}
	s.up = up
	// The origin names this incarnation of the buffer: a new one after the
	// edge's store was wiped (the cloud sees Tether-Origin change).
	s.log.Info("telemetry buffer ready", "origin", up.Origin(), "budget_bytes", up.Budget(), "when_full", s.cfg.BufferFull)
	if err := s.ensureSiteCommands(ctx); err != nil {
		nc.Close()
		ns.Shutdown()
		return fmt.Errorf("edge %s: %w", b.Edge, err)
	}
	down, err := startDownlink(ctx, b.Edge, nc, s.cfg.DataDir, func() bool { return s.Link().Connected }, s.linkLost)
	if err != nil {
		nc.Close()
		ns.Shutdown()
		return fmt.Errorf("edge %s: %w", b.Edge, err)
	}
	s.down = down
	if err := s.startGateway(internal, siteAdmin); err != nil {
		nc.Close()
		ns.Shutdown()
		return fmt.Errorf("edge %s: %w", b.Edge, err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(5)
	go func() {
		defer s.wg.Done()
		s.gw.run(mctx)
	}()
	go func() {
		defer s.wg.Done()
		s.reportLoop(mctx)
	}()
	go func() {
		defer s.wg.Done()
		down.run(mctx)
	}()
	go func() {
		defer s.wg.Done()
		s.watchLink(mctx)
	}()
	go func() {
		defer s.wg.Done()
		up.Run(mctx)
	}()
	if s.measured {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.refitLoop(mctx)
		}()
	}
	started = true
	s.log.Info("edge ready", "client", s.ClientURL(), "domain", b.Domain, "transport", s.cfg.Transport, "hubs", s.hubURLs(), "proxy", s.proxy)
	return nil
}

func (s *Server) hubURLs() []string {
	if s.cfg.Transport == TransportWebsocket {
		return s.bundle.WebsocketURLs
	}
	return s.bundle.HubURLs
}

// watchLink samples the leaf connection and logs every change: every
// linkPoll while the link is down or for linkBurst after a connection
// event, every linkIdlePoll while it stays up.
func (s *Server) watchLink(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	var burstUntil time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.linkEvent:
			burstUntil = time.Now().Add(linkBurst)
		}
		s.sampleLink()
		now := time.Now()
		s.checkStuck(now)
		wait := linkIdlePoll
		if !s.Link().Connected || now.Before(burstUntil) {
			wait = linkPoll
		}
		t.Stop()
		t.Reset(wait)
	}
}

// observeServerLog sees every message of the embedded server: connect
// attempts for the watchdog, connection events to wake the link watcher.
func (s *Server) observeServerLog(format string) {
	s.attempts.observe(format)
	if strings.Contains(format, "connection closed") || strings.HasPrefix(format, "Leafnode") {
		select {
		case s.linkEvent <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// linkLost returns a channel that is closed when the link next goes down.
// Read it before checking the link is up: a link that went down before is
// then seen down.
func (s *Server) linkLost() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

func (s *Server) sampleLink() {
	lz, err := s.ns.Leafz(nil)
	next := Link{Transport: s.cfg.Transport, Proxy: s.proxyURL()}
	if err == nil && len(lz.Leafs) > 0 {
		l := lz.Leafs[0]
		next.Connected = true
		next.Hub = fmt.Sprintf("%s:%d", l.IP, l.Port)
		next.RTT = l.RTT
		next.Compression = l.Compression
	}
	s.mu.Lock()
	prev := s.link
	prevLogged := s.upLogged
	next.Since = prev.Since
	if next.Connected {
		s.linkErr = ""
	} else {
		next.LastError = s.linkErr
	}
	if next.Connected != prev.Connected || next.Hub != prev.Hub {
		next.Since = time.Now()
		s.upLogged = false
	}
	held := next.Connected && !s.upLogged && time.Since(next.Since) >= linkHeld
	next.Refused = prev.Refused // until a link holds
	if held {
		s.upLogged = true
		next.Refused, s.refusedLogged = "", time.Time{}
	}
	s.link = next
	if prev.Connected && !next.Connected {
		close(s.lost)
		s.lost = make(chan struct{})
	}
	s.mu.Unlock()
	if next.Connected != prev.Connected || next.Hub != prev.Hub {
		select {
		case s.linkChanged <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
	switch {
	case held:
		s.log.Info("link up", "remote", next.Hub, "rtt", next.RTT, "compression", next.Compression)
	case next.Connected && (!prev.Connected || prev.Hub != next.Hub):
		s.log.Debug("link opened", "remote", next.Hub)
	case !next.Connected && prev.Connected:
		upFor := time.Since(prev.Since)
		if prevLogged {
			s.log.Warn("link down", "remote", prev.Hub, "was_up_for", upFor.Round(time.Millisecond).String())
		} else {
			s.log.Debug("link closed before it held", "remote", prev.Hub, "was_up_for", upFor.Round(time.Millisecond).String())
		}
		s.noteShortLink(upFor)
	}
}

// noteShortLink tells when the hubs keep closing the link right after it
// opens: what a hub does to a second process that uses the same edge
// identity as a linked one (hub/links.go). It logs that at most once per
// refusedLogEvery and keeps it in Link.Refused until a link holds.
func (s *Server) noteShortLink(upFor time.Duration) {
	if upFor >= linkHeld {
		s.shortLinks.Store(0)
		return
	}
	n := s.shortLinks.Add(1)
	if n < refusedAfter {
		return
	}
	// A network that drops connections looks the same from here (the
	// soak's sub-second flaps did): say both.
	const why = "the hubs keep closing this edge's link right after it opens: most likely another process is linked with this edge's identity (the hubs' logs name both; stop one, or rotate or revoke the edge if its creds were copied), unless the network to the hubs keeps dropping connections"
	now := time.Now()
	s.mu.Lock()
	s.link.Refused = fmt.Sprintf("%s (%d links in a row closed within %s, the last at %s)", why, n, linkHeld, now.UTC().Format(time.RFC3339))
	due := s.refusedLogged.IsZero() || now.Sub(s.refusedLogged) >= refusedLogEvery
	if due {
		s.refusedLogged = now
	}
	s.mu.Unlock()
	if due {
		s.log.Error(why, "closed_in_a_row", n)
	}
}

// Link returns the current link state: at most linkPoll old while the link
// is down or changing, at most linkIdlePoll old while it stays up (a close
// is noticed at once).
func (s *Server) Link() Link {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.link
}

// WaitLinked waits until the link to a hub is up.
func (s *Server) WaitLinked(ctx context.Context) error {
	t := time.NewTicker(linkPoll / 2)
	defer t.Stop()
	for {
		if s.ns.NumLeafNodes() > 0 {
			s.sampleLink()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("edge %s: link to hub not up: %w", s.bundle.Edge, ctx.Err())
		case <-t.C:
		}
	}
}

// Edge returns the edge's name (after Start).
func (s *Server) Edge() string { return s.bundle.Edge }

// Domain returns the edge's JetStream domain (after Start).
func (s *Server) Domain() string { return s.bundle.Domain }

// ClientURL is the local client URL.
func (s *Server) ClientURL() string {
	return fmt.Sprintf("nats://%s:%d", s.opts.Host, s.opts.Port)
}

// InternalConn returns the edge's own in-process connection in the
// plumbing account (the forwarder's, not a site client's), for
// diagnostics and tests that must speak on the edge's plumbing subjects.
func (s *Server) InternalConn() *nats.Conn { return s.nc }

// SiteConn returns the edge's own in-process connection in the site
// account, where the buffer and the COMMANDS stream live (the edge's
// JetStream), for diagnostics and tests.
func (s *Server) SiteConn() *nats.Conn { return s.siteNC }

// NATS returns the embedded server, for monitoring calls.
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the edge. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.ns == nil {
		return nil
	}
	s.shutdownOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		s.gw.close()
		if s.nc != nil {
			s.nc.Close()
		}
		if s.siteNC != nil {
			s.siteNC.Close()
		}
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.lock.Release()
		s.log.Info("edge stopped")
	})
	return nil
}
