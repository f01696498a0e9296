package accounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
)

// Edge limits on the hub side, per edge account.
const (
	// edgeLeafConns allows a replacement leaf connection while the hubs have
	// not yet noticed that the previous one died.
	edgeLeafConns = 2
	edgeMaxConns  = 8
	// edgeMaxPayload bounds one message from or to an edge (1 MiB, the
	// nats-server default).
	edgeMaxPayload = 1 << 20
	// LeafRole is the role of the scoped signing key that signs an edge's
	// leaf users; its template holds the leaf permissions.
	LeafRole = "leaf"
)

// Edge is an edge as the store knows it.
type Edge struct {
	Name    string
	Account Account
}

// CredsFile is the creds file of the edge's leaf user.
func (s *Store) edgeCredsFile(name string) string { return s.path("edges", name, "leaf.creds") }

// edgeUserFile holds the JWT of the edge's current leaf user (public): the
// user that a rotation replaces and revokes.
func (s *Store) edgeUserFile(name string) string { return s.path("edges", name, "leaf.jwt") }

func (s *Store) leafSignerFile(name string) string {
	return s.path("accounts", contract.EdgeAccountName(name), "leaf-signing.nk")
}

// leafScope is the scoped signing key of an edge's leaf users: a user JWT
// signed by it carries no permissions of its own; the hubs apply the
// template, so whoever holds this key (an enrollment service, say) can mint
// leaf users and nothing wider.
func leafScope(key string) *jwt.UserScope {
	sc := jwt.NewUserScope()
	sc.Key = key
	sc.Role = LeafRole
	sc.Description = "edge leaf users: leaf permissions from contract.LeafPermissions"
	sc.Template.Permissions = contract.LeafPermissions()
	sc.Template.AllowedConnectionTypes = contract.LeafConnectionTypes()
	return sc
}

// EdgeClaims sets on ac what this version of Tether wants of the account
// of edge: its imports of its own slices of the CLOUD account cloudPub and
// (when the store has one, svcPub != "") of the SVC account, the scoped
// leaf signing key leafSigner (whose template carries the leaf
// user's permissions), its limits and its tag. It is the one description
// of an edge account: AddEdge, Upgrade and the policy's apply use it.
func EdgeClaims(ac *jwt.AccountClaims, edge, cloudPub, svcPub, leafSigner string) {
	ac.Imports = edgeImports(edge, cloudPub, svcPub)
	if cur, ok := ac.SigningKeys.GetScope(leafSigner); !ok || cur == nil || !sameJSON(cur, leafScope(leafSigner)) {
		ac.SigningKeys.AddScopedSigner(leafScope(leafSigner))
	}
	ac.Limits.LeafNodeConn = edgeLeafConns
	ac.Limits.Conn = edgeMaxConns
	ac.Limits.Payload = edgeMaxPayload
	// No JetStream limits: edge accounts have no JetStream on the hubs;
	// their data lives in CLOUD streams under CLOUD's limits.
	ac.Tags.Add("edge:" + edge)
}

// AddEdge creates the account EDGE_<name> with its imports and limits and a
// leaf user for it. Nothing is written when name is invalid or taken.
func (s *Store) AddEdge(name string) (*Edge, error) { return s.addEdge(name, true) }

// AddEdgeForEnrollment creates the account EDGE_<name> like AddEdge but no
// leaf user: the edge's key will be born on the device, which enrolls with
// a token (NewEnrollToken). The store never holds the device's seed.
func (s *Store) AddEdgeForEnrollment(name string) (*Edge, error) { return s.addEdge(name, false) }

func (s *Store) addEdge(name string, withCreds bool) (*Edge, error) {
	if err := contract.ValidateEdgeName(name); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.path("edges", name)); err == nil {
		return nil, fmt.Errorf("add edge %s: %w", name, ErrEdgeExists)
	}
	cloud, err := s.Account(contract.CloudAccountName)
	if err != nil {
		return nil, fmt.Errorf("add edge %s: %w", name, err)
	}
	opSigner, err := s.readKey("operator", "signing.nk")
	if err != nil {
		return nil, fmt.Errorf("add edge %s: %w", name, err)
	}
	leafKP, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("add edge %s: %w", name, err)
	}
	leafPub, _ := leafKP.PublicKey()
	accName := contract.EdgeAccountName(name)
	_, err = s.createAccount(accName, opSigner, func(ac *jwt.AccountClaims) {
		EdgeClaims(ac, name, cloud.Pub, s.serviceAccountPub(), leafPub)
	})
	if err == nil {
		err = writeSeed(s.leafSignerFile(name), leafKP)
	}
	if err != nil {
		os.RemoveAll(s.path("accounts", accName))
		return nil, fmt.Errorf("add edge %s: %w", name, err)
	}
	if err := os.MkdirAll(s.path("edges", name), dirMode); err != nil {
		os.RemoveAll(s.path("accounts", accName))
		return nil, fmt.Errorf("add edge %s: %w", name, err)
	}
	if !withCreds {
		return s.Edge(name)
	}
	creds, err := s.NewLeafCreds(name)
	if err == nil {
		err = securefile.Write(s.edgeCredsFile(name), creds, secretMode)
	}
	if err != nil {
		os.RemoveAll(s.path("accounts", accName))
		os.RemoveAll(s.path("edges", name))
		return nil, fmt.Errorf("add edge %s: %w", name, err)
	}
	return s.Edge(name)
}

// Edge returns the named edge.
func (s *Store) Edge(name string) (*Edge, error) {
	if err := contract.ValidateEdgeName(name); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.path("edges", name)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("edge %s: %w", name, ErrNoEdge)
	}
	acc, err := s.Account(contract.EdgeAccountName(name))
	if err != nil {
		return nil, fmt.Errorf("edge %s: %w", name, err)
	}
	return &Edge{Name: name, Account: acc}, nil
}

// Edges returns the names of all edges, sorted.
func (s *Store) Edges() ([]string, error) {
	entries, err := os.ReadDir(s.path("edges"))
	if err != nil {
		return nil, fmt.Errorf("list edges: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Bundle returns everything the named edge needs to join the fabric.
func (s *Store) Bundle(name string) (*sitefile.Bundle, error) {
	e, err := s.Edge(name)
	if err != nil {
		return nil, err
	}
	if at, revoked := s.Revoked(name); revoked {
		return nil, fmt.Errorf("bundle %s: %w (since %s)", name, ErrEdgeRevoked, at.Format(time.RFC3339))
	}
	creds, err := s.storedLeafCreds(name)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, err)
	}
	ca, err := os.ReadFile(s.CAFile())
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, err)
	}
	b := &sitefile.Bundle{
		Version:       sitefile.BundleVersion,
		Edge:          name,
		Account:       e.Account.Pub,
		Domain:        contract.EdgeDomain(name),
		HubURLs:       s.fabric.HubURLs,
		WebsocketURLs: s.fabric.WebsocketURLs,
		CA:            string(ca),
		Creds:         string(creds),
	}
	return b, b.Validate()
}

// IssueLeafUser signs a leaf user JWT for userPub (a user public key whose
// seed may never leave the edge) with the edge's scoped leaf signing key,
// records it as the edge's current leaf user and returns it. A zero
// expires means it does not expire.
func (s *Store) IssueLeafUser(edge, userPub string, expires time.Time) (string, error) {
	ujwt, err := s.SignLeafUser(edge, userPub, expires)
	if err != nil {
		return "", err
	}
	return ujwt, s.RecordLeafUser(edge, ujwt)
}

// RecordLeafUser records ujwt as the edge's current leaf user.
func (s *Store) RecordLeafUser(edge, ujwt string) error {
	return securefile.Write(s.edgeUserFile(edge), []byte(ujwt), publicMode)
}

// SignLeafUser is IssueLeafUser without recording the user as current.
func (s *Store) SignLeafUser(edge, userPub string, expires time.Time) (string, error) {
	e, err := s.Edge(edge)
	if err != nil {
		return "", err
	}
	if !nkeys.IsValidPublicUserKey(userPub) {
		return "", fmt.Errorf("issue leaf user for %s: %q is not a user public key (U...)", edge, userPub)
	}
	signer, err := s.readKey("accounts", e.Account.Name, "leaf-signing.nk")
	if err != nil {
		return "", fmt.Errorf("issue leaf user for %s: %w", edge, err)
	}
	uc := jwt.NewUserClaims(userPub)
	uc.Name = edge + "-leaf"
	uc.IssuerAccount = e.Account.Pub
	// Scoped: permissions and connection types come from the key's
	// template; a scoped user must carry none of its own.
	uc.UserPermissionLimits = jwt.UserPermissionLimits{}
	if !expires.IsZero() {
		uc.Expires = expires.Unix()
	}
	ujwt, err := uc.Encode(signer)
	if err != nil {
		return "", fmt.Errorf("issue leaf user for %s: %w", edge, err)
	}
	return ujwt, nil
}

// NewLeafCreds creates a leaf user key pair for the edge in the store and
// returns the creds file content (used when the bundle is made by the
// operator; enrollment has the key born on the device instead).
func (s *Store) NewLeafCreds(edge string) ([]byte, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	ujwt, err := s.IssueLeafUser(edge, upub, time.Time{})
	if err != nil {
		return nil, err
	}
	return jwt.FormatUserConfig(ujwt, useed)
}

// LeafUser returns the public key of the edge's current leaf user.
func (s *Store) LeafUser(edge string) (string, error) {
	data, err := os.ReadFile(s.edgeUserFile(edge))
	if errors.Is(err, fs.ErrNotExist) {
		// Stores made before leaf.jwt was recorded: the creds hold it.
		if creds, cerr := securefile.Read(s.edgeCredsFile(edge)); cerr == nil {
			var ujwt string
			ujwt, err = jwt.ParseDecoratedJWT(creds)
			data = []byte(ujwt)
		}
	}
	if err != nil {
		return "", fmt.Errorf("leaf user of %s: %w", edge, err)
	}
	uc, err := jwt.DecodeUserClaims(strings.TrimSpace(string(data)))
	if err != nil {
		return "", fmt.Errorf("leaf user of %s: %s: %w", edge, s.edgeUserFile(edge), err)
	}
	return uc.Subject, nil
}

// ForgetLeafCreds removes the store's copy of the edge's leaf creds (after
// a rotation the key lives on the device only).
func (s *Store) ForgetLeafCreds(edge string) error {
	return os.Remove(s.edgeCredsFile(edge))
}
