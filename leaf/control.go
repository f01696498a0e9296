package leaf

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// identity holds the edge's leaf credentials in memory. The link signs
// every connect nonce with the current key, so an installed rotation takes
// effect on the next connection.
type identity struct {
	mu      sync.Mutex
	jwt     string
	kp      nkeys.KeyPair
	pending nkeys.KeyPair
	// linked is the user key that signed the latest connect: the key of
	// the current link, if one is up.
	linked string
}

func newIdentity(creds string) (*identity, error) {
	ujwt, err := jwt.ParseDecoratedJWT([]byte(creds))
	if err != nil {
		return nil, err
	}
	kp, err := jwt.ParseDecoratedUserNKey([]byte(creds))
	if err != nil {
		return nil, err
	}
	return &identity{jwt: ujwt, kp: kp}, nil
}

// sign is the leaf remote's SignatureCB; the seed never leaves memory.
func (id *identity) sign(nonce []byte) (string, []byte, error) {
	id.mu.Lock()
	ujwt, kp := id.jwt, id.kp
	id.linked, _ = kp.PublicKey()
	id.mu.Unlock()
	sig, err := kp.Sign(nonce)
	return ujwt, sig, err
}

func (id *identity) linkedUser() string {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.linked
}

// startControl serves the control protocol (contract/control.go) on the
// edge's in-process connection; requests reach it from the hub over the
// link.
func (s *Server) startControl() error {
	handlers := map[string]nats.MsgHandler{
		contract.ControlRotateKey:     s.handleRotateKey,
		contract.ControlRotateInstall: s.handleRotateInstall,
		contract.ControlWhoami: func(m *nats.Msg) {
			respondJSON(m, contract.WhoamiResponse{Edge: s.bundle.Edge, User: s.id.linkedUser()})
		},
	}
	for subj, h := range handlers {
		if _, err := s.nc.Subscribe(subj, h); err != nil {
			return fmt.Errorf("control service %s: %w", subj, err)
		}
	}
	return nil
}

func respondJSON(m *nats.Msg, v any) {
	data, _ := json.Marshal(v)
	_ = m.Respond(data)
}

func (s *Server) handleRotateKey(m *nats.Msg) {
	var req contract.RotateKeyRequest
	if err := json.Unmarshal(m.Data, &req); err != nil || len(req.Nonce) < 16 {
		respondJSON(m, contract.RotateKeyResponse{Error: "rotate: want {\"nonce\": at least 16 characters}"})
		return
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		respondJSON(m, contract.RotateKeyResponse{Error: "rotate: new key: " + err.Error()})
		return
	}
	pub, _ := kp.PublicKey()
	s.id.mu.Lock()
	cur := s.id.kp
	s.id.pending = kp
	s.id.mu.Unlock()
	curPub, _ := cur.PublicKey()
	challenge := contract.RotateChallenge(s.bundle.Edge, req.Nonce, pub)
	sig, err1 := contract.Sign(kp, challenge)
	csig, err2 := contract.Sign(cur, challenge)
	if err := errors.Join(err1, err2); err != nil {
		respondJSON(m, contract.RotateKeyResponse{Error: "rotate: sign: " + err.Error()})
		return
	}
	s.log.Info("rotation: new key made on the device", "user", pub, "current", curPub)
	respondJSON(m, contract.RotateKeyResponse{User: pub, Sig: sig, Current: curPub, CurrentSig: csig})
}

func (s *Server) handleRotateInstall(m *nats.Msg) {
	var req contract.RotateInstallRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		respondJSON(m, contract.RotateInstallResponse{Error: "rotate: want {\"jwt\": user JWT}"})
		return
	}
	user, err := s.installCreds(req.JWT)
	if err != nil {
		s.log.Error("rotation refused", "err", err)
		respondJSON(m, contract.RotateInstallResponse{Error: err.Error()})
		return
	}
	respondJSON(m, contract.RotateInstallResponse{User: user})
}

// installCreds checks that ujwt is a user JWT of this edge's account for
// the pending key, writes the bundle with the new creds (atomic, 0600),
// and switches the in-memory identity. On any error nothing changes.
func (s *Server) installCreds(ujwt string) (string, error) {
	uc, err := jwt.DecodeUserClaims(ujwt)
	if err != nil {
		return "", fmt.Errorf("rotate: user JWT: %w", err)
	}
	s.id.mu.Lock()
	defer s.id.mu.Unlock()
	if s.id.pending == nil {
		return "", errors.New("rotate: no key pending (ask for a new key first)")
	}
	pub, _ := s.id.pending.PublicKey()
	switch {
	case uc.Subject != pub:
		return "", fmt.Errorf("rotate: user JWT is for %s, the pending key is %s", uc.Subject, pub)
	case uc.IssuerAccount != s.bundle.Account && uc.Issuer != s.bundle.Account:
		return "", fmt.Errorf("rotate: user JWT is of account %s, this edge is %s", uc.IssuerAccount, s.bundle.Account)
	case uc.Expires > 0 && time.Unix(uc.Expires, 0).Before(time.Now()):
		return "", errors.New("rotate: user JWT already expired")
	}
	seed, err := s.id.pending.Seed()
	if err != nil {
		return "", err
	}
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		return "", fmt.Errorf("rotate: %w", err)
	}
	nb := *s.bundle
	nb.Creds = string(creds)
	if err := nb.Validate(); err != nil {
		return "", fmt.Errorf("rotate: %w", err)
	}
	if err := sitefile.WriteBundle(s.cfg.Bundle, &nb); err != nil {
		return "", fmt.Errorf("rotate: write bundle %s: %w", s.cfg.Bundle, err)
	}
	old, _ := s.id.kp.PublicKey()
	s.bundle.Creds = nb.Creds
	s.id.jwt, s.id.kp, s.id.pending = ujwt, s.id.pending, nil
	s.log.Info("credentials rotated: the next connection uses the new key", "user", pub, "previous", old, "bundle", s.cfg.Bundle)
	return pub, nil
}
