package accounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/tether-fabric/tether/internal/securefile"
	"github.com/tether-fabric/tether/policy"
)

// Edge limits on the hub side, per edge account.
const (
	// edgeLeafConns allows a replacement leaf connection while the hubs have
	// not yet noticed that the previous one died.
	edgeLeafConns = 2
	edgeMaxConns  = 8
)

// Edge is an edge as the store knows it.
type Edge struct {
	Name    string
	Account Account
}

// CredsFile is the creds file of the edge's leaf user.
func (s *Store) edgeCredsFile(name string) string { return s.path("edges", name, "leaf.creds") }

// AddEdge creates the account EDGE_<name> with its imports and limits and a
// leaf user for it. Nothing is written when name is invalid or taken.
func (s *Store) AddEdge(name string) (*Edge, error) {
	if err := ValidateEdgeName(name); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.path("edges", name)); err == nil {
		return nil, fmt.Errorf("add edge %s: %w", name, ErrEdgeExists)
	}
	cloud, err := s.Account(CloudAccountName)
	if err != nil {
		return nil, fmt.Errorf("add edge %s: %w", name, err)
	}
	opSigner, err := s.readKey("operator", "signing.nk")
	if err != nil {
		return nil, fmt.Errorf("add edge %s: %w", name, err)
	}
	accName := EdgeAccountName(name)
	_, err = s.createAccount(accName, opSigner, func(ac *jwt.AccountClaims) {
		ac.Imports = policy.EdgeImports(name, cloud.Pub)
		ac.Limits.LeafNodeConn = edgeLeafConns
		ac.Limits.Conn = edgeMaxConns
		ac.Tags.Add("edge:" + name)
	})
	if err != nil {
		os.RemoveAll(s.path("accounts", accName))
		return nil, fmt.Errorf("add edge %s: %w", name, err)
	}
	if err := os.MkdirAll(s.path("edges", name), dirMode); err != nil {
		os.RemoveAll(s.path("accounts", accName))
		return nil, fmt.Errorf("add edge %s: %w", name, err)
	}
	creds, err := s.IssueUser(accName, name+"-leaf", policy.LeafPermissions(), policy.LeafConnectionTypes(), time.Time{})
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
	if err := ValidateEdgeName(name); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.path("edges", name)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("edge %s: %w", name, ErrNoEdge)
	}
	acc, err := s.Account(EdgeAccountName(name))
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
func (s *Store) Bundle(name string) (*Bundle, error) {
	e, err := s.Edge(name)
	if err != nil {
		return nil, err
	}
	if at, revoked := s.Revoked(name); revoked {
		return nil, fmt.Errorf("bundle %s: %w (since %s)", name, ErrEdgeRevoked, at.Format(time.RFC3339))
	}
	creds, err := securefile.Read(s.edgeCredsFile(name))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, err)
	}
	ca, err := os.ReadFile(s.CAFile())
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, err)
	}
	b := &Bundle{
		Version:       BundleVersion,
		Edge:          name,
		Account:       e.Account.Pub,
		Domain:        EdgeDomain(name),
		HubURLs:       s.fabric.HubURLs,
		WebsocketURLs: s.fabric.WebsocketURLs,
		CA:            string(ca),
		Creds:         string(creds),
	}
	return b, b.Validate()
}
