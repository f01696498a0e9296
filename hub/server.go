package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tether-fabric/tether/contract"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/internal/dirlock"
	"github.com/tether-fabric/tether/internal/natslog"
	"github.com/tether-fabric/tether/internal/netaddr"
	"github.com/tether-fabric/tether/internal/pki"
	"github.com/tether-fabric/tether/internal/securefile"
)

const (
	// readyTimeout bounds how long Start waits for the listeners.
	readyTimeout = 15 * time.Second
	// accountFetchTimeout bounds how long a hub asks its peers for an
	// account it does not know while a connection waits. It stays below
	// an edge's first ping so the edge hears "Authorization Violation"
	// rather than timing out.
	accountFetchTimeout = time.Second
)

// Server is a running (or startable) hub.
type Server struct {
	cfg  Config
	log  *slog.Logger
	ns   *server.Server
	opts *server.Options

	ready    chan struct{} // closed when JetStream and streams are set up
	readyErr error
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	shutdownOnce sync.Once
	// lock holds the data dir for this process (released at Shutdown).
	lock *dirlock.Lock
}

// New validates cfg and returns a hub ready to Start. It does no I/O.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("hub config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log.With("hub", cfg.Name), ready: make(chan struct{})}, nil
}

// Start loads the store, starts the embedded server and returns once its
// listeners accept connections. JetStream in a cluster may still be electing
// a leader; use WaitJetStream for that.
func (s *Server) Start(ctx context.Context) error {
	if s.ns != nil {
		return errors.New("hub already started")
	}
	store, err := accounts.Open(s.cfg.Store)
	if err != nil {
		return err
	}
	m, err := loadMaterial(store)
	if err != nil {
		return err
	}
	opts, err := buildOptions(s.cfg, m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// One process per data dir: a second hub on it would reuse the
	// first one's JetStream store.
	lock, err := dirlock.Acquire(s.cfg.DataDir, "hub")
	if err != nil {
		return fmt.Errorf("hub %s: %w", s.cfg.Name, err)
	}
	started := false
	defer func() {
		if started {
			s.lock = lock
		} else {
			lock.Release()
		}
	}()
	res, err := server.NewDirAccResolver(filepath.Join(s.cfg.DataDir, "jwt"), 0, time.Minute, server.RenameDeleted,
		server.FetchTimeout(accountFetchTimeout))
	if err != nil {
		return fmt.Errorf("account resolver: %w", err)
	}
	accs, err := store.Accounts()
	if err != nil {
		return err
	}
	for _, a := range accs {
		if err := res.Store(a.Pub, a.JWT); err != nil {
			return fmt.Errorf("preload account %s: %w", a.Name, err)
		}
	}
	opts.AccountResolver = res

	for _, l := range []struct {
		key  string
		host string
		port int
	}{
		{"listen", opts.Host, opts.Port}, {"leaf_listen", opts.LeafNode.Host, opts.LeafNode.Port},
		{"websocket_listen", opts.Websocket.Host, opts.Websocket.Port}, {"monitor_listen", opts.HTTPHost, opts.HTTPPort},
		{"cluster.listen", opts.Cluster.Host, opts.Cluster.Port},
	} {
		if err := netaddr.CheckFree(l.host, l.port); err != nil {
			return fmt.Errorf("hub %s: %s: %w", s.cfg.Name, l.key, err)
		}
	}
	cloud, err := store.Account(contract.CloudAccountName)
	if err != nil {
		return err
	}
	if err := prepareStreamsDir(opts.StoreDir, cloud.Pub); err != nil {
		return err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("hub %s: %w", s.cfg.Name, err)
	}
	ns.SetLoggerV2(natslog.New(s.log), s.log.Enabled(context.Background(), slog.LevelDebug), false, false)
	s.ns, s.opts = ns, opts
	go ns.Start()
	deadline := readyTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < deadline {
		deadline = time.Until(d)
	}
	if !ns.ReadyForConnections(deadline) {
		ns.Shutdown()
		return fmt.Errorf("hub %s: listeners not ready after %s", s.cfg.Name, deadline)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return fmt.Errorf("hub %s: JetStream did not start (its reason is in the log above)", s.cfg.Name)
	}
	// Register CLOUD and enable its JetStream here, to its end, before any
	// client of ours uses it (see prepareStreamsDir).
	if _, err := ns.LookupAccount(cloud.Pub); err != nil {
		ns.Shutdown()
		return fmt.Errorf("hub %s: load the CLOUD account: %w", s.cfg.Name, err)
	}
	edges, err := store.Edges()
	if err != nil {
		ns.Shutdown()
		return err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.ready)
		s.readyErr = s.ensureStreams(sctx, store, edges)
		if s.readyErr == nil {
			s.readyErr = s.startRegistrar(sctx, store)
		}
		if s.readyErr != nil && sctx.Err() == nil {
			s.log.Error("cloud streams not set up", "err", s.readyErr)
		}
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.serveHighWater(sctx, store.CloudCredsFile()); err != nil && sctx.Err() == nil {
			s.log.Error("high-water service not running: edges fall back to the duplicate window", "err", err)
		}
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.guardLinks(sctx, store.CloudCredsFile()); err != nil && sctx.Err() == nil {
			s.log.Error("one-link-per-edge guard not running: a second process with an edge's creds is not refused", "err", err)
		}
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.serveServices(sctx, store); err != nil && sctx.Err() == nil {
			s.log.Error("service router not running: calls to edge services fail", "err", err)
		}
	}()
	started = true
	s.log.Info("hub listening", "client", s.ClientURL(), "leaf", s.LeafURL(), "websocket", s.WebsocketURL(),
		"cluster", s.cfg.Cluster.Listen != "")
	return nil
}

func loadMaterial(store *accounts.Store) (material, error) {
	ojwt, err := store.OperatorJWT()
	if err != nil {
		return material{}, err
	}
	oc, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		return material{}, fmt.Errorf("decode operator JWT: %w", err)
	}
	caPEM, err := os.ReadFile(store.CAFile())
	if err != nil {
		return material{}, fmt.Errorf("read CA: %w", err)
	}
	certPEM, err := os.ReadFile(store.HubCertFile())
	if err != nil {
		return material{}, fmt.Errorf("read hub certificate: %w", err)
	}
	keyPEM, err := securefile.Read(store.HubKeyFile())
	if err != nil {
		return material{}, fmt.Errorf("read hub key: %w", err)
	}
	pool, err := pki.Pool(caPEM)
	if err != nil {
		return material{}, fmt.Errorf("%s: %w", store.CAFile(), err)
	}
	serverTLS, err := pki.ServerTLS(certPEM, keyPEM, nil)
	if err != nil {
		return material{}, err
	}
	routeTLS, err := pki.ServerTLS(certPEM, keyPEM, pool)
	if err != nil {
		return material{}, err
	}
	return material{operator: oc, serverTLS: serverTLS, routeTLS: routeTLS}, nil
}

// WaitJetStream waits until JetStream is usable on this hub (in a cluster:
// a meta leader is elected and this hub is current).
func (s *Server) WaitJetStream(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		hs := s.ns.Healthz(&server.HealthzOptions{JSMetaOnly: true})
		if hs.Status == "ok" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hub %s: JetStream not ready: %s: %w", s.cfg.Name, hs.Error, ctx.Err())
		case <-t.C:
		}
	}
}

// Shutdown stops the hub; with LameDuck set it first moves clients and
// edges away. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.ns == nil {
		return nil
	}
	s.shutdownOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		done := make(chan struct{})
		go func() {
			if s.cfg.LameDuck > 0 {
				s.ns.LameDuckShutdown()
			} else {
				s.ns.Shutdown()
			}
			s.ns.WaitForShutdown()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.ns.Shutdown()
			<-done
		}
		s.lock.Release()
		s.log.Info("hub stopped")
	})
	return nil
}

// Config returns the configuration the hub was created with: listen
// addresses as configured (port 0 stays 0; ClientURL and the like say
// where the hub really listens).
func (s *Server) Config() Config { return s.cfg }

// NATS returns the embedded server, for monitoring calls.
func (s *Server) NATS() *server.Server { return s.ns }

// ClientURL is the hub's client URL (TLS).
func (s *Server) ClientURL() string {
	return fmt.Sprintf("tls://%s:%d", dialHost(s.opts.Host), s.opts.Port)
}

// LeafURL is the URL edges use for a TLS leafnode connection.
func (s *Server) LeafURL() string {
	return fmt.Sprintf("tls://%s:%d", dialHost(s.opts.LeafNode.Host), s.opts.LeafNode.Port)
}

// WebsocketURL is the URL edges use for a WebSocket-TLS leafnode
// connection, or "" when the listener is off.
func (s *Server) WebsocketURL() string {
	if s.cfg.WebsocketListen == Off {
		return ""
	}
	return fmt.Sprintf("wss://%s:%d", dialHost(s.opts.Websocket.Host), s.opts.Websocket.Port)
}

// RouteURL is the URL other hubs use to route to this one, or "".
func (s *Server) RouteURL() string {
	if s.cfg.Cluster.Listen == "" {
		return ""
	}
	return fmt.Sprintf("tls://%s:%d", dialHost(s.opts.Cluster.Host), s.opts.Cluster.Port)
}

// MonitorURL is the monitoring endpoint's base URL, or "".
func (s *Server) MonitorURL() string {
	if s.cfg.MonitorListen == Off {
		return ""
	}
	return fmt.Sprintf("http://%s:%d", dialHost(s.opts.HTTPHost), s.ns.MonitorAddr().Port)
}

// dialHost turns a listen host into one a local client can dial.
func dialHost(host string) string {
	switch host {
	case "", "0.0.0.0", "::":
		return "127.0.0.1"
	}
	return host
}

// prepareStreamsDir creates the CLOUD account's JetStream streams
// directory under storeDir before nats-server starts. nats-server 2.15.2
// makes an account's JetStream usable before it checks that directory,
// and when the directory does not exist yet it creates and removes it
// again (Account.EnableJetStream, jetstream.go). A client of the account
// that creates streams in that window, as the hub itself does at its first
// start, loses their directories: the streams keep working on their open
// first block and fail once they need a second one, with everything they
// stored gone (found by the 4 KiB catch-up bench: "Error creating msg
// block file ... no such file or directory" after 8 MB). With the
// directory present nats-server takes its recovery path, which removes
// nothing.
func prepareStreamsDir(storeDir, account string) error {
	dir := filepath.Join(storeDir, server.JetStreamStoreDir, account, "streams")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("JetStream store: %w", err)
	}
	return nil
}
