package hub

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/cloudjs"
	"github.com/tether-fabric/tether/internal/memo"
)

// The service router: every hub runs one in the SVC account. It answers
// cloud callers on edges.<edge>.svc.<service>.<endpoint> (CLOUD imports it
// with the caller's identity shared, so the server stamps who called),
// forwards each call to the edge's gateway on
// tether.svc.req.<edge>.<service>.<endpoint> with the caller in the
// Tether-Caller header, and relays the edge's answer. It keeps state per
// call in flight only: nothing per edge, no timer while idle. An edge that
// is not linked has no interest in its forward slice, so the server
// answers "no responders" at once and the router says the edge is offline.
//
// "No responders" is not enough in a cluster: a request that crosses a
// route counts as delivered (nats-server client.go, processMsgResults),
// and the hub at the other end drops it silently when the interest it
// advertised is gone (route.go, processInboundRoutedMsg). That happens
// when the edge's link closes while the hubs still see its interest: the
// leaf just went away on the hub it was linked to, whose unsubscribe is
// still on its way to the others. So while a call is pending, every
// offlineProbe the router asks its own server whether anything in the
// cluster still has interest in the call's subject (the SVC account's
// subscriptions, route interest included): none means the edge is not
// linked anywhere, and the call fails as offline then. A linked edge
// keeps its interest, so a slow service still gets callTimeout.

const (
	// routerQueue makes one hub of a cluster take each call.
	routerQueue = "tether-svc-router"
	// callTimeout bounds how long the router waits for an edge's answer.
	callTimeout = 30 * time.Second
	// offlineProbe is how often the router checks, while a call is
	// pending, that the edge is still linked somewhere in the cluster.
	offlineProbe = 250 * time.Millisecond
	// roleCacheTTL is how long the CLOUD account's scoped signing keys
	// (cloud roles) are cached.
	roleCacheTTL = 10 * time.Second
)

type pendingCall struct {
	reply  string
	edge   string
	byEdge bool // an edge called: it learns nothing about the fleet
	// timer fires every offlineProbe while the call is pending (is the
	// edge still linked?) and fails it as timed out after deadline.
	timer             *time.Timer
	deadline          time.Time
	service, endpoint string
}

type router struct {
	s        *Server
	nc       *nats.Conn
	id       string
	cloudPub string
	// svc is the SVC account in the hub's server: its subscriptions
	// (route interest included) tell whether an edge is linked.
	svc *server.Account
	// callers decodes the server-stamped Nats-Request-Info of a call
	// (with share: true it carries the caller's whole JWT); it repeats for
	// every call of one connection.
	callers *memo.Cache[callerInfo]

	mu      sync.Mutex
	pending map[string]*pendingCall

	rolesMu sync.Mutex
	roles   map[string]string
	rolesAt time.Time
}

// serveServices runs the service router until ctx ends.
func (s *Server) serveServices(ctx context.Context, store *accounts.Store) error {
	creds := store.ServiceCredsFile()
	if _, err := os.Stat(creds); err != nil {
		return fmt.Errorf("no service router user (%s): run 'tether store upgrade' and push the accounts: %w", creds, err)
	}
	cloud, err := store.Account(contract.CloudAccountName)
	if err != nil {
		return err
	}
	svcAcc, err := store.Account(contract.ServiceAccountName)
	if err != nil {
		return err
	}
	var nc *nats.Conn
	if err := cloudjs.Retry(ctx, func(context.Context) error {
		var err error
		nc, err = nats.Connect("", nats.InProcessServer(s.ns), nats.UserCredentials(creds),
			nats.Name("tether-hub-svc-router"), nats.MaxReconnects(-1))
		return err
	}); err != nil {
		return fmt.Errorf("connect as service router: %w", err)
	}
	defer nc.Close()
	svc, err := s.ns.LookupAccount(svcAcc.Pub)
	if err != nil {
		return fmt.Errorf("service router: account %s (%s): %w", contract.ServiceAccountName, svcAcc.Pub, err)
	}
	r := &router{s: s, nc: nc, id: nuid.Next(), cloudPub: cloud.Pub, svc: svc, pending: map[string]*pendingCall{},
		callers: memo.New(callerCacheSize, decodeCallerInfo)}
	in, err := nc.QueueSubscribe(contract.ServiceCallAll, routerQueue, r.call)
	if err != nil {
		return err
	}
	defer in.Unsubscribe()
	out, err := nc.Subscribe(contract.ServiceReplyFor(r.id), r.answer)
	if err != nil {
		return err
	}
	defer out.Unsubscribe()
	fromEdges, err := nc.QueueSubscribe(contract.ServiceOutAll, routerQueue, r.callOut)
	if err != nil {
		return err
	}
	defer fromEdges.Unsubscribe()
	cnc, err := s.connectCloud(ctx, store.CloudCredsFile(), "tether-hub-svc-ls")
	if err != nil {
		return err
	}
	defer cnc.Close()
	ls, err := cnc.QueueSubscribe(contract.ServiceList, routerQueue, func(m *nats.Msg) {
		var req contract.ServiceListRequest
		_ = json.Unmarshal(m.Data, &req)
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		rep := s.serviceTable(lctx, cnc, svcAcc.Pub, req)
		data, _ := json.Marshal(rep)
		_ = m.Respond(data)
	})
	if err != nil {
		return err
	}
	defer ls.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return err
	}
	s.log.Info("service router ready")
	<-ctx.Done()
	return nil
}

// callError answers a call with the micro error headers.
func callError(nc *nats.Conn, reply string, code int, text string) {
	if reply == "" {
		return
	}
	m := nats.NewMsg(reply)
	m.Header.Set(contract.HeaderServiceError, text)
	m.Header.Set(contract.HeaderServiceErrorCode, strconv.Itoa(code))
	_ = nc.PublishMsg(m)
}

// callerInfo is what the router takes from a call's Nats-Request-Info.
type callerInfo struct {
	Account   string `json:"acc"`
	User      string `json:"user"`
	NameTag   string `json:"name_tag"`
	IssuerKey string `json:"issuer_key"`
}

// callerCacheSize bounds the decoded Nats-Request-Info headers kept (one
// per calling connection and round-trip time).
const callerCacheSize = 4096

func decodeCallerInfo(hdr string) (callerInfo, bool) {
	var ci callerInfo
	if hdr == "" || json.Unmarshal([]byte(hdr), &ci) != nil {
		return ci, false
	}
	return ci, true
}

func (r *router) call(m *nats.Msg) {
	tok := strings.Split(m.Subject, ".")
	if len(tok) != 5 || tok[2] != "svc" {
		callError(r.nc, m.Reply, contract.CodeBadRequest, fmt.Sprintf("bad service subject %q: want edges.<edge>.svc.<service>.<endpoint>", m.Subject))
		return
	}
	edge, service, endpoint := tok[1], tok[3], tok[4]
	ci, ok := r.callers.Get(m.Header.Get(server.ClientInfoHdr))
	if !ok || ci.Account != r.cloudPub {
		callError(r.nc, m.Reply, contract.CodeDenied, "not allowed: the caller's identity is unknown")
		return
	}
	caller := contract.Caller{Kind: "user", Name: ci.NameTag, Account: ci.Account, User: ci.User, Role: r.role(ci.IssuerKey)}
	r.forward(m, edge, service, endpoint, caller)
}

// callOut takes an edge's own call: tether.svc.out.<edge>.edges.<other>.svc.<service>.<endpoint>
// (to another edge) or tether.svc.out.<edge>.cloud.svc.<service>.<endpoint>
// (to a cloud service). The calling edge is the subject's edge token,
// which its account's import sets.
func (r *router) callOut(m *nats.Msg) {
	tok := strings.Split(m.Subject, ".")
	if len(tok) < 4 {
		return
	}
	caller := contract.Caller{Kind: "edge", Name: tok[3]}
	switch {
	case len(tok) == 9 && tok[4] == "edges" && tok[6] == "svc":
		r.forward(m, tok[5], tok[7], tok[8], caller)
	case len(tok) == 8 && tok[4] == "cloud" && tok[5] == "svc":
		// To a cloud service, through SVC's import of CLOUD's cloud.svc.>.
		// A client may not publish with the import's reply (_R_.…): the
		// router asks on its own inbox and relays the answer.
		out := nats.NewMsg(strings.Join(tok[4:], "."))
		out.Data = m.Data
		for k, v := range m.Header {
			if k == server.ClientInfoHdr || strings.HasPrefix(k, "Tether-") {
				continue
			}
			out.Header[k] = v
		}
		cj, _ := json.Marshal(caller)
		out.Header.Set(contract.HeaderCaller, string(cj))
		go func() {
			resp, err := r.nc.RequestMsg(out, callTimeout)
			switch {
			case errors.Is(err, nats.ErrNoResponders):
				callError(r.nc, m.Reply, contract.CodeNoService, fmt.Sprintf("no such service: nothing in the cloud answers %s", out.Subject))
			case err != nil:
				callError(r.nc, m.Reply, contract.CodeTimeout, fmt.Sprintf("cloud service %s: %v", out.Subject, err))
			default:
				rep := nats.NewMsg(m.Reply)
				rep.Data, rep.Header = resp.Data, resp.Header
				_ = r.nc.PublishMsg(rep)
			}
		}()
	default:
		callError(r.nc, m.Reply, contract.CodeBadRequest, fmt.Sprintf("bad service subject %q: want edges.<edge>.svc.<service>.<endpoint> or cloud.svc.<service>.<endpoint>", strings.Join(tok[4:], ".")))
	}
}

// forward sends a call to edge's gateway and keeps it until the answer.
func (r *router) forward(m *nats.Msg, edge, service, endpoint string, caller contract.Caller) {
	cj, _ := json.Marshal(caller)
	id := nuid.Next()
	fwd := nats.NewMsg(contract.ServiceRequestSubject(edge, service, endpoint))
	fwd.Reply = contract.ServiceReplySubject(edge, r.id, id)
	fwd.Data = m.Data
	for k, v := range m.Header {
		if k == server.ClientInfoHdr || strings.HasPrefix(k, "Tether-") {
			continue
		}
		fwd.Header[k] = v
	}
	fwd.Header.Set(contract.HeaderCaller, string(cj))
	fwd.Header.Set(contract.HeaderCallID, id)
	p := &pendingCall{reply: m.Reply, edge: edge, byEdge: caller.Kind == "edge", deadline: time.Now().Add(callTimeout),
		service: service, endpoint: endpoint}
	r.mu.Lock()
	r.pending[id] = p
	p.timer = time.AfterFunc(min(offlineProbe, callTimeout), func() { r.watch(id, p, fwd.Subject) })
	r.mu.Unlock()
	if err := r.nc.PublishMsg(fwd); err != nil {
		if r.take(id) != nil {
			callError(r.nc, m.Reply, contract.CodeEdgeOffline, fmt.Sprintf("edge %s: %v", edge, err))
		}
	}
}

// watch runs every offlineProbe while call id is pending: it fails the
// call as offline when nothing in the cluster has interest in its subject
// any more (the edge is not linked), as timed out once its deadline
// passed, and otherwise looks again.
func (r *router) watch(id string, p *pendingCall, subject string) {
	switch {
	case !r.svc.SubscriptionInterest(subject):
		if r.take(id) != nil {
			callError(r.nc, p.reply, contract.CodeEdgeOffline, offlineText(p))
		}
		return
	case !time.Now().Before(p.deadline):
		if r.take(id) != nil {
			callError(r.nc, p.reply, contract.CodeTimeout, fmt.Sprintf("edge %s: service %s.%s did not answer within %s", p.edge, p.service, p.endpoint, callTimeout))
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending[id] == p {
		p.timer.Reset(min(offlineProbe, time.Until(p.deadline)))
	}
}

func (r *router) take(id string) *pendingCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending[id]
	if p != nil {
		delete(r.pending, id)
		p.timer.Stop()
	}
	return p
}

// offlineText says that the edge of call p is not linked.
func offlineText(p *pendingCall) string {
	if p.byEdge {
		return fmt.Sprintf("edge %s: not reachable (offline, or the policy does not link it to this edge)", p.edge)
	}
	return fmt.Sprintf("edge %s is offline (not linked to the hubs)", p.edge)
}

// answer relays an edge's answer to its caller.
func (r *router) answer(m *nats.Msg) {
	tok := strings.Split(m.Subject, ".")
	if len(tok) != 6 {
		return
	}
	edge, id := tok[3], tok[5]
	r.mu.Lock()
	p := r.pending[id]
	ok := p != nil && p.edge == edge // only the called edge answers its call
	r.mu.Unlock()
	if !ok || r.take(id) == nil {
		return
	}
	if m.Header.Get("Status") == "503" && len(m.Data) == 0 {
		callError(r.nc, p.reply, contract.CodeEdgeOffline, offlineText(p))
		return
	}
	out := nats.NewMsg(p.reply)
	out.Data = m.Data
	for k, v := range m.Header {
		// The Nats-Request-Info the hub stamped on the answer names the
		// serving edge's account: the caller learns nothing of the fabric.
		if k == server.ClientInfoHdr || strings.HasPrefix(k, "Tether-") {
			continue
		}
		out.Header[k] = v
	}
	_ = r.nc.PublishMsg(out)
}

// role names the CLOUD scoped signing key issuer, or "".
func (r *router) role(issuer string) string {
	if issuer == "" {
		return ""
	}
	r.rolesMu.Lock()
	defer r.rolesMu.Unlock()
	if r.roles == nil || time.Since(r.rolesAt) > roleCacheTTL {
		r.roles = map[string]string{}
		r.rolesAt = time.Now()
		if res := r.s.opts.AccountResolver; res != nil {
			if aj, err := res.Fetch(r.cloudPub); err == nil {
				if ac, err := jwt.DecodeAccountClaims(aj); err == nil {
					for k, sc := range ac.SigningKeys {
						if us, ok := sc.(*jwt.UserScope); ok && us != nil {
							r.roles[k] = us.Role
						}
					}
				}
			}
		}
	}
	return r.roles[issuer]
}

// serviceTable is the fleet's service table from the edges' last status
// reports; an edge is online when its gateway has interest in its forward
// slice (anywhere in the cluster).
func (s *Server) serviceTable(ctx context.Context, nc *nats.Conn, svcPub string, req contract.ServiceListRequest) contract.ServiceListReply {
	out := contract.ServiceListReply{Services: []contract.ServiceEntry{}}
	js, err := jetstream.NewWithDomain(nc, contract.CloudDomain)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	st, err := js.Stream(ctx, contract.EdgeStatusStream)
	if err != nil {
		out.Error = fmt.Sprintf("stream %s: %v", contract.EdgeStatusStream, err)
		return out
	}
	filter := contract.CloudStatusSubject("*")
	if req.Edge != "" {
		filter = contract.CloudStatusSubject(req.Edge)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		out.Error = fmt.Sprintf("stream %s: %v", contract.EdgeStatusStream, err)
		return out
	}
	var svcAcc *server.Account
	if svcPub != "" {
		svcAcc, _ = s.ns.LookupAccount(svcPub)
	}
	for subj := range info.State.Subjects {
		m, err := st.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			continue
		}
		rep, err := contract.UnmarshalReport(m.Data)
		if err != nil {
			continue
		}
		online := svcAcc != nil && svcAcc.SubscriptionInterest(contract.ServiceRequestSubject(rep.Edge, "x", "x"))
		for _, sv := range rep.Services {
			out.Services = append(out.Services, contract.ServiceEntry{Edge: rep.Edge, EdgeService: sv, Online: online, LastSeen: m.Time})
		}
	}
	slices.SortFunc(out.Services, func(a, b contract.ServiceEntry) int {
		return cmp.Or(strings.Compare(a.Edge, b.Edge), strings.Compare(a.Name, b.Name))
	})
	return out
}
