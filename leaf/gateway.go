package leaf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/time/rate"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/memo"
	"github.com/tether-fabric/tether/policy"
)

// The service gateway: the edge's door for calls from the fabric. It
// receives the calls the hubs' router forwards (tether.svc.req.<edge>.>) on
// the edge's own plumbing connection, knows the caller from the
// Tether-Caller header (only the router's account can publish on that
// subject at the hubs, and the site's clients may not publish it here),
// enforces the gateway configuration (policy.Gateway: exposed services,
// grants, rate, burst, max in flight), calls the local service through a
// separate site-side connection (with the site's permissions), answers,
// and buffers an audit record of the call like telemetry
// (telemetry._tether.audit.<service>.<endpoint>, in batches: audit.go),
// which the forwarder delivers exactly once into the cloud.
//
// Local services are found by name: nats.go micro services through the
// edge's local $SRV.INFO (an endpoint may listen on any subject), and
// plain responders on svc.<service>.<endpoint>.

const (
	// gatewayCallTimeout bounds a local service's answer; it stays below
	// the router's so the caller hears the edge's timeout.
	gatewayCallTimeout = 25 * time.Second
	// discoverEvery is how often the gateway asks the site's micro
	// services for their INFO, and reloads its configuration file.
	discoverEvery = 2 * time.Second
	// discoverWait is how long one discovery collects answers.
	discoverWait = 250 * time.Millisecond
	// limiterIdle is how long an unused limiter is kept.
	limiterIdle = 10 * time.Minute
	// gatewayIdleWorkers bounds the goroutines that wait for the next call
	// after serving one (gateway.work).
	gatewayIdleWorkers = 16
)

// GatewayStatus is the gateway's state as 'tether leaf status' shows it.
type GatewayStatus struct {
	Config    string                 `json:"config,omitempty"`
	Exposed   []string               `json:"exposed"`
	Services  []contract.EdgeService `json:"services"`
	Calls     uint64                 `json:"calls"`
	OK        uint64                 `json:"ok"`
	Denied    uint64                 `json:"denied"`
	Limited   uint64                 `json:"limited"`
	NoService uint64                 `json:"no_service"`
	Errors    uint64                 `json:"errors"`
	InFlight  int64                  `json:"in_flight"`
	LastError string                 `json:"last_error,omitempty"`
}

type localService struct {
	info      contract.EdgeService
	endpoints map[string]string // endpoint name -> subject
}

type limiter struct {
	lim      *rate.Limiter // nil: unlimited
	inFlight atomic.Int64
	max      int64 // 0: unlimited
	used     time.Time
}

type gateway struct {
	edge     string
	plumbing *nats.Conn // receives calls, answers
	site     *nats.Conn // calls local services; writes audit records into the buffer
	audit    *auditLog  // batches the audit records (audit.go)
	// callers decodes Tether-Caller, the same for every call of a caller.
	callers *memo.Cache[contract.Caller]
	path    string
	// optional: a missing file at path means nothing is exposed.
	optional bool
	log      *slog.Logger

	// linked says whether the edge's link to the hubs is up; fetched is
	// set once the configuration in force in the cloud was asked for on
	// the current link (fetchTries counts the attempts).
	linked     func() bool
	fetched    bool
	fetchTries int

	// installMu orders installs (a push and a fetch may race); rev is
	// the bucket revision of the configuration in force (0: unknown).
	installMu sync.Mutex
	rev       uint64

	mu       sync.Mutex
	cfg      policy.Gateway
	cfgMod   time.Time
	services map[string]*localService
	limits   map[string]*limiter
	lastErr  string

	calls, ok, denied, limited, noService, errs atomic.Uint64
	inFlight                                    atomic.Int64

	// next hands a call to a goroutine waiting in work (idle of them);
	// done ends them when the gateway closes.
	next chan *nats.Msg
	idle atomic.Int32
	done chan struct{}
}

// startGateway connects and subscribes the gateway. Its plumbing
// connection is its own (the edge's internal user, key internal), not the
// forwarder's: calls and their answers must not queue behind a backlog of
// telemetry being forwarded on the same connection.
func (s *Server) startGateway(internal, siteUser nkeys.KeyPair) error {
	internalPub, _ := internal.PublicKey()
	sitePub, _ := siteUser.PublicKey()
	plumbing, err := nats.Connect("", nats.InProcessServer(s.ns), nats.Name("tether-gateway"), nats.MaxReconnects(-1),
		nats.Nkey(internalPub, internal.Sign), nats.CustomInboxPrefix(uplinkInbox))
	if err != nil {
		return fmt.Errorf("gateway: plumbing connection: %w", err)
	}
	// The site side is the edge's own user of the site account: it may
	// write audit records into the buffer, which site clients may not.
	site, err := nats.Connect("", nats.InProcessServer(s.ns), nats.Name("tether-gateway-site"), nats.MaxReconnects(-1),
		nats.Nkey(sitePub, siteUser.Sign))
	if err != nil {
		plumbing.Close()
		return fmt.Errorf("gateway: site connection: %w", err)
	}
	path, optional := s.cfg.Gateway, false
	if path == "" {
		// Nothing configured: the configuration the operator pushes over
		// the link (gateway_push.go), kept in the data dir.
		path, optional = filepath.Join(s.cfg.DataDir, pushedGatewayFile), true
	}
	g := &gateway{edge: s.bundle.Edge, plumbing: plumbing, site: site, path: path, optional: optional, log: s.log,
		linked:   func() bool { return s.Link().Connected },
		services: map[string]*localService{}, limits: map[string]*limiter{},
		next: make(chan *nats.Msg), done: make(chan struct{})}
	g.audit = newAuditLog(site, g.setErr)
	g.callers = memo.New(1024, decodeCaller)
	if err := g.reload(); err != nil {
		g.close()
		return err
	}
	if _, err := plumbing.Subscribe(contract.GatewayControlSubject, g.handlePush); err != nil {
		g.close()
		return fmt.Errorf("gateway: subscribe: %w", err)
	}
	if _, err := plumbing.Subscribe(contract.ServiceRequestAll(g.edge), g.dispatch); err != nil {
		g.close()
		return fmt.Errorf("gateway: subscribe: %w", err)
	}
	// The site's own calls to other edges and to the cloud leave through
	// the gateway, on the plumbing connection.
	for _, subj := range []string{contract.LocalEdgeCalls, contract.LocalCloudCalls} {
		if _, err := site.Subscribe(subj, func(m *nats.Msg) { go g.callOut(m) }); err != nil {
			g.close()
			return fmt.Errorf("gateway: subscribe %s: %w", subj, err)
		}
	}
	s.gw = g
	return nil
}

// reload reads the configuration file when it changed.
func (g *gateway) reload() error {
	if g.path == "" {
		return nil
	}
	fi, err := os.Stat(g.path)
	if g.optional && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gateway config %s: %w", g.path, err)
	}
	g.mu.Lock()
	same := fi.ModTime().Equal(g.cfgMod)
	g.mu.Unlock()
	if same {
		return nil
	}
	data, err := os.ReadFile(g.path)
	if err != nil {
		return fmt.Errorf("gateway config %s: %w", g.path, err)
	}
	cfg, err := parseGateway(data, g.edge)
	if err != nil {
		return fmt.Errorf("gateway config %s: %w", g.path, err)
	}
	g.mu.Lock()
	g.cfg, g.cfgMod = cfg, fi.ModTime()
	g.limits = map[string]*limiter{} // limits start afresh with a new config
	g.mu.Unlock()
	g.log.Info("gateway configuration loaded", "file", g.path, "exposed", cfg.Expose, "grants", len(cfg.Grants))
	return nil
}

func (g *gateway) close() {
	if g != nil {
		g.audit.close()
		g.site.Close()
		g.plumbing.Close()
		close(g.done)
	}
}

// dispatch serves a call on a goroutine of its own, so that a slow service
// holds up no other call: one that finished a call and waits for the next,
// or a new one. A reused goroutine keeps the stack a call grew (a new one
// grows it again, call after call: a few per cent of a busy edge's CPU).
func (g *gateway) dispatch(m *nats.Msg) {
	select {
	case g.next <- m:
	default:
		go g.work(m)
	}
}

// work serves m, then the calls dispatch hands it, while at most
// gatewayIdleWorkers goroutines wait and until the gateway closes.
func (g *gateway) work(m *nats.Msg) {
	for {
		g.handle(m)
		if g.idle.Add(1) > gatewayIdleWorkers {
			g.idle.Add(-1)
			return
		}
		select {
		case m = <-g.next:
			g.idle.Add(-1)
		case <-g.done:
			g.idle.Add(-1)
			return
		}
	}
}

// run discovers the site's services and reloads the configuration until
// ctx ends.
func (g *gateway) run(ctx context.Context) {
	t := time.NewTicker(discoverEvery)
	defer t.Stop()
	for {
		if err := g.reload(); err != nil {
			g.setErr(err.Error())
		}
		g.fetchOnLink()
		if g.exposesAny() {
			g.discover(ctx)
		} else {
			g.forgetServices()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *gateway) setErr(s string) {
	g.mu.Lock()
	changed := g.lastErr != s
	g.lastErr = s
	g.mu.Unlock()
	if changed {
		g.log.Warn("gateway", "err", s)
	}
}

type srvInfo struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description"`
	Endpoints   []struct {
		Name    string `json:"name"`
		Subject string `json:"subject"`
	} `json:"endpoints"`
}

// addServiceInfo adds one instance's INFO to found.
func addServiceInfo(found map[string]*localService, in srvInfo) {
	ls := found[in.Name]
	if ls == nil {
		ls = &localService{info: contract.EdgeService{Name: in.Name, Version: in.Version, Description: in.Description}, endpoints: map[string]string{}}
		found[in.Name] = ls
	}
	ls.info.Instances++
	for _, e := range in.Endpoints {
		if _, ok := ls.endpoints[e.Name]; !ok {
			ls.endpoints[e.Name] = e.Subject
			ls.info.Endpoints = append(ls.info.Endpoints, e.Name)
		}
	}
}

// discover asks the site's micro services for their INFO ($SRV.INFO, or
// $SRV.INFO.<name> for one) and replaces the table (for one name: its row).
func (g *gateway) discover(ctx context.Context, only ...string) {
	subj := "$SRV.INFO"
	if len(only) == 1 {
		subj += "." + only[0]
	}
	// The answers are collected by a callback: a synchronous subscription
	// would allocate its queue (65536 slots, 512 KiB) at every discovery,
	// every discoverEvery, which was most of an idle edge's garbage.
	var (
		mu    sync.Mutex
		found = map[string]*localService{}
		done  bool // set once the window closed; later answers are ignored
	)
	inbox := g.site.NewRespInbox()
	sub, err := g.site.Subscribe(inbox, func(m *nats.Msg) {
		var in srvInfo
		if json.Unmarshal(m.Data, &in) != nil || in.Name == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !done {
			addServiceInfo(found, in)
		}
	})
	if err != nil {
		return
	}
	if err := g.site.PublishRequest(subj, inbox, nil); err != nil {
		_ = sub.Unsubscribe()
		return
	}
	t := time.NewTimer(discoverWait)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	_ = sub.Unsubscribe()
	mu.Lock()
	done = true
	mu.Unlock()
	for _, ls := range found {
		slices.Sort(ls.info.Endpoints)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(only) == 1 {
		if ls, ok := found[only[0]]; ok {
			g.services[only[0]] = ls
		} else {
			delete(g.services, only[0])
		}
		return
	}
	g.services = found
	now := time.Now()
	for k, l := range g.limits {
		if l.inFlight.Load() == 0 && now.Sub(l.used) > limiterIdle {
			delete(g.limits, k)
		}
	}
}

// exposesAny says whether the configuration exposes a service. Without
// one the site's services are not discovered: nobody can call them, and an
// idle edge (the default, no gateway configuration) saves a request, a
// subscription and a timer every discoverEvery.
func (g *gateway) exposesAny() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.cfg.Expose) > 0
}

// forgetServices empties the table of discovered services.
func (g *gateway) forgetServices() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.services) > 0 {
		g.services = map[string]*localService{}
	}
}

// exposed returns the exposed services the site runs, sorted by name.
func (g *gateway) exposed() []contract.EdgeService {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []contract.EdgeService
	for name, ls := range g.services {
		if isExposed(g.cfg, name) {
			out = append(out, ls.info)
		}
	}
	slices.SortFunc(out, func(a, b contract.EdgeService) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (g *gateway) status() *GatewayStatus {
	if g == nil {
		return nil
	}
	st := &GatewayStatus{Config: g.path, Services: g.exposed(),
		Calls: g.calls.Load(), OK: g.ok.Load(), Denied: g.denied.Load(), Limited: g.limited.Load(),
		NoService: g.noService.Load(), Errors: g.errs.Load(), InFlight: g.inFlight.Load()}
	g.mu.Lock()
	st.Exposed = append([]string{}, g.cfg.Expose...)
	st.LastError = g.lastErr
	g.mu.Unlock()
	if st.Services == nil {
		st.Services = []contract.EdgeService{}
	}
	return st
}

// ownService is the edge's own status service, never exposed.
const ownService = "tether-leaf"

// isExposed says whether the configuration exposes service; "*" in Expose
// exposes every service at the site (the dev fabric's configuration).
func isExposed(cfg policy.Gateway, service string) bool {
	return service != ownService && (slices.Contains(cfg.Expose, service) || slices.Contains(cfg.Expose, "*"))
}

// grantFor returns the grant that lets caller call service.endpoint and
// its index, or -1.
func grantFor(cfg policy.Gateway, c contract.Caller, service, endpoint string) (policy.ServiceGrant, int) {
	for i, gr := range cfg.Grants {
		if gr.Service != service && gr.Service != "*" || gr.Endpoint != endpoint && gr.Endpoint != "*" && gr.Endpoint != "" {
			continue
		}
		switch gr.Caller.Kind {
		case policy.PrincipalUser:
			if c.Kind == "user" && c.Name == gr.Caller.Name {
				return gr, i
			}
		case policy.PrincipalRole:
			if c.Kind == "user" && c.Role != "" && c.Role == gr.Caller.Name {
				return gr, i
			}
		case policy.PrincipalEdge:
			if c.Kind == "edge" && c.Name == gr.Caller.Name {
				return gr, i
			}
		}
	}
	return policy.ServiceGrant{}, -1
}

func decodeCaller(hdr string) (contract.Caller, bool) {
	var c contract.Caller
	if json.Unmarshal([]byte(hdr), &c) != nil || c.Kind == "" {
		return c, false
	}
	return c, true
}

// outcome of one call, for the answer and the audit record.
type outcome struct {
	code int
	text string
	resp *nats.Msg
}

func (g *gateway) handle(m *nats.Msg) {
	start := time.Now()
	g.calls.Add(1)
	tok := strings.Split(m.Subject, ".")
	if len(tok) != 6 {
		return
	}
	service, endpoint := tok[4], tok[5]
	caller, ok := g.callers.Get(m.Header.Get(contract.HeaderCaller))
	if !ok {
		caller = contract.Caller{Kind: "unknown"}
	}
	out, audit := g.serve(m, caller, service, endpoint)
	g.answer(m, out)
	if !audit {
		return
	}
	rec := contract.AuditRecord{Time: start.UTC(), Caller: caller, Edge: g.edge, Service: service, Endpoint: endpoint,
		Status: "ok", LatencyUS: time.Since(start).Microseconds(), ReqBytes: len(m.Data), Call: m.Header.Get(contract.HeaderCallID)}
	if out.resp != nil {
		rec.RespBytes = len(out.resp.Data)
	}
	if out.code != 0 {
		rec.Status, rec.Code, rec.Error = "error", out.code, out.text
	}
	g.audit.add(&rec)
}

// serve decides and makes the call; audit says whether to record it.
func (g *gateway) serve(m *nats.Msg, caller contract.Caller, service, endpoint string) (outcome, bool) {
	g.mu.Lock()
	cfg := g.cfg
	g.mu.Unlock()
	if caller.Kind != "user" {
		// Another edge learns nothing it is not granted: no grant and no
		// such service answer the same.
		if _, idx := grantFor(cfg, caller, service, endpoint); idx < 0 || !isExposed(cfg, service) {
			g.denied.Add(1)
			return outcome{code: contract.CodeDenied, text: fmt.Sprintf("not allowed: %s %q may not call %s.%s on edge %s", caller.Kind, caller.Name, service, endpoint, g.edge)}, true
		}
	}
	if !isExposed(cfg, service) {
		g.noService.Add(1)
		return outcome{code: contract.CodeNoService, text: fmt.Sprintf("no such service: edge %s exposes no service %q", g.edge, service)}, true
	}
	gr, idx := grantFor(cfg, caller, service, endpoint)
	if idx < 0 {
		g.denied.Add(1)
		return outcome{code: contract.CodeDenied, text: fmt.Sprintf("not allowed: %s %q may not call %s.%s on edge %s", caller.Kind, caller.Name, service, endpoint, g.edge)}, true
	}
	l := g.limiter(gr, idx, caller)
	if l.lim != nil && !l.lim.Allow() {
		g.limited.Add(1)
		return outcome{code: contract.CodeRateLimited, text: fmt.Sprintf("rate limited: %s %q is over %g calls/s (burst %d) on %s.%s", caller.Kind, caller.Name, gr.Rate, l.lim.Burst(), service, endpoint)}, true
	}
	if n := l.inFlight.Add(1); l.max > 0 && n > l.max {
		l.inFlight.Add(-1)
		g.limited.Add(1)
		return outcome{code: contract.CodeRateLimited, text: fmt.Sprintf("rate limited: %s %q has %d calls in flight on %s.%s (max %d)", caller.Kind, caller.Name, l.max, service, endpoint, l.max)}, true
	}
	defer l.inFlight.Add(-1)
	g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	out := g.callLocal(m, service, endpoint)
	switch {
	case out.code == contract.CodeNoService:
		g.noService.Add(1)
	case out.code != 0:
		g.errs.Add(1)
	default:
		g.ok.Add(1)
	}
	return out, gr.Audit
}

// limiter returns the caller's limiter on grant idx.
func (g *gateway) limiter(gr policy.ServiceGrant, idx int, c contract.Caller) *limiter {
	key := strconv.Itoa(idx) + "|" + c.Kind + "|" + c.Name + "|" + c.User
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.limits[key]
	if l == nil {
		l = &limiter{max: int64(gr.MaxInFlight)}
		if gr.Rate > 0 {
			burst := gr.Burst
			if burst <= 0 {
				burst = max(1, int(math.Ceil(gr.Rate)))
			}
			l.lim = rate.NewLimiter(rate.Limit(gr.Rate), burst)
		}
		g.limits[key] = l
	}
	l.used = time.Now()
	return l
}

// callLocal calls the site's service: a micro endpoint found by name, or a
// plain responder on svc.<service>.<endpoint>.
func (g *gateway) callLocal(m *nats.Msg, service, endpoint string) outcome {
	subj := g.endpointSubject(service, endpoint)
	req := nats.NewMsg(subj)
	req.Data = m.Data
	for k, v := range m.Header {
		if strings.HasPrefix(k, "Tether-") || k == "Nats-Request-Info" {
			continue
		}
		req.Header[k] = v
	}
	resp, err := g.site.RequestMsg(req, gatewayCallTimeout)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return outcome{code: contract.CodeNoService, text: fmt.Sprintf("no such service: nothing on edge %s answers %s.%s", g.edge, service, endpoint)}
	case errors.Is(err, nats.ErrTimeout):
		return outcome{code: contract.CodeTimeout, text: fmt.Sprintf("edge %s: service %s.%s did not answer within %s", g.edge, service, endpoint, gatewayCallTimeout)}
	case err != nil:
		return outcome{code: contract.CodeServiceErr, text: fmt.Sprintf("edge %s: service %s.%s: %v", g.edge, service, endpoint, err)}
	}
	out := outcome{resp: resp}
	if c := resp.Header.Get(contract.HeaderServiceErrorCode); c != "" {
		out.code, _ = strconv.Atoi(c)
		if out.code == 0 {
			out.code = contract.CodeServiceErr
		}
		out.text = resp.Header.Get(contract.HeaderServiceError)
	}
	return out
}

// endpointSubject is where the site's service endpoint listens.
func (g *gateway) endpointSubject(service, endpoint string) string {
	g.mu.Lock()
	ls := g.services[service]
	g.mu.Unlock()
	if ls == nil || ls.endpoints[endpoint] == "" {
		// Not seen yet (a service just started): ask it by name.
		g.discover(context.Background(), service)
		g.mu.Lock()
		ls = g.services[service]
		g.mu.Unlock()
	}
	if ls != nil && ls.endpoints[endpoint] != "" {
		return ls.endpoints[endpoint]
	}
	return "svc." + service + "." + endpoint
}

// answer sends the call's outcome back to the router.
func (g *gateway) answer(m *nats.Msg, out outcome) {
	if m.Reply == "" {
		return
	}
	rep := nats.NewMsg(m.Reply)
	if out.resp != nil {
		rep.Data = out.resp.Data
		for k, v := range out.resp.Header {
			rep.Header[k] = v
		}
	}
	if out.code != 0 && out.resp == nil {
		rep.Header.Set(contract.HeaderServiceError, out.text)
		rep.Header.Set(contract.HeaderServiceErrorCode, strconv.Itoa(out.code))
	}
	_ = g.plumbing.PublishMsg(rep)
}

// callOut sends a site client's call of another edge's or a cloud service
// on to the hubs' router and relays the answer.
func (g *gateway) callOut(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	req := nats.NewMsg(contract.ServiceOutSubject(g.edge, m.Subject))
	req.Data = m.Data
	for k, v := range m.Header {
		if strings.HasPrefix(k, "Tether-") || k == "Nats-Request-Info" {
			continue
		}
		req.Header[k] = v
	}
	resp, err := g.plumbing.RequestMsg(req, gatewayCallTimeout)
	rep := nats.NewMsg(m.Reply)
	switch {
	case err == nil:
		rep.Data, rep.Header = resp.Data, resp.Header
	case errors.Is(err, nats.ErrNoResponders):
		rep.Header.Set(contract.HeaderServiceError, fmt.Sprintf("%s: not reachable from edge %s (link down, or the access policy does not let this edge call it)", m.Subject, g.edge))
		rep.Header.Set(contract.HeaderServiceErrorCode, strconv.Itoa(contract.CodeEdgeOffline))
	default:
		rep.Header.Set(contract.HeaderServiceError, fmt.Sprintf("%s: %v", m.Subject, err))
		rep.Header.Set(contract.HeaderServiceErrorCode, strconv.Itoa(contract.CodeTimeout))
	}
	_ = g.site.PublishMsg(rep)
}
