package accounts

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
)

// Upgrade brings the account JWTs of a store made by an older Tether up to
// this version's contract: the CLOUD exports, and for each edge its
// imports, its scoped leaf signing key (created when missing) and its
// limits. It re-signs only what differs, returns the names of the accounts
// it changed (push them), and is idempotent. Users already issued keep
// their permissions: rotate an edge (or re-enroll it) to give it a user of
// the scoped key.
func (s *Store) Upgrade() ([]string, error) {
	signer, err := s.readKey("operator", "signing.nk")
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	before, err := s.snapshotClaims()
	if err != nil {
		return nil, err
	}
	var changed []string
	svcPub, created, err := s.ensureServiceAccount(signer)
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	if created {
		changed = append(changed, contract.ServiceAccountName)
	}
	cloud, err := s.Account(contract.CloudAccountName)
	if err != nil {
		return nil, err
	}
	up, err := s.resign(cloud, signer, func(ac *jwt.AccountClaims) error {
		if want := cloudExports(); !sameElements(ac.Exports, want) {
			ac.Exports = want
		}
		if want := cloudImports(svcPub); !sameElements(ac.Imports, want) {
			ac.Imports = want
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if up {
		changed = append(changed, contract.CloudAccountName)
	}
	if up, err := s.linkServiceAccount(signer); err != nil {
		return changed, err
	} else if up && !created {
		changed = append(changed, contract.ServiceAccountName)
	}
	edges, err := s.Edges()
	if err != nil {
		return nil, err
	}
	for _, e := range edges {
		acc, err := s.Account(contract.EdgeAccountName(e))
		if err != nil {
			return changed, err
		}
		up, err := s.resign(acc, signer, func(ac *jwt.AccountClaims) error {
			leafSigner, err := s.leafSigner(e)
			if err != nil {
				return err
			}
			imports := ac.Imports
			EdgeClaims(ac, e, cloud.Pub, svcPub, leafSigner)
			if sameElements(imports, ac.Imports) {
				ac.Imports = imports // the same imports in another order: no change
			}
			return nil
		})
		if err != nil {
			return changed, err
		}
		if up {
			changed = append(changed, acc.Name)
		}
	}
	// The contract above is the bare one; what the applied access policy
	// adds (roles, calls, links) is signed in again, and only accounts
	// whose claims end up different from before count as changed.
	if restored, err := s.restorePolicy(); err != nil || len(restored) > 0 {
		return s.changedSince(before, err)
	}
	return changed, nil
}

// snapshotClaims returns every account's JWT by name.
func (s *Store) snapshotClaims() (map[string]string, error) {
	accs, err := s.Accounts()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, a := range accs {
		out[a.Name] = a.JWT
	}
	return out, nil
}

// changedSince lists the accounts whose claims differ from before.
func (s *Store) changedSince(before map[string]string, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	now, err := s.snapshotClaims()
	if err != nil {
		return nil, err
	}
	var out []string
	for name, j := range now {
		b, ok := before[name]
		if !ok {
			out = append(out, name)
			continue
		}
		bc, err1 := jwt.DecodeAccountClaims(b)
		nc, err2 := jwt.DecodeAccountClaims(j)
		if err1 != nil || err2 != nil || !sameClaims(bc, nc) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// resign applies edit to the account's claims and, when that changed
// them, signs and writes the JWT again; it reports whether it did.
func (s *Store) resign(acc Account, signer nkeys.KeyPair, edit func(*jwt.AccountClaims) error) (bool, error) {
	ac, err := jwt.DecodeAccountClaims(acc.JWT)
	if err != nil {
		return false, fmt.Errorf("upgrade %s: %w", acc.Name, err)
	}
	before, err := jwt.DecodeAccountClaims(acc.JWT)
	if err != nil {
		return false, err
	}
	if err := edit(ac); err != nil {
		return false, fmt.Errorf("upgrade %s: %w", acc.Name, err)
	}
	if sameJSON(ac, before) {
		return false, nil
	}
	ajwt, err := ac.Encode(signer)
	if err != nil {
		return false, fmt.Errorf("upgrade %s: %w", acc.Name, err)
	}
	return true, securefile.Write(filepath.Join(s.path("accounts", acc.Name), "account.jwt"), []byte(ajwt), publicMode)
}

// leafSigner returns the public key of the edge's scoped leaf signing key,
// creating the key when the store has none (stores made before it existed).
func (s *Store) leafSigner(edge string) (string, error) {
	kp, err := s.readKey("accounts", contract.EdgeAccountName(edge), "leaf-signing.nk")
	if err != nil {
		if kp, err = nkeys.CreateAccount(); err != nil {
			return "", err
		}
		if err := writeSeed(s.leafSignerFile(edge), kp); err != nil {
			return "", err
		}
	}
	return kp.PublicKey()
}

// sameJSON compares as the JWT would carry them (a decoded claim and a
// freshly built one differ in nil versus empty, not in meaning).
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// sameElements compares two lists as sets of their JSON forms (a JWT
// keeps exports and imports sorted, contract builds them in its own order).
func sameElements[T any](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(l []T) []string {
		out := make([]string, len(l))
		for i, v := range l {
			j, _ := json.Marshal(v)
			out[i] = string(j)
		}
		sort.Strings(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// RenewLeafCreds gives the edge new leaf creds in the store, signed by its
// scoped key, and records them as current. It is for edges whose creds
// the store hands out itself (the dev fabric): a deployed edge's creds are
// replaced with 'tether edge rotate', over its link.
func (s *Store) RenewLeafCreds(edge string) error {
	creds, err := s.NewLeafCreds(edge)
	if err != nil {
		return err
	}
	return securefile.Write(s.edgeCredsFile(edge), creds, secretMode)
}
