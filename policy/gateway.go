package policy

// Gateway is what one edge's service gateway enforces, compiled from the
// policy: the services the edge exposes and who may call them, with the
// limits of each grant. The services capability reads it; the policy
// compiler writes it. Its JSON form travels to the edge, so fields are only
// ever added.
type Gateway struct {
	// Edge is the edge this configuration is for.
	Edge string `json:"edge"`
	// Expose lists the services (by micro service name) the edge exposes;
	// a service not listed is not reachable from outside the edge.
	Expose []string `json:"expose,omitempty"`
	// Grants say who may call which exposed service endpoint.
	Grants []ServiceGrant `json:"grants,omitempty"`
}

// Principal kinds a grant can name.
const (
	// PrincipalUser is a cloud user by name (as 'tether user add' made it).
	PrincipalUser = "user"
	// PrincipalRole is a named cloud role; a cloud user holds it when its
	// JWT is signed by the role's scoped signing key in the CLOUD account.
	PrincipalRole = "role"
	// PrincipalEdge is another edge (an edge-to-edge link both edges allow).
	PrincipalEdge = "edge"
)

// Principal names a caller.
type Principal struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Key is how the gateway recognises the caller in the server-stamped
	// Nats-Request-Info header of a call that crossed a service import
	// with share: true: for a role or user, the public key of its scoped
	// signing key in the CLOUD account (the caller's issuer_key); for an
	// edge, its account's public key (the caller's account). Empty when
	// the compiler was not given the key.
	Key string `json:"key,omitempty"`
}

// ServiceGrant lets Caller call Service's Endpoint ("*" for every endpoint)
// on the edge, within the limits.
type ServiceGrant struct {
	Caller   Principal `json:"caller"`
	Service  string    `json:"service"`
	Endpoint string    `json:"endpoint"`
	// Rate is the calls per second allowed to this caller on this grant
	// (0: unlimited); Burst is the token bucket's size (0: max(1, Rate)).
	Rate  float64 `json:"rate,omitempty"`
	Burst int     `json:"burst,omitempty"`
	// MaxInFlight bounds the caller's calls waiting for an answer on this
	// grant (0: unlimited).
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// Audit is true when every call on this grant is recorded.
	Audit bool `json:"audit"`
}
