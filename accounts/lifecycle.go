package accounts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
)

// ControlCreds issues a short-lived control user in the edge's account
// (contract.ControlPermissions: it may send control requests to the edge over
// its link and read the answers) and returns its creds. It lives in memory
// only; it expires after ttl.
func (s *Store) ControlCreds(edge string, ttl time.Duration) ([]byte, error) {
	if _, err := s.Edge(edge); err != nil {
		return nil, err
	}
	return s.IssueUser(contract.EdgeAccountName(edge), edge+"-control", contract.ControlPermissions(),
		jwt.StringList{jwt.ConnectionTypeStandard}, time.Now().Add(ttl))
}

// RevokeUser revokes one user key of the edge's account (JWTs of that key
// issued up to now) and re-signs the account JWT; it must still be pushed.
func (s *Store) RevokeUser(edge, userPub string) error {
	e, err := s.Edge(edge)
	if err != nil {
		return err
	}
	ac, err := jwt.DecodeAccountClaims(e.Account.JWT)
	if err != nil {
		return fmt.Errorf("revoke user of %s: %w", edge, err)
	}
	signer, err := s.readKey("operator", "signing.nk")
	if err != nil {
		return fmt.Errorf("revoke user of %s: %w", edge, err)
	}
	// Second-granular, covering JWTs issued at or before: the next second
	// also covers one issued this very second.
	ac.RevokeAt(userPub, time.Now().Truncate(time.Second).Add(time.Second))
	ajwt, err := ac.Encode(signer)
	if err != nil {
		return fmt.Errorf("revoke user of %s: %w", edge, err)
	}
	return securefile.Write(s.path("accounts", e.Account.Name, "account.jwt"), []byte(ajwt), publicMode)
}

// cloudUserFile is where 'tether user add' writes a cloud user's creds.
func (s *Store) cloudUserFile(name string) string { return s.path("users", name+".creds") }

// ErrUserExists reports a cloud user name that is taken.
var ErrUserExists = errors.New("user already exists")

// AddCloudUser creates a user of the CLOUD account with the role's
// permissions, writes its creds to
// users/<name>.creds (0600) and returns that path. A role of the applied
// policy (or a user the policy names, with role empty) is signed with the
// policy's scoped signing key; otherwise the built-in roles
// (contract.CloudRolePermissions) apply. A zero expires means it
// does not expire. Nothing is written on error.
func (s *Store) AddCloudUser(name, role string, edges []string, expires time.Time) (string, error) {
	if err := contract.ValidateUserName(name); err != nil {
		return "", err
	}
	if name == "sys" || name == "cloud" {
		return "", fmt.Errorf("user %s: %w (reserved name)", name, ErrUserExists)
	}
	for _, e := range edges {
		if _, err := s.Edge(e); err != nil {
			return "", fmt.Errorf("user %s: --edge: %w", name, err)
		}
	}
	path := s.cloudUserFile(name)
	if _, err := os.Stat(path); err == nil {
		return "", fmt.Errorf("user %s: %w (%s)", name, ErrUserExists, path)
	}
	var creds []byte
	// A role (or user) of the applied policy: signed with its scoped key,
	// so a policy change reaches the user live. Narrowing with --edge is
	// the built-in commander's.
	signer, _, scoped, err := s.policyScopeKey(name, role)
	if err != nil {
		return "", fmt.Errorf("user %s: %w", name, err)
	}
	if scoped && len(edges) == 0 {
		creds, err = s.issueScopedCloudUser(name, signer, expires)
	} else if role == "" {
		roles, _ := s.PolicyRoles()
		for _, r := range contract.Roles() {
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
		return "", fmt.Errorf("user %s: the applied policy names no such user: give --role, one of %s", name,
			strings.Join(roles, ", "))
	} else {
		var perms jwt.Permissions
		if perms, err = contract.CloudRolePermissions(name, role, edges); err != nil {
			return "", fmt.Errorf("user %s: %w", name, err)
		}
		creds, err = s.IssueUser(contract.CloudAccountName, name, perms, nil, expires)
	}
	if err != nil {
		return "", fmt.Errorf("user %s: %w", name, err)
	}
	if err := securefile.Write(path, creds, secretMode); err != nil {
		return "", err
	}
	return path, nil
}

// CloudUser is a cloud user as 'tether user ls' shows it.
type CloudUser struct {
	Name    string    `json:"name"`
	Pub     string    `json:"user"`
	Creds   string    `json:"creds"`
	Expires time.Time `json:"expires,omitzero"`
}

// CloudUsers lists the cloud users written by AddCloudUser (and the
// default cloud user), sorted by name.
func (s *Store) CloudUsers() ([]CloudUser, error) {
	matches, err := filepath.Glob(s.path("users", "*.creds"))
	if err != nil {
		return nil, err
	}
	var out []CloudUser
	for _, m := range matches {
		name := filepath.Base(m)
		name = name[:len(name)-len(".creds")]
		if name == "sys" {
			continue
		}
		data, err := securefile.Read(m)
		if err != nil {
			return nil, err
		}
		ujwt, err := jwt.ParseDecoratedJWT(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		uc, err := jwt.DecodeUserClaims(ujwt)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		u := CloudUser{Name: name, Pub: uc.Subject, Creds: m}
		if uc.Expires > 0 {
			u.Expires = time.Unix(uc.Expires, 0)
		}
		out = append(out, u)
	}
	return out, nil
}

// SignAccountDeletion returns the request that asks the hubs' resolvers to
// delete the account pub ($SYS.REQ.CLAIMS.DELETE), signed by the operator
// signing key (fleet.DeleteAccount sends it).
func (s *Store) SignAccountDeletion(pub string) (string, error) {
	signer, err := s.readKey("operator", "signing.nk")
	if err != nil {
		return "", err
	}
	spub, _ := signer.PublicKey()
	if !nkeys.IsValidPublicAccountKey(pub) {
		return "", fmt.Errorf("delete account %q: not an account public key", pub)
	}
	gc := jwt.NewGenericClaims(spub)
	gc.Data["accounts"] = []any{pub}
	req, err := gc.Encode(signer)
	if err != nil {
		return "", fmt.Errorf("delete account %s: %w", pub, err)
	}
	return req, nil
}

// RemoveEdge deletes the edge from the store: its account directory (keys
// and JWT) and its edge directory. The hubs must be told first (revoke,
// push, DeleteAccountClaims); a removed edge's name can be reused.
func (s *Store) RemoveEdge(name string) error {
	if _, err := s.Edge(name); err != nil {
		return err
	}
	// Move aside first, so a failure leaves either the whole edge or none.
	trash, err := os.MkdirTemp(s.dir, ".rm-"+name+"-*")
	if err != nil {
		return fmt.Errorf("remove edge %s: %w", name, err)
	}
	defer os.RemoveAll(trash)
	if err := os.Rename(s.path("edges", name), filepath.Join(trash, "edge")); err != nil {
		return fmt.Errorf("remove edge %s: %w", name, err)
	}
	if err := os.Rename(s.path("accounts", contract.EdgeAccountName(name)), filepath.Join(trash, "account")); err != nil {
		_ = os.Rename(filepath.Join(trash, "edge"), s.path("edges", name))
		return fmt.Errorf("remove edge %s: %w", name, err)
	}
	return nil
}
