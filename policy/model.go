package policy

// Pos is a position in the policy file (1-based; zero when unknown).
type Pos struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

// Name is a name written in the file, with where it was written.
type Name struct {
	Name string
	Pos  Pos
}

// Policy is a parsed policy file. Its slices are in file order; the
// compiler sorts what it emits.
type Policy struct {
	// Version is the format version; 1 is the only one.
	Version int
	Edges   []*Edge
	Groups  []*Group
	// Roles are named cloud roles: a cloud user holds one when its JWT is
	// signed by the role's scoped signing key ('tether user add --role').
	Roles []*Grantee
	// Users are cloud users named in the file with grants of their own
	// (each gets its own scoped signing key).
	Users []*Grantee
}

// Rules are what an edge entry or a group says about its edges.
type Rules struct {
	// Expose lists the edge services (micro service names) reachable from
	// outside the edge.
	Expose []Name
	// Calls lists the cloud services the edge's clients may call.
	Calls []Name
	// Links lists the edges or groups ("group:NAME") this side allows a link
	// with; a link exists only when both sides allow it.
	Links []Target
}

// Edge is an edge entry: its labels and its own rules.
type Edge struct {
	Name   string
	Pos    Pos
	Labels map[string]string
	Rules
}

// Group selects edges by labels: every MatchLabels pair and every Where
// expression must hold.
type Group struct {
	Name        string
	Pos         Pos
	MatchLabels map[string]string
	Where       []Expr
	Rules
}

// Expr is a label expression: "key in (a, b)", "key notin (a)",
// "key = v", "key != v", "key" (has the label) or "!key" (has not).
type Expr struct {
	Key    string
	Op     string // in, notin, exists, notexists
	Values []string
	Pos    Pos
}

// Target kinds.
const (
	TargetAll   = "all"
	TargetEdge  = "edge"
	TargetGroup = "group"
)

// Target names edges a grant applies to: "*" (every edge, including edges
// not in the file), an edge name, or "group:NAME".
type Target struct {
	Kind string
	Name string
	Pos  Pos
}

func (t Target) String() string {
	switch t.Kind {
	case TargetAll:
		return "*"
	case TargetGroup:
		return "group:" + t.Name
	}
	return t.Name
}

// Grantee is a cloud role or user of the file and its grants.
type Grantee struct {
	Kind        string // PrincipalRole or PrincipalUser
	Name        string
	Pos         Pos
	Description string
	// Admin grants anything inside the CLOUD account (today's admin role).
	Admin bool
	// Telemetry lists the edges whose telemetry the principal may read.
	Telemetry []Target
	Commands  []CommandGrant
	Services  []ServiceRule
	// Serve lists the cloud services the principal may answer edges'
	// calls for.
	Serve []Name
	// Role (users only) makes the user hold a role instead of grants of
	// its own: 'tether user add NAME' signs it with the role's key.
	Role Name
}

// CommandGrant lets a principal send the Subjects (relative to the edge's
// cmd., e.g. "reboot" or "config.>") to the To edges.
type CommandGrant struct {
	To       []Target
	Subjects []Name
	Pos      Pos
}

// ServiceRule lets a principal call Service's Endpoint ("*": every
// endpoint) on the On edges, within limits.
type ServiceRule struct {
	Service     Name
	Endpoint    Name
	On          []Target
	Rate        float64 // calls per second; 0 unlimited
	RateText    string
	Burst       int
	MaxInFlight int
	Audit       bool
	Pos         Pos
}

// scopeName is the name of a principal's scoped signing key in the CLOUD
// account: the role name for a role, "user:NAME" for a user.
func (p *Grantee) scopeName() string {
	if p.Kind == PrincipalUser {
		return "user:" + p.Name
	}
	return p.Name
}

// ScopeNames returns the names of the scoped signing keys the policy needs
// in the CLOUD account, in file order: one per role, and one per user
// ("user:NAME").
func (p *Policy) ScopeNames() []string {
	var out []string
	for _, r := range p.Roles {
		out = append(out, r.scopeName())
	}
	for _, u := range p.Users {
		if u.Role.Name != "" {
			continue
		}
		out = append(out, u.scopeName())
	}
	return out
}
