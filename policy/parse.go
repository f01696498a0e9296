package policy

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Keys of each mapping in the format, in the order they are documented.
var (
	topKeys       = []string{"version", "edges", "groups", "roles", "users"}
	ruleKeys      = []string{"expose", "calls", "links"}
	edgeKeys      = append([]string{"labels"}, ruleKeys...)
	groupKeys     = append([]string{"match_labels", "match_expressions"}, ruleKeys...)
	roleKeys      = []string{"description", "admin", "telemetry", "commands", "services", "serve"}
	userKeys      = append(append([]string{}, roleKeys...), "role")
	commandKeys   = []string{"to", "subjects"}
	serviceKeys   = []string{"service", "endpoint", "on", "rate", "burst", "max_in_flight", "audit"}
	maxPolicySize = 16 << 20
)

// Parse reads a policy file (name is used in diagnostics) and validates it.
// It returns the policy (nil when the file cannot be read as YAML) and every
// diagnostic, errors and warnings, sorted by position. The policy is only
// fit to compile when Diagnostics.Err is nil.
func Parse(name string, data []byte) (*Policy, Diagnostics) {
	r := &reporter{file: name}
	if len(data) > maxPolicySize {
		r.errorf(Pos{1, 1}, "file is %d bytes: want at most %d", len(data), maxPolicySize)
		return nil, r.diags
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		r.errorf(yamlErrPos(err), "not valid YAML: %v", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, r.diags
	}
	p := &Policy{}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		r.errorf(Pos{1, 1}, "empty policy: want at least 'version: 1'")
		return nil, r.diags
	}
	ps := &parser{r: r}
	ps.top(doc.Content[0], p)
	validate(r, p)
	return p, r.diags.sorted()
}

func yamlErrPos(err error) Pos {
	// yaml.v3 says "yaml: line N: ..."; keep the line when it does.
	s := err.Error()
	if i := strings.Index(s, "line "); i >= 0 {
		rest := s[i+5:]
		if j := strings.IndexByte(rest, ':'); j > 0 {
			if n, err := strconv.Atoi(rest[:j]); err == nil {
				return Pos{n, 1}
			}
		}
	}
	return Pos{1, 1}
}

type parser struct{ r *reporter }

func pos(n *yaml.Node) Pos { return Pos{n.Line, n.Column} }

// mapping calls f for each key of n in order, reporting unknown and
// duplicate keys. what names the mapping in messages.
func (ps *parser) mapping(n *yaml.Node, what string, allowed []string, f func(key string, k, v *yaml.Node)) bool {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return true
	}
	if n.Kind != yaml.MappingNode {
		ps.r.errorf(pos(n), "%s: want a mapping (key: value)", what)
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !ps.plain(k, what+" key") || !ps.noAlias(v) {
			continue
		}
		if seen[k.Value] {
			ps.r.errorf(pos(k), "%s: key %q appears twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		if allowed != nil && !contains(allowed, k.Value) {
			ps.r.errorf(pos(k), "unknown key %q in %s: want one of %s", k.Value, what, strings.Join(allowed, ", "))
			continue
		}
		f(k.Value, k, v)
	}
	return true
}

func (ps *parser) noAlias(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		ps.r.errorf(pos(n), "YAML anchors and aliases are not supported: write the value out")
		return false
	}
	return true
}

func (ps *parser) plain(n *yaml.Node, what string) bool {
	if n.Kind != yaml.ScalarNode {
		ps.r.errorf(pos(n), "%s: want a plain value", what)
		return false
	}
	return true
}

func (ps *parser) str(n *yaml.Node, what string) (string, bool) {
	if !ps.plain(n, what) {
		return "", false
	}
	if n.Tag == "!!null" {
		ps.r.errorf(pos(n), "%s: want a value", what)
		return "", false
	}
	return n.Value, true
}

func (ps *parser) boolean(n *yaml.Node, what string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		ps.r.errorf(pos(n), "%s: want true or false", what)
		return false
	}
	return n.Value == "true" || n.Value == "True" || n.Value == "TRUE"
}

func (ps *parser) integer(n *yaml.Node, what string) int {
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil || v < 0 || v > 1<<30 {
		ps.r.errorf(pos(n), "%s: want a whole number from 0 to %d, got %q", what, 1<<30, n.Value)
		return 0
	}
	return v
}

// list calls f for every item of a sequence.
func (ps *parser) list(n *yaml.Node, what string, f func(item *yaml.Node)) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		ps.r.errorf(pos(n), "%s: want a list ([a, b] or one '- item' per line)", what)
		return
	}
	for _, it := range n.Content {
		if ps.noAlias(it) {
			f(it)
		}
	}
}

func (ps *parser) names(n *yaml.Node, what string) []Name {
	var out []Name
	ps.list(n, what, func(it *yaml.Node) {
		if s, ok := ps.str(it, what+" item"); ok {
			out = append(out, Name{s, pos(it)})
		}
	})
	return out
}

func (ps *parser) targets(n *yaml.Node, what string) []Target {
	var out []Target
	for _, nm := range ps.names(n, what) {
		out = append(out, parseTarget(nm))
	}
	return out
}

func parseTarget(nm Name) Target {
	switch {
	case nm.Name == "*":
		return Target{Kind: TargetAll, Pos: nm.Pos}
	case strings.HasPrefix(nm.Name, "group:"):
		return Target{Kind: TargetGroup, Name: strings.TrimPrefix(nm.Name, "group:"), Pos: nm.Pos}
	}
	return Target{Kind: TargetEdge, Name: nm.Name, Pos: nm.Pos}
}

func (ps *parser) labels(n *yaml.Node, what string) map[string]string {
	out := map[string]string{}
	ps.mapping(n, what, nil, func(key string, k, v *yaml.Node) {
		if s, ok := ps.str(v, what+"."+key); ok {
			out[key] = s
		}
	})
	return out
}

func (ps *parser) top(n *yaml.Node, p *Policy) {
	ps.mapping(n, "the policy", topKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			if v.Kind != yaml.ScalarNode || v.Value != "1" {
				ps.r.errorf(pos(v), "version: want 1, got %q", v.Value)
			}
			p.Version = 1
		case "edges":
			ps.mapping(v, "edges", nil, func(name string, k, v *yaml.Node) {
				e := &Edge{Name: name, Pos: pos(k), Labels: map[string]string{}}
				ps.mapping(v, "edge "+name, edgeKeys, func(key string, _, v *yaml.Node) {
					if key == "labels" {
						e.Labels = ps.labels(v, "edge "+name+" labels")
						return
					}
					ps.rule(&e.Rules, key, v, "edge "+name)
				})
				p.Edges = append(p.Edges, e)
			})
		case "groups":
			ps.mapping(v, "groups", nil, func(name string, k, v *yaml.Node) {
				g := &Group{Name: name, Pos: pos(k), MatchLabels: map[string]string{}}
				ps.mapping(v, "group "+name, groupKeys, func(key string, _, v *yaml.Node) {
					switch key {
					case "match_labels":
						g.MatchLabels = ps.labels(v, "group "+name+" match_labels")
					case "match_expressions":
						for _, s := range ps.names(v, "group "+name+" match_expressions") {
							if x, err := parseExpr(s.Name); err != nil {
								ps.r.errorf(s.Pos, "group %s: expression %q: %v", name, s.Name, err)
							} else {
								x.Pos = s.Pos
								g.Where = append(g.Where, x)
							}
						}
					default:
						ps.rule(&g.Rules, key, v, "group "+name)
					}
				})
				p.Groups = append(p.Groups, g)
			})
		case "roles", "users":
			kind, keys := PrincipalRole, roleKeys
			if key == "users" {
				kind, keys = PrincipalUser, userKeys
			}
			ps.mapping(v, key, nil, func(name string, k, v *yaml.Node) {
				pr := &Grantee{Kind: kind, Name: name, Pos: pos(k)}
				ps.principal(pr, v, keys)
				if kind == PrincipalRole {
					p.Roles = append(p.Roles, pr)
				} else {
					p.Users = append(p.Users, pr)
				}
			})
		}
	})
	if p.Version == 0 {
		ps.r.errorf(pos(n), "missing 'version: 1'")
	}
}

func (ps *parser) rule(r *Rules, key string, v *yaml.Node, what string) {
	switch key {
	case "expose":
		r.Expose = ps.names(v, what+" expose")
	case "calls":
		r.Calls = ps.names(v, what+" calls")
	case "links":
		r.Links = ps.targets(v, what+" links")
	}
}

func (ps *parser) principal(pr *Grantee, n *yaml.Node, keys []string) {
	what := pr.Kind + " " + pr.Name
	ps.mapping(n, what, keys, func(key string, k, v *yaml.Node) {
		switch key {
		case "description":
			pr.Description, _ = ps.str(v, what+" description")
		case "admin":
			pr.Admin = ps.boolean(v, what+" admin")
		case "telemetry":
			pr.Telemetry = ps.targets(v, what+" telemetry")
		case "serve":
			pr.Serve = ps.names(v, what+" serve")
		case "role":
			if s, ok := ps.str(v, what+" role"); ok {
				pr.Role = Name{s, pos(v)}
			}
		case "commands":
			ps.list(v, what+" commands", func(it *yaml.Node) {
				c := CommandGrant{Pos: pos(it)}
				ps.mapping(it, what+" command grant", commandKeys, func(key string, _, v *yaml.Node) {
					if key == "to" {
						c.To = ps.targets(v, what+" commands to")
					} else {
						c.Subjects = ps.names(v, what+" commands subjects")
					}
				})
				pr.Commands = append(pr.Commands, c)
			})
		case "services":
			ps.list(v, what+" services", func(it *yaml.Node) {
				sr := ServiceRule{Pos: pos(it), Endpoint: Name{"*", pos(it)}}
				ps.mapping(it, what+" service grant", serviceKeys, func(key string, _, v *yaml.Node) {
					ps.serviceField(&sr, key, v, what)
				})
				pr.Services = append(pr.Services, sr)
			})
		}
	})
}

func (ps *parser) serviceField(sr *ServiceRule, key string, v *yaml.Node, what string) {
	switch key {
	case "service":
		if s, ok := ps.str(v, what+" service"); ok {
			sr.Service = Name{s, pos(v)}
		}
	case "endpoint":
		if s, ok := ps.str(v, what+" endpoint"); ok {
			sr.Endpoint = Name{s, pos(v)}
		}
	case "on":
		sr.On = ps.targets(v, what+" services on")
	case "rate":
		if s, ok := ps.str(v, what+" rate"); ok {
			r, err := ParseRate(s)
			if err != nil {
				ps.r.errorf(pos(v), "%s rate %q: %v", what, s, err)
			}
			sr.Rate, sr.RateText = r, s
		}
	case "burst":
		sr.Burst = ps.integer(v, what+" burst")
	case "max_in_flight":
		sr.MaxInFlight = ps.integer(v, what+" max_in_flight")
	case "audit":
		sr.Audit = ps.boolean(v, what+" audit")
	}
}

// ParseRate reads a rate: a number of calls per second ("10", "0.5"), or
// "N/s", "N/m" (per minute) or "N/h" (per hour). It returns calls per
// second, more than 0.
func ParseRate(s string) (float64, error) {
	num, unit, hasUnit := strings.Cut(strings.TrimSpace(s), "/")
	div := 1.0
	if hasUnit {
		switch strings.TrimSpace(unit) {
		case "s", "sec", "second":
		case "m", "min", "minute":
			div = 60
		case "h", "hour":
			div = 3600
		default:
			return 0, fmt.Errorf("unknown unit %q: want N/s, N/m or N/h, e.g. 10/s", unit)
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || v <= 0 || v > 1e9 || v != v {
		return 0, fmt.Errorf("want a number above 0 (calls per second) or N/s, N/m or N/h, e.g. 10/s")
	}
	return v / div, nil
}

// parseExpr reads a label expression.
func parseExpr(s string) (Expr, error) {
	s = strings.TrimSpace(s)
	want := `want "key in (a, b)", "key notin (a)", "key = v", "key != v", "key" or "!key"`
	fields := strings.Fields(s)
	switch {
	case len(fields) == 1 && strings.HasPrefix(s, "!") && validLabelKey(s[1:]):
		return Expr{Key: s[1:], Op: "notexists"}, nil
	case len(fields) == 1 && validLabelKey(s):
		return Expr{Key: s, Op: "exists"}, nil
	}
	if len(fields) >= 3 && (fields[1] == "in" || fields[1] == "notin") && validLabelKey(fields[0]) {
		rest := strings.TrimSpace(s[strings.Index(s, " "+fields[1])+len(fields[1])+1:])
		if strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")") {
			var vals []string
			for _, v := range strings.Split(rest[1:len(rest)-1], ",") {
				if v = strings.TrimSpace(v); v == "" || strings.ContainsAny(v, " ()=!") {
					return Expr{}, fmt.Errorf("empty or malformed value in the list: %s", want)
				}
				vals = append(vals, v)
			}
			return Expr{Key: fields[0], Op: fields[1], Values: vals}, nil
		}
		return Expr{}, fmt.Errorf("%s", want)
	}
	op, sep := "in", "="
	if strings.Contains(s, "!=") {
		op, sep = "notin", "!="
	}
	if k, v, ok := strings.Cut(s, sep); ok {
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if validLabelKey(k) && v != "" && !strings.ContainsAny(v, " ,()=!") {
			return Expr{Key: k, Op: op, Values: []string{v}}, nil
		}
	}
	return Expr{}, fmt.Errorf("%s", want)
}

func validLabelKey(k string) bool {
	if k == "" || len(k) > 63 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/') {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
