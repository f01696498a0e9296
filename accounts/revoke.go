package accounts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/tether-fabric/tether/internal/securefile"
)

// ErrEdgeRevoked reports an operation on a revoked edge.
var ErrEdgeRevoked = errors.New("edge is revoked")

func (s *Store) revokedMarker(name string) string { return s.path("edges", name, "revoked") }

// Revoked reports whether the edge was revoked, and when.
func (s *Store) Revoked(name string) (time.Time, bool) {
	data, err := os.ReadFile(s.revokedMarker(name))
	if err != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(data))
	return t, err == nil
}

// RevokeEdge revokes every user of the edge's account issued up to now
// (its leaf user included): the account JWT gets a revocation for all user
// keys at the current time, re-signed by the operator signing key. The new
// JWT must still be pushed to the hubs (PushAccount), which then close the
// edge's live connections and refuse its reconnects. It returns the
// revocation time.
func (s *Store) RevokeEdge(name string) (time.Time, error) {
	e, err := s.Edge(name)
	if err != nil {
		return time.Time{}, err
	}
	ac, err := jwt.DecodeAccountClaims(e.Account.JWT)
	if err != nil {
		return time.Time{}, fmt.Errorf("revoke edge %s: %w", name, err)
	}
	signer, err := s.readKey("operator", "signing.nk")
	if err != nil {
		return time.Time{}, fmt.Errorf("revoke edge %s: %w", name, err)
	}
	// Revocations are second-granular and cover JWTs issued at or before
	// the time; the next second keeps a user issued this very second out.
	now := time.Now().Truncate(time.Second).Add(time.Second)
	ac.RevokeAt(jwt.All, now)
	ajwt, err := ac.Encode(signer)
	if err != nil {
		return time.Time{}, fmt.Errorf("revoke edge %s: %w", name, err)
	}
	if err := securefile.Write(filepath.Join(s.path("accounts", e.Account.Name), "account.jwt"), []byte(ajwt), publicMode); err != nil {
		return time.Time{}, err
	}
	if err := securefile.Write(s.revokedMarker(name), []byte(now.Format(time.RFC3339Nano)), publicMode); err != nil {
		return time.Time{}, err
	}
	return now, nil
}
