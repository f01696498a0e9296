package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/jwt/v2"

	"github.com/tether-fabric/tether/contract"
)

// Facts are the store's public facts the compiler needs: the accounts'
// current claims (public) and the public keys of the scoped signing keys
// the store holds for policy principals. The compiler never sees a seed.
type Facts struct {
	// Cloud is the CLOUD account's current claims.
	Cloud *jwt.AccountClaims
	// Edges are the edge accounts' current claims, by edge name.
	Edges map[string]*jwt.AccountClaims
	// ScopeKeys maps a scope name (Policy.ScopeNames) to the public key of
	// its scoped signing key. It may hold keys of scopes the policy no
	// longer has: those scopes are removed from the CLOUD account.
	ScopeKeys map[string]string
}

// Output is a compiled policy. Applying it means signing Cloud and every
// changed Edges entry with the operator's signing key and pushing them.
type Output struct {
	Cloud *jwt.AccountClaims
	// Edges are the compiled claims of every edge account in Facts.
	Edges map[string]*jwt.AccountClaims
	// Gateways are the service gateway configurations, one per edge of the
	// policy or of Facts, sorted by edge.
	Gateways []Gateway
	// Groups are the telemetry streams of the groups telemetry grants
	// name, sorted by group.
	Groups []GroupStream
	// Notes say what the compiler skipped (edges of the policy that have
	// no account yet), sorted.
	Notes []string
}

// ErrMissingScopeKey reports a principal whose scoped signing key is not in
// Facts.ScopeKeys.
var ErrMissingScopeKey = errors.New("no scoped signing key")

// Compile compiles a valid policy (Parse found no error) over the store's
// facts. It is pure and deterministic: the same policy and facts give the
// same claims, byte for byte once encoded without issue time and id.
func Compile(p *Policy, f Facts) (*Output, error) {
	if p == nil || f.Cloud == nil {
		return nil, errors.New("compile policy: missing policy or CLOUD account")
	}
	for _, s := range p.ScopeNames() {
		if f.ScopeKeys[s] == "" {
			return nil, fmt.Errorf("compile policy: scope %q: %w in the store", s, ErrMissingScopeKey)
		}
	}
	c := newCompiler(p, f)
	out := &Output{Edges: map[string]*jwt.AccountClaims{}}
	var err error
	if out.Cloud, err = c.cloud(); err != nil {
		return nil, err
	}
	for _, e := range sortedKeys(f.Edges) {
		if out.Edges[e], err = c.edge(e, f.Edges[e]); err != nil {
			return nil, err
		}
	}
	edges := map[string]bool{}
	for e := range f.Edges {
		edges[e] = true
	}
	for _, e := range p.Edges {
		if !edges[e.Name] {
			out.Notes = append(out.Notes, fmt.Sprintf("edge %s is in the policy but has no account in the store yet (tether edge add %s): its account rules apply once it exists", e.Name, e.Name))
		}
		edges[e.Name] = true
	}
	sort.Strings(out.Notes)
	for _, e := range sortedKeys(edges) {
		out.Gateways = append(out.Gateways, c.gateway(e))
	}
	out.Groups = c.groupStreams()
	return out, nil
}

type compiler struct {
	p     *Policy
	f     Facts
	ix    *index
	links map[string]map[string]bool // edge -> peers its side allows
}

func newCompiler(p *Policy, f Facts) *compiler {
	c := &compiler{p: p, f: f, ix: newIndex(p), links: map[string]map[string]bool{}}
	for _, e := range p.Edges {
		set := map[string]bool{}
		for _, r := range c.ix.rulesOf(e.Name) {
			for _, t := range r.Links {
				peers, _ := c.ix.resolve(t)
				for _, b := range peers {
					if b != e.Name {
						set[b] = true
					}
				}
			}
		}
		c.links[e.Name] = set
	}
	return c
}

// peers returns the edges linked with e: both sides allow it.
func (c *compiler) peers(e string) []string {
	var out []string
	for b := range c.links[e] {
		if c.links[b][e] {
			out = append(out, b)
		}
	}
	sort.Strings(out)
	return out
}

func (c *compiler) calls(e string) []string {
	set := map[string]bool{}
	for _, r := range c.ix.rulesOf(e) {
		for _, s := range r.Calls {
			set[s.Name] = true
		}
	}
	return sortedKeys(set)
}

func (c *compiler) exposed(e string) []string {
	set := map[string]bool{}
	for _, r := range c.ix.rulesOf(e) {
		for _, s := range r.Expose {
			set[s.Name] = true
		}
	}
	return sortedKeys(set)
}

// copyClaims deep-copies account claims.
func copyClaims(ac *jwt.AccountClaims) (*jwt.AccountClaims, error) {
	data, err := json.Marshal(ac)
	if err != nil {
		return nil, err
	}
	var out jwt.AccountClaims
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// policyScopeDescription starts the description of every scoped signing
// key the policy manages in the CLOUD account.
const policyScopeDescription = "policy "

func (c *compiler) cloud() (*jwt.AccountClaims, error) {
	ac, err := copyClaims(c.f.Cloud)
	if err != nil {
		return nil, fmt.Errorf("compile CLOUD: %w", err)
	}
	managed := map[string]bool{}
	for _, k := range c.f.ScopeKeys {
		managed[k] = true
	}
	keys := jwt.SigningKeys{}
	for k, s := range ac.SigningKeys {
		if managed[k] {
			continue
		}
		if sc, ok := s.(*jwt.UserScope); ok && strings.HasPrefix(sc.Description, policyScopeDescription) {
			continue // a scope of an earlier policy whose key the store lost
		}
		keys[k] = s
	}
	ac.SigningKeys = keys
	for _, g := range c.grantees() {
		sc := jwt.NewUserScope()
		sc.Key = c.f.ScopeKeys[g.scopeName()]
		sc.Role = g.scopeName()
		sc.Description = policyScopeDescription + g.Kind + " " + g.Name
		if g.Description != "" {
			sc.Description += ": " + g.Description
		}
		sc.Template.Permissions = c.permissions(g)
		ac.SigningKeys.AddScopedSigner(sc)
	}
	// An earlier policy format exported edges.*.call.> for edges' calls;
	// they go through the hubs' router now (cloud.svc.>).
	var exports jwt.Exports
	for _, ex := range ac.Exports {
		if ex.Name != legacyCallExport {
			exports = append(exports, ex)
		}
	}
	ac.Exports = exports
	sort.Stable(ac.Exports)
	sort.Stable(ac.Imports)
	return ac, nil
}

// legacyCallExport names the CLOUD export of edges' calls an earlier
// policy format compiled; the compiler removes it.
const legacyCallExport = "edge-calls"

// permissions compiles a grantee's CLOUD grants. Admin is no restriction;
// anything else is an allow list, and a direction with nothing allowed is
// denied outright (an empty list would allow everything).
func (c *compiler) permissions(g *Grantee) jwt.Permissions {
	var p jwt.Permissions
	if g.Admin {
		return p
	}
	merge := func(q jwt.Permissions) {
		p.Pub.Allow.Add(q.Pub.Allow...)
		p.Sub.Allow.Add(q.Sub.Allow...)
		if q.Resp != nil {
			p.Resp = q.Resp
		}
	}
	// Telemetry: every edge, or the edges named one by one, or a group
	// through its own stream (groupStreams), so that the JWT does not grow
	// with a group's members.
	if readsAll(g) {
		merge(contract.CloudTelemetryReadPermissions(contract.UserNameTemplate, []string{"*"}))
	} else {
		var edges []string
		for _, t := range g.Telemetry {
			switch t.Kind {
			case TargetGroup:
				merge(contract.CloudGroupReadPermissions(contract.UserNameTemplate, t.Name))
			case TargetEdge:
				if es, _ := c.ix.resolve(t); len(es) > 0 {
					edges = append(edges, es...)
				}
			}
		}
		if len(edges) > 0 {
			merge(contract.CloudTelemetryReadPermissions(contract.UserNameTemplate, sortedNames(namesOf(edges))))
		}
	}
	var cmds []string
	groupCmds := map[string][]string{} // group -> relative subjects
	for _, cg := range g.Commands {
		var edges []string
		for _, t := range cg.To {
			switch t.Kind {
			case TargetAll:
				edges = append(edges, "*")
			case TargetEdge:
				es, _ := c.ix.resolve(t)
				edges = append(edges, es...)
			case TargetGroup:
				// Through the group's command stream (groupStreams).
				for _, s := range cg.Subjects {
					groupCmds[t.Name] = append(groupCmds[t.Name], s.Name)
				}
			}
		}
		if contains(edges, "*") {
			edges = []string{"*"}
		}
		for _, e := range edges {
			for _, s := range cg.Subjects {
				cmds = append(cmds, contract.CloudCommandSubjectFor(e, s.Name))
			}
		}
	}
	if len(cmds) > 0 {
		merge(contract.CloudCommandBasePermissions(contract.UserNameTemplate))
		sort.Strings(cmds)
		p.Pub.Allow.Add(cmds...)
	}
	for _, grp := range sortedKeys(groupCmds) {
		merge(contract.CloudGroupCommandPermissions(contract.UserNameTemplate, grp, groupCmds[grp]))
	}
	var calls []string
	for _, sr := range g.Services {
		// The hub checks the service, and the edge for edges named one
		// by one; for a group, every edge: the member list would grow the
		// JWT with the group. Each edge's gateway holds the exact grant
		// (gateway below) and refuses the rest at once (403).
		var edges []string
		for _, t := range sr.On {
			es, all := c.ix.resolve(t)
			if all || t.Kind == TargetGroup {
				es = []string{"*"}
			}
			edges = append(edges, es...)
		}
		if contains(edges, "*") {
			edges = []string{"*"}
		}
		for _, e := range edges {
			calls = append(calls, contract.CloudServiceCallSubject(e, sr.Service.Name))
		}
	}
	if len(calls) > 0 {
		merge(contract.CloudServiceCallPermissions(contract.UserNameTemplate, sortedNames(namesOf(calls))))
	}
	for _, s := range sortedNames(g.Serve) {
		merge(contract.CloudServePermissions(s))
	}
	p.Sub.Allow.Add(contract.CloudInbox(contract.UserNameTemplate))
	p.Pub.Allow = dedup(p.Pub.Allow)
	p.Sub.Allow = dedup(p.Sub.Allow)
	if len(p.Pub.Allow) == 0 {
		p.Pub.Deny.Add(">")
	}
	sort.Strings(p.Pub.Allow)
	sort.Strings(p.Sub.Allow)
	return p
}

// edge compiles one edge account: the contract's imports and exports
// stay as they are (an earlier policy format's call and peer imports and
// linked-services export are removed: calls go through the hubs' router);
// the leaf scope template is what the policy lets the edge call now.
func (c *compiler) edge(e string, cur *jwt.AccountClaims) (*jwt.AccountClaims, error) {
	ac, err := copyClaims(cur)
	if err != nil {
		return nil, fmt.Errorf("compile edge %s: %w", e, err)
	}
	var imports jwt.Imports
	for _, im := range ac.Imports {
		if !strings.HasPrefix(im.Name, legacyCallImport) && !strings.HasPrefix(im.Name, legacyPeerImport) {
			imports = append(imports, im)
		}
	}
	ac.Imports = imports
	var exports jwt.Exports
	for _, ex := range ac.Exports {
		if ex.Name != legacyLinkedExport {
			exports = append(exports, ex)
		}
	}
	ac.Exports = exports
	// As jwt's Encode orders them, so compiled and stored claims compare.
	sort.Stable(ac.Imports)
	sort.Stable(ac.Exports)
	var peers []string
	for _, b := range c.peers(e) {
		if c.f.Edges[b] != nil {
			peers = append(peers, b)
		}
	}
	for k, s := range ac.SigningKeys {
		if sc, ok := s.(*jwt.UserScope); ok && sc.Role == contract.LeafScopeRole {
			sc.Template.Permissions = contract.LeafPermissionsFor(e, c.calls(e), peers)
			ac.SigningKeys[k] = sc
		}
	}
	return ac, nil
}

// What an earlier policy format compiled into edge accounts (direct
// imports between accounts, bypassing the gateways); the compiler removes
// them.
const (
	legacyCallImport   = "call-"
	legacyPeerImport   = "peer-"
	legacyLinkedExport = "linked-services"
)

func (c *compiler) gateway(e string) Gateway {
	gw := Gateway{Edge: e, Expose: c.exposed(e)}
	exposed := map[string]bool{}
	for _, s := range gw.Expose {
		exposed[s] = true
	}
	for _, g := range c.grantees() {
		caller := Principal{Kind: g.Kind, Name: g.Name, Key: c.f.ScopeKeys[g.scopeName()]}
		for _, sr := range g.Services {
			if !exposed[sr.Service.Name] && !exposed["*"] || !c.covers(sr.On, e) {
				continue
			}
			gw.Grants = append(gw.Grants, ServiceGrant{Caller: caller, Service: sr.Service.Name, Endpoint: sr.Endpoint.Name,
				Rate: sr.Rate, Burst: sr.Burst, MaxInFlight: sr.MaxInFlight, Audit: sr.Audit})
		}
	}
	for _, b := range c.peers(e) {
		key := ""
		if pc := c.f.Edges[b]; pc != nil {
			key = pc.Subject
		}
		for _, s := range gw.Expose {
			// Every call of a linked edge is audited at the serving edge.
			gw.Grants = append(gw.Grants, ServiceGrant{Caller: Principal{Kind: PrincipalEdge, Name: b, Key: key}, Service: s, Endpoint: "*", Audit: true})
		}
	}
	sort.SliceStable(gw.Grants, func(i, j int) bool {
		a, b := gw.Grants[i], gw.Grants[j]
		return fmt.Sprint(a.Caller.Kind, "\x00", a.Caller.Name, "\x00", a.Service, "\x00", a.Endpoint) <
			fmt.Sprint(b.Caller.Kind, "\x00", b.Caller.Name, "\x00", b.Service, "\x00", b.Endpoint)
	})
	return gw
}

// covers reports whether targets name edge e.
func (c *compiler) covers(ts []Target, e string) bool {
	for _, t := range ts {
		switch t.Kind {
		case TargetAll:
			return true
		case TargetEdge:
			if t.Name == e {
				return true
			}
		case TargetGroup:
			if contains(c.ix.inGroup[e], t.Name) {
				return true
			}
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func namesOf(ss []string) []Name {
	out := make([]Name, len(ss))
	for i, s := range ss {
		out[i] = Name{Name: s}
	}
	return out
}

func dedup(ss []string) []string {
	set := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !set[s] {
			set[s] = true
			out = append(out, s)
		}
	}
	return out
}

func sortedNames(ns []Name) []string {
	set := map[string]bool{}
	for _, n := range ns {
		set[n.Name] = true
	}
	return sortedKeys(set)
}
