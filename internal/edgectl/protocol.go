// Package edgectl is the control protocol between the operator's tools and
// an edge, carried over the edge's own authenticated leaf link: the tool
// connects to a hub as a short-lived control user of the edge's account
// (accounts.Store.ControlCreds) and sends requests on $TETHER.CTL.>, which
// the hubs deliver to the edge only (the leaf user's permissions let the
// edge receive them; nobody but the store's holder can issue a control
// user).
//
// Key rotation (Rotate): the edge makes a new key pair on the device and
// proves it holds both the current and the new key; the store signs a leaf
// user JWT for the new key with the edge's scoped leaf signing key; the edge
// installs it (bundle rewritten atomically, 0600) and uses it from its next
// connection; the old user key is revoked and pushed to every hub, which
// closes the old link, and the edge comes back with the new one. The seed
// never leaves the edge.
package edgectl

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
)

// Control subjects (edge-local; the same at the hub in the edge account).
const (
	SubjectRotateKey     = contract.ControlPrefix + ".ROTATE.KEY"
	SubjectRotateInstall = contract.ControlPrefix + ".ROTATE.INSTALL"
	SubjectWhoami        = contract.ControlPrefix + ".WHOAMI"
)

// KeyRequest asks the edge for a new key pair.
type KeyRequest struct {
	Nonce string `json:"nonce"`
}

// KeyResponse carries the new public key, signed by the new key (proof of
// possession) and by the current one (proof that the answer comes from the
// edge that holds the current credentials).
type KeyResponse struct {
	User       string `json:"user"`
	Sig        string `json:"sig"`
	Current    string `json:"current"`
	CurrentSig string `json:"current_sig"`
	Error      string `json:"error,omitempty"`
}

// InstallRequest hands the edge its new leaf user JWT.
type InstallRequest struct {
	JWT string `json:"jwt"`
}

// InstallResponse confirms what the edge will use from its next connection.
type InstallResponse struct {
	User  string `json:"user"`
	Error string `json:"error,omitempty"`
}

// WhoamiResponse names the edge and the user key its current link was
// opened with.
type WhoamiResponse struct {
	Edge string `json:"edge"`
	User string `json:"user"`
}

// Challenge is what both keys sign in a KeyResponse. The prefix keeps it
// from ever being a valid answer to a server's connect nonce.
func Challenge(edge, nonce, newUser string) []byte {
	return []byte("tether-rotate-v1:" + edge + ":" + nonce + ":" + newUser)
}

// Sign signs data with kp, base64url-encoded.
func Sign(kp nkeys.KeyPair, data []byte) (string, error) {
	sig, err := kp.Sign(data)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sig), nil
}

// ErrBadSignature reports a signature that does not verify.
var ErrBadSignature = errors.New("signature does not verify")

// Verify checks a base64url signature by the public key pub over data.
func Verify(pub string, data []byte, sig string) error {
	kp, err := nkeys.FromPublicKey(pub)
	if err != nil {
		return fmt.Errorf("key %q: %w", pub, err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("signature of %s: %w", pub, err)
	}
	if err := kp.Verify(data, raw); err != nil {
		return fmt.Errorf("%w (key %s)", ErrBadSignature, pub)
	}
	return nil
}
