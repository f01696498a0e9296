package accounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
	"github.com/tether-fabric/tether/internal/sitefile"
)

// Enrollment: the operator makes a one-time token for an edge; the device
// generates its own user key pair, proves it holds it, and gets its leaf
// user JWT from the hubs' registrar (see hub/registrar.go, leaf/enroll.go).
const (
	// enrollUserSuffix names an edge's enroll users: <edge>-enroll.
	enrollUserSuffix = "-enroll"
)

// Errors of enrollment.
var (
	// ErrKeyOnDevice reports an edge whose leaf user's seed lives only on
	// the device (it enrolled with a token), so no bundle can be made.
	ErrKeyOnDevice = errors.New("keys live on the device (the edge enrolled with a token or its key was rotated); to replace the device, make a token with 'tether edge token'")
)

// NewEnrollToken creates an enroll user in the edge's account, signed by
// the account's signing key, valid for ttl (0: contract.DefaultEnrollTTL), and
// returns a token holding it. The token is single use: the registrar
// remembers every enroll user that obtained a leaf user.
func (s *Store) NewEnrollToken(edge string, ttl time.Duration) (*sitefile.EnrollToken, error) {
	if ttl == 0 {
		ttl = contract.DefaultEnrollTTL
	}
	if ttl < 0 || ttl > contract.MaxEnrollTTL {
		return nil, fmt.Errorf("enrollment token for %s: ttl %s: want more than 0 and at most %s", edge, ttl, contract.MaxEnrollTTL)
	}
	e, err := s.Edge(edge)
	if err != nil {
		return nil, err
	}
	if at, revoked := s.Revoked(edge); revoked {
		return nil, fmt.Errorf("enrollment token for %s: %w (since %s)", edge, ErrEdgeRevoked, at.Format(time.RFC3339))
	}
	if err := canEnroll(e); err != nil {
		return nil, fmt.Errorf("enrollment token for %s: %w", edge, err)
	}
	ca, err := os.ReadFile(s.CAFile())
	if err != nil {
		return nil, fmt.Errorf("enrollment token for %s: %w", edge, err)
	}
	expires := time.Now().Add(ttl).Truncate(time.Second)
	creds, err := s.IssueUser(e.Account.Name, edge+enrollUserSuffix, contract.EnrollPermissions(), contract.LeafConnectionTypes(), expires)
	if err != nil {
		return nil, fmt.Errorf("enrollment token for %s: %w", edge, err)
	}
	ujwt, seed, err := sitefile.SplitCreds(creds)
	if err != nil {
		return nil, err
	}
	t := &sitefile.EnrollToken{
		Version:       contract.EnrollVersion,
		Edge:          edge,
		Account:       e.Account.Pub,
		Domain:        contract.EdgeDomain(edge),
		HubURLs:       s.fabric.HubURLs,
		WebsocketURLs: s.fabric.WebsocketURLs,
		CA:            string(ca),
		JWT:           ujwt,
		Seed:          string(seed),
		Expires:       expires,
	}
	return t, t.Validate()
}

// canEnroll checks that the edge's account imports its enrollment subject
// (accounts made before enrollment existed do not).
func canEnroll(e *Edge) error {
	ac, err := jwt.DecodeAccountClaims(e.Account.JWT)
	if err != nil {
		return err
	}
	for _, im := range ac.Imports {
		if string(im.Subject) == contract.CloudEnrollSubject(e.Name) {
			return nil
		}
	}
	return fmt.Errorf("account %s has no %s import (it predates enrollment); a token for it could never be answered", e.Account.Name, contract.EnrollSubject)
}

// storedLeafCreds returns the edge's leaf creds held by the store; an edge
// whose current leaf user was enrolled from a device has none.
func (s *Store) storedLeafCreds(edge string) ([]byte, error) {
	creds, err := securefile.Read(s.edgeCredsFile(edge))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrKeyOnDevice
	}
	if err != nil {
		return nil, err
	}
	current, err := s.LeafUser(edge)
	if err != nil {
		return nil, err
	}
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.edgeCredsFile(edge), err)
	}
	if pub, _ := kp.PublicKey(); pub != current {
		return nil, ErrKeyOnDevice
	}
	return creds, nil
}
