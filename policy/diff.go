package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/jwt/v2"

	"github.com/tether-fabric/tether/contract"
)

// Change is one difference between what is in force and a compiled policy,
// in words a reviewer understands.
type Change struct {
	// Account is the account the change is in (CLOUD, EDGE_<name>), or
	// "gateway <edge>" for an edge's service gateway.
	Account string `json:"account"`
	// Principal is who gains or loses: "role NAME", "user NAME", "edge
	// NAME", "leaf users", or empty for the account itself.
	Principal string `json:"principal,omitempty"`
	// Action is "grant" or "revoke" (a permission), "add" or "remove" (a
	// role, import, export or service).
	Action string `json:"action"`
	What   string `json:"what"`
}

func (c Change) String() string {
	who := c.Account
	if c.Principal != "" {
		who += " " + c.Principal
	}
	verb := map[string]string{"grant": "may now", "revoke": "may no longer", "add": "adds", "remove": "removes"}[c.Action]
	return fmt.Sprintf("%s: %s %s", who, verb, c.What)
}

// Diff lists what applying out changes over the facts in force, the
// gateways in force and the group streams in force (nil when none): CLOUD
// and its group streams first, then edges and gateways by name.
func Diff(f Facts, out *Output, gateways []Gateway, groups []GroupStream) []Change {
	ch := DiffAccount("CLOUD", f.Cloud, out.Cloud)
	ch = append(ch, DiffGroupStreams(groups, out.Groups)...)
	for _, e := range sortedKeys(out.Edges) {
		ch = append(ch, DiffAccount(contract.EdgeAccountName(e), f.Edges[e], out.Edges[e])...)
	}
	return append(ch, DiffGateways(gateways, out.Gateways)...)
}

// DiffAccount lists the changes from old to new claims of one account:
// scoped signing keys (roles) and their permissions, imports and exports.
func DiffAccount(name string, old, new *jwt.AccountClaims) []Change {
	var ch []Change
	add := func(who, action, what string) {
		ch = append(ch, Change{Account: name, Principal: who, Action: action, What: what})
	}
	os, ns := scopes(old), scopes(new)
	for _, role := range sortedKeys(union(os, ns)) {
		o, inOld := os[role]
		n, inNew := ns[role]
		who := scopeWho(role)
		switch {
		case !inOld:
			how := "'tether user add NAME --role " + role + "' signs users with it"
			if u, ok := strings.CutPrefix(role, "user:"); ok {
				how = "'tether user add " + u + "' signs the user with it"
			}
			add(who, "add", "a scoped signing key "+n.Key+" ("+how+")")
		case !inNew:
			add(who, "remove", "its scoped signing key "+o.Key+": users signed with it are disconnected and refused")
			continue
		case o.Key != n.Key:
			add(who, "add", "a new scoped signing key "+n.Key+" replacing "+o.Key+": users signed with the old key are refused")
		}
		var op jwt.Permissions
		if inOld {
			op = o.Template.Permissions
		}
		grants, revokes := diffLines(permLines(op, inOld), permLines(n.Template.Permissions, true))
		for _, l := range grants {
			add(who, "grant", l)
		}
		for _, l := range revokes {
			add(who, "revoke", l)
		}
	}
	if old == nil || new == nil {
		return ch
	}
	adds, removes := diffLines(importLines(old.Imports), importLines(new.Imports))
	for _, l := range adds {
		add("", "add", l)
	}
	for _, l := range removes {
		add("", "remove", l)
	}
	adds, removes = diffLines(exportLines(old.Exports), exportLines(new.Exports))
	for _, l := range adds {
		add("", "add", l)
	}
	for _, l := range removes {
		add("", "remove", l)
	}
	return ch
}

func scopeWho(role string) string {
	switch {
	case role == "leaf":
		return "leaf users"
	case strings.HasPrefix(role, "user:"):
		return "user " + strings.TrimPrefix(role, "user:")
	}
	return "role " + role
}

func scopes(ac *jwt.AccountClaims) map[string]*jwt.UserScope {
	out := map[string]*jwt.UserScope{}
	if ac == nil {
		return out
	}
	for _, s := range ac.SigningKeys {
		if sc, ok := s.(*jwt.UserScope); ok {
			out[sc.Role] = sc
		}
	}
	return out
}

func union[V any](a, b map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// diffLines returns the lines only in b (added) and only in a (removed),
// sorted.
func diffLines(a, b []string) (added, removed []string) {
	in := func(l []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range l {
			m[x] = true
		}
		return m
	}
	am, bm := in(a), in(b)
	for _, x := range b {
		if !am[x] {
			added = append(added, x)
		}
	}
	for _, x := range a {
		if !bm[x] {
			removed = append(removed, x)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

// permLines describes permissions, one line per thing allowed.
func permLines(p jwt.Permissions, present bool) []string {
	if !present {
		return nil
	}
	if len(p.Pub.Allow) == 0 && len(p.Pub.Deny) == 0 && len(p.Sub.Allow) == 0 && len(p.Sub.Deny) == 0 {
		return []string{"do anything inside the account (admin)"}
	}
	plumbing := plumbingSubjects()
	seen := map[string]bool{}
	var out []string
	line := func(l string) {
		if l != "" && !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	for _, s := range p.Pub.Allow {
		if !plumbing[s] {
			line(pubWords(s))
		}
	}
	for _, s := range p.Sub.Allow {
		if !plumbing[s] {
			line(subWords(s))
		}
	}
	if len(p.Pub.Allow) == 0 && p.Pub.Deny.Contains(">") {
		line("publish nothing but replies")
	}
	return out
}

// plumbingSubjects are the JetStream and inbox subjects every read or
// command grant brings; the words of the grant itself say enough.
func plumbingSubjects() map[string]bool {
	out := map[string]bool{contract.CloudInbox(contract.UserNameTemplate): true}
	for _, q := range []jwt.Permissions{contract.CloudTelemetryReadPermissions(contract.UserNameTemplate, []string{"x"}), contract.CloudCommandBasePermissions(contract.UserNameTemplate)} {
		for _, s := range append(append([]string{}, q.Pub.Allow...), q.Sub.Allow...) {
			if !strings.Contains(s, "edges.") {
				out[s] = true
			}
		}
	}
	return out
}

func edgeName(e string) string {
	if e == "*" {
		return "every edge"
	}
	return "edge " + e
}

func pubWords(s string) string {
	t := strings.Split(s, ".")
	if g := groupStreamToken(t); t[0] == "$JS" && g != "" {
		return "read stored telemetry of group " + g + " (stream " + contract.GroupStream(g) + ")"
	}
	if strings.HasPrefix(s, "$JS.API.STREAM.INFO."+contract.GroupCommandStreamPrefix) {
		return "" // plumbing of a group command grant, which says enough
	}
	switch {
	case len(t) >= 6 && t[0]+"." == contract.GroupPrefix && t[2] == "edges" && t[3] == "*" && t[4] == "cmd":
		cmd := "command " + strings.Join(t[5:], ".")
		if len(t) == 6 && t[5] == ">" {
			cmd = "any command"
		}
		return fmt.Sprintf("send %s to the edges of group %s (on %s)", cmd, t[1], s)
	case len(t) >= 4 && t[0] == "edges" && t[2] == "cmd":
		cmd := "command " + strings.Join(t[3:], ".")
		if len(t) == 4 && t[3] == ">" {
			cmd = "any command"
		}
		return fmt.Sprintf("send %s to %s", cmd, edgeName(t[1]))
	case strings.HasPrefix(s, "$JS.API.CONSUMER.CREATE.TELEMETRY.") && len(t) >= 8 && t[6] == "edges":
		// $JS.API.CONSUMER.CREATE.TELEMETRY.<consumer>.edges.<edge>.telemetry.>
		i := strings.Index(s, ".edges.") + 1
		return "read stored telemetry of " + edgeName(strings.Split(s[i:], ".")[1])
	case strings.HasPrefix(s, "$JS.API.CONSUMER.CREATE.TELEMETRY") || strings.HasPrefix(s, "$JS.API.CONSUMER.DURABLE.CREATE.TELEMETRY."):
		return "read stored telemetry of every edge"
	case strings.HasPrefix(s, "$JS.API.DIRECT.GET.TELEMETRY") || s == "$JS.API.STREAM.MSG.GET.TELEMETRY":
		return "fetch single stored telemetry messages of every edge"
	case len(t) == 5 && t[0] == "edges" && t[2] == "svc" && t[4] == ">":
		if t[3] == "*" {
			return "call every service of " + edgeName(t[1]) + " that its gateway admits"
		}
		if t[1] == "*" {
			return fmt.Sprintf("call service %s on the edges whose gateway admits it (the gateway grants say which)", t[3])
		}
		return fmt.Sprintf("call service %s on %s", t[3], edgeName(t[1]))
	case s == contract.ServiceList:
		return "list the fleet's services (" + s + ")"
	case len(t) == 8 && strings.HasPrefix(s, contract.SvcPrefix+"out.") && t[4] == "cloud" && t[5] == "svc" && t[7] == ">":
		return "call cloud service " + t[6] + " (through the hubs' router)"
	case len(t) == 8 && strings.HasPrefix(s, contract.SvcPrefix+"out.") && t[4] == "edges" && t[6] == "svc" && t[7] == ">":
		return "call the services of " + edgeName(t[5]) + " that its gateway admits (through the hubs' router)"
	}
	return "publish " + s
}

// groupStreamToken returns the group of the first token that names a
// group telemetry stream, or "".
func groupStreamToken(t []string) string {
	for _, x := range t {
		if g, ok := strings.CutPrefix(x, contract.GroupStreamPrefix); ok && g != "" {
			return g
		}
	}
	return ""
}

func subWords(s string) string {
	t := strings.Split(s, ".")
	switch {
	case len(t) > 1 && s == contract.GroupLiveSubject(t[1]):
		return "receive live telemetry of group " + t[1]
	case len(t) == 4 && t[0] == "edges" && t[2] == "telemetry" && t[3] == ">":
		return "receive live telemetry of " + edgeName(t[1])
	case len(t) == 4 && t[0] == "cloud" && t[1] == "svc" && t[3] == ">":
		return "answer edges' calls to cloud service " + t[2]
	}
	return "receive " + s
}

func importLines(ims jwt.Imports) []string {
	var out []string
	for _, im := range ims {
		switch {
		case strings.HasPrefix(im.Name, "call-"):
			out = append(out, "an import: its edge may call cloud service "+strings.TrimPrefix(im.Name, "call-"))
		case strings.HasPrefix(im.Name, "peer-"):
			out = append(out, "a link to edge "+strings.TrimPrefix(im.Name, "peer-")+": its clients may call that edge's services")
		default:
			out = append(out, fmt.Sprintf("import %s (%s from %s)", im.Name, im.Subject, im.Account))
		}
	}
	return out
}

func exportLines(exs jwt.Exports) []string {
	var out []string
	for _, ex := range exs {
		switch ex.Name {
		case "linked-services":
			out = append(out, "an export: its services are reachable from the edges linked with it")
		case "edge-calls":
			out = append(out, "an export: edges may call cloud services through edges.*.call.> (only those whose account imports one)")
		default:
			out = append(out, fmt.Sprintf("export %s (%s)", ex.Name, ex.Subject))
		}
	}
	return out
}

// DiffGateways lists the changes between two sets of gateway
// configurations: services exposed and grants, per edge.
func DiffGateways(old, new []Gateway) []Change {
	om, nm := map[string]Gateway{}, map[string]Gateway{}
	for _, g := range old {
		om[g.Edge] = g
	}
	for _, g := range new {
		nm[g.Edge] = g
	}
	var ch []Change
	for _, e := range sortedKeys(union(om, nm)) {
		o, n := om[e], nm[e]
		acc := "gateway " + e
		adds, removes := diffLines(exposeLines(o), exposeLines(n))
		for _, l := range adds {
			ch = append(ch, Change{Account: acc, Action: "add", What: l})
		}
		for _, l := range removes {
			ch = append(ch, Change{Account: acc, Action: "remove", What: l})
		}
		og, ng := grantLines(o), grantLines(n)
		for _, who := range sortedKeys(union(og, ng)) {
			adds, removes := diffLines(og[who], ng[who])
			for _, l := range adds {
				ch = append(ch, Change{Account: acc, Principal: who, Action: "grant", What: l})
			}
			for _, l := range removes {
				ch = append(ch, Change{Account: acc, Principal: who, Action: "revoke", What: l})
			}
		}
	}
	return ch
}

func exposeLines(g Gateway) []string {
	var out []string
	for _, s := range g.Expose {
		out = append(out, "exposure of service "+s+" to callers outside the edge")
	}
	return out
}

func grantLines(g Gateway) map[string][]string {
	out := map[string][]string{}
	for _, gr := range g.Grants {
		who := gr.Caller.Kind + " " + gr.Caller.Name
		out[who] = append(out[who], gr.Words())
	}
	return out
}

// Words describes a grant: "call vision.inspect (10/s, burst 20, 5 in
// flight, audited)".
func (g ServiceGrant) Words() string {
	var lim []string
	if g.Rate > 0 {
		lim = append(lim, fmt.Sprintf("%g/s", g.Rate))
	}
	if g.Burst > 0 {
		lim = append(lim, fmt.Sprintf("burst %d", g.Burst))
	}
	if g.MaxInFlight > 0 {
		lim = append(lim, fmt.Sprintf("%d in flight", g.MaxInFlight))
	}
	ep := g.Endpoint
	if ep == "*" {
		ep = "any endpoint"
	}
	s := fmt.Sprintf("call service %s (%s)", g.Service, ep)
	if len(lim) > 0 {
		s += " limited to " + strings.Join(lim, ", ")
	} else {
		s += " without limit"
	}
	if g.Audit {
		s += ", audited"
	}
	return s
}
