package fleet

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/accounts"
)

// ErrEdgeOffline reports an edge that did not answer on its control
// subjects: it is not linked to any hub.
var ErrEdgeOffline = errors.New("edge is not linked (no answer on its control subjects)")

// controlTTL is how long a control user lives.
const controlTTL = 2 * time.Minute

// RotateResult describes a finished rotation.
type RotateResult struct {
	Edge     string       `json:"edge"`
	Previous string       `json:"previous_user"`
	User     string       `json:"user"`
	Pushed   []PushResult `json:"pushed"`
	// Relinked is how long after the revocation was pushed the edge was
	// linked again with its new key.
	Relinked time.Duration `json:"relinked_ns"`
}

// ConnectControl connects to the hub at url as a fresh control user of the edge's
// account.
func ConnectControl(s *accounts.Store, url, edge string) (*nats.Conn, error) {
	creds, err := s.ControlCreds(edge, controlTTL)
	if err != nil {
		return nil, err
	}
	ujwt, seed, err := sitefile.SplitCreds(creds)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, nats.Name("tether-control"), nats.UserJWTAndSeed(ujwt, string(seed)),
		nats.RootCAs(s.CAFile()), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to hub %s as control user of edge %s: %w", url, edge, err)
	}
	return nc, nil
}

func request(ctx context.Context, nc *nats.Conn, edge, subj string, req, resp any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, subj, data)
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("edge %s: %w", edge, ErrEdgeOffline)
	}
	if err != nil {
		return fmt.Errorf("edge %s: %s: %w", edge, subj, err)
	}
	if err := json.Unmarshal(m.Data, resp); err != nil {
		return fmt.Errorf("edge %s: %s: bad answer: %w", edge, subj, err)
	}
	return nil
}

// Whoami asks the edge which user key it connects with.
func Whoami(ctx context.Context, nc *nats.Conn, edge string) (contract.WhoamiResponse, error) {
	var r contract.WhoamiResponse
	err := request(ctx, nc, edge, contract.ControlWhoami, struct{}{}, &r)
	return r, err
}

// Rotate replaces the edge's leaf credentials with a key born on the
// device, over its live link: see the package comment. url is a hub client
// URL; sys is a system-account connection for the push. Until the install
// step nothing changes anywhere; after it, the edge holds the new
// credentials and a failed push leaves the old key valid (rerun rotate).
func Rotate(ctx context.Context, s *accounts.Store, url string, sys *nats.Conn, edge string) (*RotateResult, error) {
	// The store may not know the current key: an edge enrolled through
	// hubs that run on a hub export records it there. The answer then
	// names it; only the edge's own link receives control requests (site
	// clients may not subscribe to them), and it must sign with that key.
	cur, err := s.LeafUser(edge)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if _, revoked := s.Revoked(edge); revoked {
		return nil, fmt.Errorf("rotate %s: %w", edge, accounts.ErrEdgeRevoked)
	}
	nc, err := ConnectControl(s, url, edge)
	if err != nil {
		return nil, err
	}
	defer nc.Close()

	nonce := make([]byte, 18)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	var key contract.RotateKeyResponse
	if err := request(ctx, nc, edge, contract.ControlRotateKey, contract.RotateKeyRequest{Nonce: base64.RawURLEncoding.EncodeToString(nonce)}, &key); err != nil {
		return nil, fmt.Errorf("rotate %s: %w", edge, err)
	}
	if key.Error != "" {
		return nil, fmt.Errorf("rotate %s: edge refused: %s", edge, key.Error)
	}
	challenge := contract.RotateChallenge(edge, base64.RawURLEncoding.EncodeToString(nonce), key.User)
	if cur == "" {
		cur = key.Current
	}
	if key.Current != cur {
		return nil, fmt.Errorf("rotate %s: the answer came from key %s, but the edge's current user is %s: refusing", edge, key.Current, cur)
	}
	if err := errors.Join(contract.Verify(cur, challenge, key.CurrentSig), contract.Verify(key.User, challenge, key.Sig)); err != nil {
		return nil, fmt.Errorf("rotate %s: proof of possession failed: %w", edge, err)
	}
	ujwt, err := s.SignLeafUser(edge, key.User, time.Time{})
	if err != nil {
		return nil, err
	}
	var inst contract.RotateInstallResponse
	if err := request(ctx, nc, edge, contract.ControlRotateInstall, contract.RotateInstallRequest{JWT: ujwt}, &inst); err != nil {
		return nil, fmt.Errorf("rotate %s: %w", edge, err)
	}
	if inst.Error != "" || inst.User != key.User {
		return nil, fmt.Errorf("rotate %s: edge did not install the new credentials: %s", edge, inst.Error)
	}
	// The edge uses the new key from its next connection: record it, and
	// revoke the old one, which closes the current link.
	if err := s.RecordLeafUser(edge, ujwt); err != nil {
		return nil, err
	}
	if err := s.RevokeUser(edge, cur); err != nil {
		return nil, err
	}
	// The store no longer holds a usable seed for this edge.
	if err := s.ForgetLeafCreds(edge); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	res := &RotateResult{Edge: edge, Previous: cur, User: key.User}
	pushed := time.Now()
	res.Pushed, err = PushAccount(ctx, s, sys, contract.EdgeAccountName(edge))
	if err != nil {
		return res, fmt.Errorf("rotate %s: new key installed, old key revoked in the store, but: %w", edge, err)
	}
	for {
		who, err := Whoami(ctx, nc, edge)
		if err == nil && who.User == key.User {
			res.Relinked = time.Since(pushed)
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("rotate %s: edge not back with its new key yet (it reconnects on its own): %w", edge, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
