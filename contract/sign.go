package contract

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/nats-io/nkeys"
)

// Sign signs data with kp and returns the signature base64url-encoded
// (unpadded). It is the one signature scheme of the messages that cross
// the link (enrollment and control requests).
func Sign(kp nkeys.KeyPair, data []byte) (string, error) {
	sig, err := kp.Sign(data)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sig), nil
}

// ErrBadSignature reports a signature that does not verify.
var ErrBadSignature = errors.New("signature does not verify")

// Verify checks a base64url signature made by Sign with the key whose
// public key is pub over data.
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
