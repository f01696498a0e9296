package contract

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nkeys"
)

// Enrollment: the operator makes a one-time token for an edge; the device
// generates its own user key pair, proves it holds it, and gets its leaf
// user JWT from the hubs' registrar (see hub/registrar.go, leaf/enroll.go).
const (
	// EnrollVersion is the version of the enrollment token and request
	// this build writes and reads.
	EnrollVersion = 1
	// DefaultEnrollTTL is how long a token is valid unless told otherwise.
	DefaultEnrollTTL = 24 * time.Hour
	// MaxEnrollTTL bounds a token's life; the registrar remembers used
	// tokens at least this long.
	MaxEnrollTTL = 7 * 24 * time.Hour
	// EnrollTokenUsed is the registrar's reply (EnrollReply.Error) to a
	// token that already enrolled a device.
	EnrollTokenUsed = "enrollment token already used"
)

// EnrollRequest is what a device sends on $TETHER.ENROLL: its new user
// public key and two signatures over EnrollChallenge, one by the new key
// (proof of possession) and one by the token's enroll user key (proof of
// holding the token, independent of the request's transport).
type EnrollRequest struct {
	Version int    `json:"version"`
	Edge    string `json:"edge"`
	// EnrollJWT is the token's enroll user JWT.
	EnrollJWT string `json:"enroll_jwt"`
	User      string `json:"user"`
	// UserSig and TokenSig are base64url signatures of EnrollChallenge.
	UserSig  string `json:"user_sig"`
	TokenSig string `json:"token_sig"`
}

// EnrollReply is the registrar's answer: the leaf user JWT, or why not.
type EnrollReply struct {
	JWT   string `json:"jwt,omitempty"`
	Error string `json:"error,omitempty"`
}

// EnrollChallenge is what both keys sign: it binds the edge, the enroll
// user (so the signature cannot be replayed with another token) and the
// new user.
func EnrollChallenge(edge, enrollUser, newUser string) []byte {
	return []byte("tether-enroll-v1\n" + edge + "\n" + enrollUser + "\n" + newUser + "\n")
}

// NewEnrollRequest makes the device's request for edge: it signs the
// challenge with the new user key and with the token's enroll user key
// (tokenKey), whose user JWT is enrollJWT.
func NewEnrollRequest(edge, enrollJWT string, tokenKey, newUser nkeys.KeyPair) (*EnrollRequest, error) {
	enrollPub, err := tokenKey.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	upub, err := newUser.PublicKey()
	if err != nil {
		return nil, err
	}
	ch := EnrollChallenge(edge, enrollPub, upub)
	usig, err := Sign(newUser, ch)
	if err != nil {
		return nil, err
	}
	tsig, err := Sign(tokenKey, ch)
	if err != nil {
		return nil, err
	}
	return &EnrollRequest{
		Version: EnrollVersion, Edge: edge, EnrollJWT: enrollJWT, User: upub,
		UserSig: usig, TokenSig: tsig,
	}, nil
}

// Verify checks both signatures for edge and the enroll user enrollPub and
// returns why not.
func (r *EnrollRequest) Verify(edge, enrollPub string) error {
	if !nkeys.IsValidPublicUserKey(r.User) {
		return fmt.Errorf("user %q is not a user public key", r.User)
	}
	if r.User == enrollPub {
		return errors.New("the new user key must not be the token's key")
	}
	ch := EnrollChallenge(edge, enrollPub, r.User)
	for _, c := range []struct{ what, key, sig string }{
		{"proof of possession of the new key", r.User, r.UserSig},
		{"proof of holding the token", enrollPub, r.TokenSig},
	} {
		if Verify(c.key, ch, c.sig) != nil {
			return fmt.Errorf("%s: bad signature for edge %s", c.what, edge)
		}
	}
	return nil
}
