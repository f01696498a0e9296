package policy

import (
	"strconv"
	"strings"

	"github.com/tether-fabric/tether/contract"
)

// GroupStream is what the cloud keeps for one group a grant names: its
// telemetry stream (contract.GroupStream, sourcing TELEMETRY filtered on
// Edges) when a telemetry grant names it, its command stream
// (contract.GroupCommandStream, taking commands for Edges only) when a
// command grant does. The member list lives here, in the streams'
// configuration, so that a grant on a group costs the CLOUD account JWT
// the same whatever the group's size.
type GroupStream struct {
	Group     string   `json:"group"`
	Edges     []string `json:"edges"`
	Telemetry bool     `json:"telemetry,omitempty"`
	Commands  bool     `json:"commands,omitempty"`
}

// groupStreams returns the streams of every group a non-admin principal
// reads telemetry of (without reading every edge) or sends commands
// through, sorted by group.
func (c *compiler) groupStreams() []GroupStream {
	tel, cmd := map[string]bool{}, map[string]bool{}
	for _, g := range c.grantees() {
		if g.Admin {
			continue
		}
		for _, t := range g.Telemetry {
			if t.Kind == TargetGroup && !readsAll(g) {
				tel[t.Name] = true
			}
		}
		for _, cg := range g.Commands {
			for _, t := range cg.To {
				if t.Kind == TargetGroup {
					cmd[t.Name] = true
				}
			}
		}
	}
	var out []GroupStream
	for _, name := range sortedKeys(union(tel, cmd)) {
		out = append(out, GroupStream{Group: name, Edges: append([]string{}, c.ix.members[name]...), Telemetry: tel[name], Commands: cmd[name]})
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

// DiffGroupStreams lists the changes between two sets of group streams:
// streams made or removed and members joining or leaving.
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
		o, n := om[name], nm[name]
		for _, k := range []struct {
			stream, what, joined string
			had, has             bool
		}{
			{contract.GroupStream(name), "the telemetry of", "(what TELEMETRY holds of it, then new)", o.Telemetry, n.Telemetry},
			{contract.GroupCommandStream(name), "commands for", "", o.Commands, n.Commands},
		} {
			acc := "CLOUD stream " + k.stream
			switch {
			case !k.had && !k.has:
				continue
			case !k.had:
				ch = append(ch, Change{Account: acc, Action: "add", What: k.what + " group " + name + " (" + plural(len(n.Edges), "edge") + ") for the roles and users granted it"})
				for _, e := range n.Edges {
					ch = append(ch, Change{Account: acc, Action: "add", What: strings.TrimSpace(k.what + " edge " + e + " " + k.joined)})
				}
				continue
			case !k.has:
				ch = append(ch, Change{Account: acc, Action: "remove", What: k.what + " group " + name + ": no grant names it any more"})
				continue
			}
			adds, removes := diffLines(o.Edges, n.Edges)
			for _, e := range adds {
				ch = append(ch, Change{Account: acc, Action: "add", What: k.what + " edge " + e + " (from now on)"})
			}
			for _, e := range removes {
				ch = append(ch, Change{Account: acc, Action: "remove", What: k.what + " edge " + e + " (what it holds of it is purged)"})
			}
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
