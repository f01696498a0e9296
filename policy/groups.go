package policy

import (
	"strconv"

	"github.com/tether-fabric/tether/contract"
)

// GroupStream is the telemetry stream of one group a telemetry grant
// names (contract.GroupStream): it sources the TELEMETRY stream filtered
// on Edges, the group's members. The member list lives here, in the
// stream's configuration, so that a grant on a group costs the CLOUD
// account JWT the same whatever the group's size.
type GroupStream struct {
	Group string   `json:"group"`
	Edges []string `json:"edges"`
}

// groupStreams returns the streams of every group a non-admin principal
// reads telemetry of without reading every edge, sorted by group.
func (c *compiler) groupStreams() []GroupStream {
	set := map[string]bool{}
	for _, g := range c.grantees() {
		if g.Admin || readsAll(g) {
			continue
		}
		for _, t := range g.Telemetry {
			if t.Kind == TargetGroup {
				set[t.Name] = true
			}
		}
	}
	var out []GroupStream
	for _, name := range sortedKeys(set) {
		out = append(out, GroupStream{Group: name, Edges: append([]string{}, c.ix.members[name]...)})
	}
	return out
}

// grantees returns the file's roles, then its users with grants of their
// own (not holding a role).
func (c *compiler) grantees() []*Grantee {
	var out []*Grantee
	for _, g := range append(append([]*Grantee{}, c.p.Roles...), c.p.Users...) {
		if g.Role.Name == "" {
			out = append(out, g)
		}
	}
	return out
}

// DiffGroupStreams lists the changes between two sets of group telemetry
// streams: streams made or removed and members joining or leaving.
func DiffGroupStreams(old, new []GroupStream) []Change {
	om, nm := map[string]GroupStream{}, map[string]GroupStream{}
	for _, g := range old {
		om[g.Group] = g
	}
	for _, g := range new {
		nm[g.Group] = g
	}
	var ch []Change
	for _, name := range sortedKeys(union(om, nm)) {
		o, inOld := om[name]
		n, inNew := nm[name]
		acc := "CLOUD stream " + contract.GroupStream(name)
		switch {
		case !inOld:
			ch = append(ch, Change{Account: acc, Action: "add", What: "the telemetry of group " + name + " (" + plural(len(n.Edges), "edge") + ") for the roles and users reading it"})
			for _, e := range n.Edges {
				ch = append(ch, Change{Account: acc, Action: "add", What: "the telemetry of edge " + e + " (what TELEMETRY holds of it, then new)"})
			}
			continue
		case !inNew:
			ch = append(ch, Change{Account: acc, Action: "remove", What: "the telemetry of group " + name + ": no grant reads it any more"})
			continue
		}
		adds, removes := diffLines(o.Edges, n.Edges)
		for _, e := range adds {
			ch = append(ch, Change{Account: acc, Action: "add", What: "the telemetry of edge " + e + " (from now on)"})
		}
		for _, e := range removes {
			ch = append(ch, Change{Account: acc, Action: "remove", What: "the telemetry of edge " + e + " (what it holds of it is purged)"})
		}
	}
	return ch
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
