package policy

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

var (
	// nameRE is a lowercase DNS label: edge, group, role and user names
	// (the same rule as contract.ValidateEdgeName).
	nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// serviceRE is a nats.go micro service or endpoint name.
	serviceRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// tokenRE is one literal subject token of a command.
	tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// index resolves the file's names: edges by name, groups with their members.
type index struct {
	edges   map[string]*Edge
	groups  map[string]*Group
	roles   map[string]*Grantee
	members map[string][]string // group -> sorted edge names
	inGroup map[string][]string // edge -> sorted group names
}

func newIndex(p *Policy) *index {
	ix := &index{edges: map[string]*Edge{}, groups: map[string]*Group{}, roles: map[string]*Grantee{},
		members: map[string][]string{}, inGroup: map[string][]string{}}
	for _, e := range p.Edges {
		ix.edges[e.Name] = e
	}
	for _, r := range p.Roles {
		ix.roles[r.Name] = r
	}
	for _, g := range p.Groups {
		ix.groups[g.Name] = g
		for _, e := range p.Edges {
			if g.matches(e.Labels) {
				ix.members[g.Name] = append(ix.members[g.Name], e.Name)
				ix.inGroup[e.Name] = append(ix.inGroup[e.Name], g.Name)
			}
		}
	}
	for _, v := range ix.members {
		sort.Strings(v)
	}
	for _, v := range ix.inGroup {
		sort.Strings(v)
	}
	return ix
}

func (g *Group) matches(labels map[string]string) bool {
	for k, v := range g.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	for _, x := range g.Where {
		v, has := labels[x.Key]
		switch x.Op {
		case "exists":
			if !has {
				return false
			}
		case "notexists":
			if has {
				return false
			}
		case "in":
			if !has || !contains(x.Values, v) {
				return false
			}
		case "notin":
			if has && contains(x.Values, v) {
				return false
			}
		}
	}
	return true
}

// resolve returns the edges a target names (sorted), and whether it names
// every edge ("*").
func (ix *index) resolve(t Target) (edges []string, all bool) {
	switch t.Kind {
	case TargetAll:
		return nil, true
	case TargetGroup:
		return ix.members[t.Name], false
	}
	if _, ok := ix.edges[t.Name]; ok {
		return []string{t.Name}, false
	}
	return nil, false
}

// rulesOf returns the rules that apply to edge: its own and its groups'.
func (ix *index) rulesOf(edge string) []*Rules {
	var out []*Rules
	if e := ix.edges[edge]; e != nil {
		out = append(out, &e.Rules)
	}
	for _, g := range ix.inGroup[edge] {
		out = append(out, &ix.groups[g].Rules)
	}
	return out
}

func (ix *index) exposes(edge, service string) bool {
	for _, r := range ix.rulesOf(edge) {
		for _, s := range r.Expose {
			if s.Name == service || s.Name == "*" {
				return true
			}
		}
	}
	return false
}

// allowsLink reports whether edge's entry or one of its groups names peer
// (directly or through a group peer is in, or "*").
func (ix *index) allowsLink(edge, peer string) bool {
	for _, r := range ix.rulesOf(edge) {
		for _, t := range r.Links {
			edges, all := ix.resolve(t)
			if all || contains(edges, peer) {
				return true
			}
		}
	}
	return false
}

func validate(r *reporter, p *Policy) {
	ix := newIndex(p)
	names := map[string]Pos{}
	checkName := func(kind, name string, at Pos) {
		if !nameRE.MatchString(name) {
			r.errorf(at, "%s name %q: want a lowercase DNS label (1-63 of a-z, 0-9, '-', not starting or ending with '-')", kind, name)
		}
		key := kind + "/" + name
		if prev, dup := names[key]; dup {
			r.errorf(at, "%s %q is defined twice (first at %d:%d)", kind, name, prev.Line, prev.Col)
		}
		names[key] = at
	}
	for _, e := range p.Edges {
		checkName("edge", e.Name, e.Pos)
		validateRules(r, ix, &e.Rules, "edge "+e.Name)
	}
	for _, g := range p.Groups {
		checkName("group", g.Name, g.Pos)
		if len(g.MatchLabels) == 0 && len(g.Where) == 0 {
			r.errorf(g.Pos, "group %s has no selector: want match_labels or match_expressions (a group of every edge is \"*\")", g.Name)
		} else if len(ix.members[g.Name]) == 0 {
			r.warnf(g.Pos, "group %s matches no edge of the file: its rules apply to nothing", g.Name)
		}
		validateRules(r, ix, &g.Rules, "group "+g.Name)
	}
	for _, pr := range p.Roles {
		checkName("role", pr.Name, pr.Pos)
		if pr.Name == "leaf" {
			r.errorf(pr.Pos, "role name \"leaf\" is reserved (the edges' leaf users): want another name")
		}
		validateGrantee(r, ix, pr)
	}
	for _, pr := range p.Users {
		checkName("user", pr.Name, pr.Pos)
		if pr.Name == "sys" || pr.Name == "cloud" {
			r.errorf(pr.Pos, "user name %q is reserved: want another name", pr.Name)
		}
		validateGrantee(r, ix, pr)
	}
	validateLinks(r, p, ix)
}

// checkTargets reports targets naming unknown edges or groups.
func checkTargets(r *reporter, ix *index, ts []Target, what string) {
	for _, t := range ts {
		switch t.Kind {
		case TargetGroup:
			if ix.groups[t.Name] == nil {
				r.errorf(t.Pos, "%s: unknown group %q: want one of the groups under groups: (%s)", what, t.Name, keys(ix.groups))
			}
		case TargetEdge:
			if ix.edges[t.Name] == nil {
				r.errorf(t.Pos, "%s: unknown edge %q: want an edge under edges: (%s), \"group:NAME\" or \"*\"", what, t.Name, keys(ix.edges))
			}
		}
	}
}

func validateRules(r *reporter, ix *index, rl *Rules, what string) {
	checkServiceNames(r, rl.Expose, what+" expose", true)
	checkServiceNames(r, rl.Calls, what+" calls", false)
	checkTargets(r, ix, rl.Links, what+" links")
	for _, t := range rl.Links {
		if t.Kind == TargetAll {
			r.errorf(t.Pos, "%s links: \"*\" would link every edge: name the edges or groups to link with", what)
		}
	}
}

// checkServiceNames checks service names; star allows "*" (every service
// at the edge).
func checkServiceNames(r *reporter, ns []Name, what string, star bool) {
	seen := map[string]Pos{}
	for _, n := range ns {
		if !serviceRE.MatchString(n.Name) && !(star && n.Name == "*") {
			alt := ""
			if star {
				alt = ` or "*" (every service at the edge)`
			}
			r.errorf(n.Pos, "%s: service name %q: want 1-64 of A-Z, a-z, 0-9, '-', '_' (a micro service name)%s", what, n.Name, alt)
		}
		if prev, dup := seen[n.Name]; dup {
			r.warnf(n.Pos, "%s: %s is listed twice (first at %d:%d)", what, n.Name, prev.Line, prev.Col)
		}
		seen[n.Name] = n.Pos
	}
}

func validateGrantee(r *reporter, ix *index, pr *Grantee) {
	what := pr.Kind + " " + pr.Name
	if pr.Role.Name != "" {
		if ix.roles[pr.Role.Name] == nil {
			r.errorf(pr.Role.Pos, "%s: unknown role %q: want one of the roles under roles: (%s)", what, pr.Role.Name, keys(ix.roles))
		}
		if pr.Admin || len(pr.Telemetry)+len(pr.Commands)+len(pr.Services)+len(pr.Serve) > 0 {
			r.errorf(pr.Pos, "%s holds role %s and has grants of its own: want either 'role:' or grants", what, pr.Role.Name)
		}
	}
	if pr.Admin && len(pr.Telemetry)+len(pr.Commands)+len(pr.Serve) > 0 {
		r.warnf(pr.Pos, "%s: admin already allows everything inside the CLOUD account; its telemetry, commands and serve grants add nothing", what)
	}
	checkTargets(r, ix, pr.Telemetry, what+" telemetry")
	overlaps(r, ix, pr.Telemetry, what+" telemetry")
	checkServiceNames(r, pr.Serve, what+" serve", false)
	type cmdKey struct{ edge, subject string }
	seenCmd := map[cmdKey]Pos{}
	for _, c := range pr.Commands {
		if len(c.To) == 0 {
			r.errorf(c.Pos, "%s commands: missing 'to': want the edges, groups (\"group:NAME\") or \"*\" the commands may go to", what)
		}
		if len(c.Subjects) == 0 {
			r.errorf(c.Pos, "%s commands: missing 'subjects': want command subjects relative to the edge's cmd., e.g. [reboot, \"config.>\"]", what)
		}
		checkTargets(r, ix, c.To, what+" commands to")
		for _, s := range c.Subjects {
			if err := checkCommandSubject(s.Name); err != nil {
				r.errorf(s.Pos, "%s commands subject %q: %v", what, s.Name, err)
			}
		}
		for _, t := range c.To {
			edges, all := ix.resolve(t)
			if all {
				edges = []string{"*"}
			}
			for _, e := range edges {
				for _, s := range c.Subjects {
					k := cmdKey{e, s.Name}
					if prev, dup := seenCmd[k]; dup {
						r.warnf(s.Pos, "%s commands: %s to %s overlaps the grant at %d:%d", what, s.Name, e, prev.Line, prev.Col)
					}
					seenCmd[k] = s.Pos
				}
			}
		}
	}
	type svcKey struct{ service, endpoint, edge string }
	seenSvc := map[svcKey]ServiceRule{}
	for _, sr := range pr.Services {
		if sr.Service.Name == "" {
			r.errorf(sr.Pos, "%s services: missing 'service': want the micro service name", what)
		} else if !serviceRE.MatchString(sr.Service.Name) && sr.Service.Name != "*" {
			r.errorf(sr.Service.Pos, "%s services: service name %q: want 1-64 of A-Z, a-z, 0-9, '-', '_', or \"*\" (every service the edges expose)", what, sr.Service.Name)
		}
		if sr.Endpoint.Name != "*" && !serviceRE.MatchString(sr.Endpoint.Name) {
			r.errorf(sr.Endpoint.Pos, "%s services: endpoint %q: want an endpoint name (A-Z, a-z, 0-9, '-', '_') or \"*\"", what, sr.Endpoint.Name)
		}
		if len(sr.On) == 0 {
			r.errorf(sr.Pos, "%s services: missing 'on': want the edges, groups or \"*\" whose service may be called", what)
		}
		if sr.Burst > 0 && sr.Rate == 0 {
			r.warnf(sr.Pos, "%s services: burst without rate has no effect: add a rate, e.g. rate: 10/s", what)
		}
		checkTargets(r, ix, sr.On, what+" services on")
		for _, t := range sr.On {
			edges, all := ix.resolve(t)
			if all {
				edges = []string{"*"}
			}
			for _, e := range edges {
				if e != "*" && sr.Service.Name != "" && !ix.exposes(e, sr.Service.Name) {
					r.warnf(t.Pos, "%s services: edge %s does not expose %s (add it to the edge's or a group's expose): the grant has no effect there", what, e, sr.Service.Name)
				}
				k := svcKey{sr.Service.Name, sr.Endpoint.Name, e}
				if prev, dup := seenSvc[k]; dup {
					if prev.Rate != sr.Rate || prev.Burst != sr.Burst || prev.MaxInFlight != sr.MaxInFlight || prev.Audit != sr.Audit {
						r.errorf(sr.Pos, "%s services: %s.%s on %s has limits contradicting the grant at %d:%d: want one grant per service, endpoint and edge", what, sr.Service.Name, sr.Endpoint.Name, e, prev.Pos.Line, prev.Pos.Col)
					} else {
						r.warnf(sr.Pos, "%s services: %s.%s on %s overlaps the grant at %d:%d", what, sr.Service.Name, sr.Endpoint.Name, e, prev.Pos.Line, prev.Pos.Col)
					}
					continue
				}
				seenSvc[k] = sr
			}
		}
	}
}

// overlaps warns about targets that cover an edge another target of the
// same list already covers.
func overlaps(r *reporter, ix *index, ts []Target, what string) {
	seen := map[string]Target{}
	for _, t := range ts {
		edges, all := ix.resolve(t)
		if all {
			edges = []string{"*"}
		}
		for _, e := range edges {
			if prev, dup := seen[e]; dup {
				r.warnf(t.Pos, "%s: %s overlaps %s at %d:%d (both cover %s)", what, t, prev, prev.Pos.Line, prev.Pos.Col, e)
				break
			}
			seen[e] = t
		}
		if prev, ok := seen["*"]; ok && !all {
			r.warnf(t.Pos, "%s: %s is already covered by \"*\" at %d:%d", what, t, prev.Pos.Line, prev.Pos.Col)
		}
	}
}

// checkCommandSubject checks a command subject relative to an edge's cmd.:
// literal tokens, '*' as a whole token, '>' only last. It must not restate
// the edge's prefix or reach a system subject.
func checkCommandSubject(s string) error {
	if strings.HasPrefix(s, "edges.") || strings.HasPrefix(s, "cmd.") || strings.HasPrefix(s, "$") {
		return fmt.Errorf("reaches beyond the edge's own commands: write it relative to the edge's cmd., e.g. reboot or config.>")
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == ">" && i == len(toks)-1, t == "*":
		case t == ">":
			return fmt.Errorf("'>' must be the last token, e.g. config.>")
		case !tokenRE.MatchString(t):
			return fmt.Errorf("token %q: want tokens of A-Z, a-z, 0-9, '-', '_' separated by '.', '*' for one token, '>' last for the rest", t)
		}
	}
	return nil
}

// validateLinks warns about one-sided links, which make no link.
func validateLinks(r *reporter, p *Policy, ix *index) {
	check := func(rl *Rules, from []string, what string) {
		for _, t := range rl.Links {
			peers, _ := ix.resolve(t)
			for _, a := range from {
				for _, b := range peers {
					if a == b {
						continue
					}
					if !ix.allowsLink(b, a) {
						r.warnf(t.Pos, "%s links: %s allows %s but %s does not allow %s: no link is made until both sides allow it", what, a, b, b, a)
						return
					}
				}
			}
		}
	}
	for _, e := range p.Edges {
		check(&e.Rules, []string{e.Name}, "edge "+e.Name)
	}
	for _, g := range p.Groups {
		check(&g.Rules, ix.members[g.Name], "group "+g.Name)
	}
}

func keys[V any](m map[string]V) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) > 8 {
		out = append(out[:8], "...")
	}
	if len(out) == 0 {
		return "none defined"
	}
	return strings.Join(out, ", ")
}
