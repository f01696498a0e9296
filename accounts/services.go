package accounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
)

// The SVC account holds the hubs' service router (hub/services.go): CLOUD
// imports its call subject once, each edge account imports its own slice
// of its forwarded calls and answers (contract/services.go). Its only user
// is the router's, written to accounts/SVC/router.creds (0600) for the
// hubs.

// ServiceCredsFile is the creds file of the hubs' service router.
func (s *Store) ServiceCredsFile() string {
	return s.path("accounts", contract.ServiceAccountName, "router.creds")
}

// ensureServiceAccount creates the SVC account and its router user when
// the store has none, and returns the account's public key.
func (s *Store) ensureServiceAccount(operatorSigner nkeys.KeyPair) (string, bool, error) {
	acc, err := s.Account(contract.ServiceAccountName)
	if err == nil {
		return acc.Pub, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	pub, err := s.createAccount(contract.ServiceAccountName, operatorSigner, func(ac *jwt.AccountClaims) {
		ac.Exports = contract.ServiceExports()
	})
	if err != nil {
		return "", false, fmt.Errorf("create account %s: %w", contract.ServiceAccountName, err)
	}
	if err := s.writeUser(contract.ServiceAccountName, "router", jwt.Permissions{}, nil, s.ServiceCredsFile()); err != nil {
		os.RemoveAll(s.path("accounts", contract.ServiceAccountName))
		return "", false, err
	}
	return pub, true, nil
}

// serviceAccountPub returns the SVC account's public key ("" when the
// store has none yet: an older store before 'tether upgrade').
func (s *Store) serviceAccountPub() string {
	acc, err := s.Account(contract.ServiceAccountName)
	if err != nil {
		return ""
	}
	return acc.Pub
}

// edgeImports are an edge account's imports: the data path's and, when the
// store has a SVC account, the services'.
func edgeImports(edge, cloudPub, svcPub string) jwt.Imports {
	im := contract.EdgeImports(edge, cloudPub)
	if svcPub != "" {
		im = append(im, contract.EdgeServiceImports(edge, svcPub)...)
		im = append(im, contract.EdgeGatewayImport(edge, cloudPub))
	}
	return im
}

// cloudExports are the CLOUD account's exports: the data path's and the
// cloud services edges may call.
func cloudExports() jwt.Exports {
	return append(contract.CloudExports(), contract.CloudServiceExports()...)
}

// linkServiceAccount gives the SVC account its import of the CLOUD
// account's services (CLOUD is made after SVC, which it imports from).
func (s *Store) linkServiceAccount(signer nkeys.KeyPair) (bool, error) {
	svc, err := s.Account(contract.ServiceAccountName)
	if err != nil {
		return false, err
	}
	cloud, err := s.Account(contract.CloudAccountName)
	if err != nil {
		return false, err
	}
	return s.resign(svc, signer, func(ac *jwt.AccountClaims) error {
		if want := contract.ServiceImports(cloud.Pub); !sameElements(ac.Imports, want) {
			ac.Imports = want
		}
		if want := contract.ServiceExports(); !sameElements(ac.Exports, want) {
			ac.Exports = want
		}
		return nil
	})
}

// cloudImports are the CLOUD account's imports.
func cloudImports(svcPub string) jwt.Imports {
	if svcPub == "" {
		return nil
	}
	return contract.CloudServiceImports(svcPub)
}
