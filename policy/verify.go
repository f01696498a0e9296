package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"

	"github.com/tether-fabric/tether/contract"
)

// Verify checks a compiled policy against the file, independently of the
// compiler: every subject a policy scope allows, every import, export and
// leaf permission of an edge and every gateway grant must be one the file
// names (or the data-path contract's own). It returns every excess found.
// Apply runs it before signing anything.
func Verify(p *Policy, f Facts, out *Output) error {
	ix := newIndex(p)
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	byScope := map[string]*Grantee{}
	for _, g := range append(append([]*Grantee{}, p.Roles...), p.Users...) {
		byScope[g.scopeName()] = g
	}
	base := baseCloudSubjects()
	for _, s := range out.Cloud.SigningKeys {
		sc, ok := s.(*jwt.UserScope)
		if !ok || !strings.HasPrefix(sc.Description, policyScopeDescription) {
			continue
		}
		g := byScope[sc.Role]
		if g == nil || f.ScopeKeys[sc.Role] != sc.Key {
			bad("CLOUD scope %q (key %s) is not a principal of the file", sc.Role, sc.Key)
			continue
		}
		perm := sc.Template.Permissions
		if g.Admin {
			continue
		}
		if len(perm.Pub.Allow) == 0 && !perm.Pub.Deny.Contains(">") || len(perm.Sub.Allow) == 0 {
			bad("%s %s: an empty allow list would allow everything", g.Kind, g.Name)
		}
		for _, subj := range perm.Pub.Allow {
			if !base[subj] && !grantedPub(ix, g, subj) {
				bad("%s %s may publish %q, which the file does not grant", g.Kind, g.Name, subj)
			}
		}
		for _, subj := range perm.Sub.Allow {
			if !base[subj] && !grantedSub(ix, g, subj) {
				bad("%s %s may subscribe %q, which the file does not grant", g.Kind, g.Name, subj)
			}
		}
	}
	for e, ac := range out.Edges {
		verifyEdge(ix, f, e, ac, bad)
	}
	read, command := map[string]bool{}, map[string]bool{}
	for _, g := range byScope {
		for _, t := range g.Telemetry {
			if t.Kind == TargetGroup && !g.Admin {
				read[t.Name] = true
			}
		}
		for _, cg := range g.Commands {
			for _, t := range cg.To {
				if t.Kind == TargetGroup && !g.Admin {
					command[t.Name] = true
				}
			}
		}
	}
	for _, gs := range out.Groups {
		if gs.Telemetry && !read[gs.Group] {
			bad("stream %s: no grant reads group %s", contract.GroupStream(gs.Group), gs.Group)
		}
		if gs.Commands && !command[gs.Group] {
			bad("stream %s: no grant sends commands to group %s", contract.GroupCommandStream(gs.Group), gs.Group)
		}
		for _, e := range gs.Edges {
			if !contains(ix.members[gs.Group], e) {
				bad("stream %s holds edge %s, which is not a member of group %s", contract.GroupStream(gs.Group), e, gs.Group)
			}
		}
	}
	for _, gw := range out.Gateways {
		for _, gr := range gw.Grants {
			if !contains(gw.Expose, gr.Service) && !contains(gw.Expose, "*") {
				bad("gateway %s: grant on %s, which the edge does not expose", gw.Edge, gr.Service)
			}
			if gr.Caller.Kind == PrincipalEdge {
				if !linked(ix, gw.Edge, gr.Caller.Name) {
					bad("gateway %s: edge %s may call it without a link both sides allow", gw.Edge, gr.Caller.Name)
				}
				continue
			}
			g := byScope[gr.Caller.Name]
			if gr.Caller.Kind == PrincipalUser {
				g = byScope["user:"+gr.Caller.Name]
			}
			if g == nil || !grantsService(ix, g, gw.Edge, gr) {
				bad("gateway %s: %s %s may call %s.%s, which the file does not grant", gw.Edge, gr.Caller.Kind, gr.Caller.Name, gr.Service, gr.Endpoint)
			}
		}
	}
	return errors.Join(errs...)
}

// baseCloudSubjects are the contract's subjects a grant brings besides the
// edges' own (JetStream calls on the TELEMETRY and COMMANDS streams, the
// reader's wildcard, inboxes).
func baseCloudSubjects() map[string]bool {
	out := map[string]bool{}
	add := func(p jwt.Permissions) {
		for _, s := range p.Pub.Allow {
			out[s] = true
		}
		for _, s := range p.Sub.Allow {
			out[s] = true
		}
	}
	add(contract.CloudTelemetryReadPermissions(contract.UserNameTemplate, []string{"plant-x"}))
	add(contract.CloudCommandBasePermissions(contract.UserNameTemplate))
	out[contract.CloudInbox(contract.UserNameTemplate)] = true
	// The reader's own subjects are only base for a grantee reading "*";
	// grantedPub/grantedSub check those.
	for _, s := range contract.CloudTelemetryReadPermissions(contract.UserNameTemplate, []string{"plant-x"}).Pub.Allow {
		if strings.Contains(s, "plant-x") {
			delete(out, s)
		}
	}
	delete(out, contract.CloudTelemetrySubject("plant-x"))
	return out
}

func grantedPub(ix *index, g *Grantee, subj string) bool {
	if readsAll(g) {
		for _, s := range contract.CloudTelemetryReadPermissions(contract.UserNameTemplate, nil).Pub.Allow {
			if s == subj {
				return true
			}
		}
	}
	for _, e := range telemetryEdges(ix, g) {
		for _, s := range contract.CloudTelemetryReadPermissions(contract.UserNameTemplate, []string{e}).Pub.Allow {
			if s == subj && strings.Contains(s, "edges."+e+".") {
				return true
			}
		}
	}
	for _, t := range g.Telemetry {
		if t.Kind != TargetGroup {
			continue
		}
		for _, s := range contract.CloudGroupReadPermissions(contract.UserNameTemplate, t.Name).Pub.Allow {
			if s == subj {
				return true
			}
		}
	}
	for _, sv := range g.Serve {
		for _, s := range contract.CloudServePermissions(sv.Name).Pub.Allow {
			if s == subj {
				return true // the replies of a cloud service
			}
		}
	}
	for _, sr := range g.Services {
		if subj == contract.ServiceList {
			return true
		}
		for _, t := range sr.On {
			edges, all := ix.resolve(t)
			// A group's grant is checked per edge by the gateways only
			// (gateway grants are verified below): the hub lets the
			// service through to any edge.
			if all || t.Kind == TargetGroup {
				edges = []string{"*"}
			}
			for _, e := range edges {
				if subj == contract.CloudServiceCallSubject(e, sr.Service.Name) {
					return true
				}
			}
		}
	}
	for _, c := range g.Commands {
		for _, t := range c.To {
			if t.Kind == TargetGroup {
				var rels []string
				for _, s := range c.Subjects {
					rels = append(rels, s.Name)
				}
				if slices.Contains(contract.CloudGroupCommandPermissions(contract.UserNameTemplate, t.Name, rels).Pub.Allow, subj) {
					return true
				}
				continue
			}
			edges, all := ix.resolve(t)
			if all {
				edges = []string{"*"}
			}
			for _, e := range edges {
				for _, s := range c.Subjects {
					if subj == contract.CloudCommandSubjectFor(e, s.Name) {
						return true
					}
				}
			}
		}
	}
	return false
}

func grantedSub(ix *index, g *Grantee, subj string) bool {
	if readsAll(g) {
		for _, s := range contract.CloudTelemetryReadPermissions(contract.UserNameTemplate, nil).Sub.Allow {
			if s == subj {
				return true
			}
		}
	}
	for _, e := range telemetryEdges(ix, g) {
		if subj == contract.CloudTelemetrySubject(e) {
			return true
		}
	}
	for _, t := range g.Telemetry {
		if t.Kind == TargetGroup && subj == contract.GroupLiveSubject(t.Name) {
			return true
		}
	}
	for _, s := range g.Serve {
		if subj == contract.CloudServeSubject(s.Name) {
			return true
		}
	}
	return false
}

func readsAll(g *Grantee) bool {
	for _, t := range g.Telemetry {
		if t.Kind == TargetAll {
			return true
		}
	}
	return false
}

// telemetryEdges returns the edges g reads telemetry of by name (a group
// is read through its own stream, not its members' subjects).
func telemetryEdges(ix *index, g *Grantee) []string {
	var out []string
	for _, t := range g.Telemetry {
		if t.Kind != TargetEdge {
			continue
		}
		edges, _ := ix.resolve(t)
		out = append(out, edges...)
	}
	return out
}

func grantsService(ix *index, g *Grantee, edge string, gr ServiceGrant) bool {
	for _, sr := range g.Services {
		if sr.Service.Name != gr.Service || sr.Endpoint.Name != gr.Endpoint || sr.Rate != gr.Rate ||
			sr.Burst != gr.Burst || sr.MaxInFlight != gr.MaxInFlight || sr.Audit != gr.Audit {
			continue
		}
		for _, t := range sr.On {
			edges, all := ix.resolve(t)
			if all || contains(edges, edge) {
				return true
			}
		}
	}
	return false
}

func linked(ix *index, a, b string) bool { return a != b && ix.allowsLink(a, b) && ix.allowsLink(b, a) }

func callsOf(ix *index, e string) map[string]bool {
	out := map[string]bool{}
	for _, r := range ix.rulesOf(e) {
		for _, s := range r.Calls {
			out[s.Name] = true
		}
	}
	return out
}

func verifyEdge(ix *index, f Facts, e string, ac *jwt.AccountClaims, bad func(string, ...any)) {
	calls := callsOf(ix, e)
	own := map[string]bool{}
	for _, im := range contract.EdgeImports(e, f.Cloud.Subject) {
		own[string(im.Subject)] = true
	}
	for _, im := range ac.Imports {
		switch {
		case own[string(im.Subject)]:
		case strings.HasPrefix(im.Name, legacyCallImport), strings.HasPrefix(im.Name, legacyPeerImport):
			bad("edge %s imports %q from %s directly, bypassing the gateways: calls go through the hubs' router", e, im.Subject, im.Account)
		default:
			if cur := f.Edges[e]; cur == nil || !hasImport(cur.Imports, im) {
				bad("edge %s has import %q (%s) that neither the contract nor the file names", e, im.Name, im.Subject)
			}
		}
	}
	for _, ex := range ac.Exports {
		if ex.Name == legacyLinkedExport {
			bad("edge %s exports its services to other accounts directly, bypassing its gateway", e)
		}
	}
	allowed := map[string]bool{}
	for _, s := range contract.LeafPermissions().Pub.Allow {
		allowed[s] = true
	}
	cloudOut := contract.ServiceOutSubject(e, "cloud.svc.")
	peerOut := contract.ServiceOutSubject(e, "edges.")
	for _, sc := range ac.SigningKeys {
		us, ok := sc.(*jwt.UserScope)
		if !ok || us.Role != contract.LeafScopeRole {
			continue
		}
		for _, s := range us.Template.Permissions.Pub.Allow {
			switch {
			case allowed[s]:
			case strings.HasPrefix(s, cloudOut) && strings.HasSuffix(s, ".>"):
				svc := strings.TrimSuffix(strings.TrimPrefix(s, cloudOut), ".>")
				if !calls[svc] || s != contract.EdgeOutCloudSubject(e, svc) {
					bad("edge %s's leaf may call cloud service %q, which the file does not grant", e, svc)
				}
			case strings.HasPrefix(s, peerOut) && strings.HasSuffix(s, ".svc.>"):
				b := strings.TrimSuffix(strings.TrimPrefix(s, peerOut), ".svc.>")
				if !linked(ix, e, b) || s != contract.EdgeOutPeerSubject(e, b) {
					bad("edge %s's leaf may call edge %q without a link both sides allow", e, b)
				}
			default:
				bad("edge %s's leaf may publish %q, which neither the contract nor the file names", e, s)
			}
		}
	}
}

func hasImport(ims jwt.Imports, im *jwt.Import) bool {
	for _, x := range ims {
		if x.Name == im.Name && x.Subject == im.Subject && x.Account == im.Account {
			return true
		}
	}
	return false
}

func linkedPeers(ix *index, e string) []string {
	var out []string
	for _, r := range ix.rulesOf(e) {
		for _, t := range r.Links {
			peers, _ := ix.resolve(t)
			for _, b := range peers {
				if linked(ix, e, b) {
					out = append(out, b)
				}
			}
		}
	}
	return out
}
