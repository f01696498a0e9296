package sitefile

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
)

// Errors of enrollment tokens.
var (
	// ErrTokenExpired reports an enrollment token past its expiry.
	ErrTokenExpired = errors.New("enrollment token expired")
	// ErrBadToken reports a token that does not parse or validate.
	ErrBadToken = errors.New("not a valid tether enrollment token")
)

// EnrollToken is what a device needs to enroll: where the hubs are, the CA
// to verify them, and a short-lived enroll user of the edge's account that
// may only ask the registrar for a leaf user. It is a secret (0600): whoever
// holds it can enroll the edge once.
type EnrollToken struct {
	Version       int       `json:"version"`
	Edge          string    `json:"edge"`
	Account       string    `json:"account"`
	Domain        string    `json:"domain"`
	HubURLs       []string  `json:"hub_urls"`
	WebsocketURLs []string  `json:"websocket_urls,omitempty"`
	CA            string    `json:"ca"`
	JWT           string    `json:"jwt"`
	Seed          string    `json:"seed"`
	Expires       time.Time `json:"expires"`
}

// String names the token without its secrets, so it is safe to log.
func (t *EnrollToken) String() string {
	return fmt.Sprintf("enroll-token(edge=%s account=%s expires=%s)", t.Edge, t.Account, t.Expires.Format(time.RFC3339))
}

// LogValue keeps the seed out of logs.
func (t *EnrollToken) LogValue() slog.Value { return slog.StringValue(t.String()) }

// EnrollUser returns the public key of the token's enroll user.
func (t *EnrollToken) EnrollUser() (string, error) {
	uc, err := jwt.DecodeUserClaims(t.JWT)
	if err != nil {
		return "", fmt.Errorf("jwt: %w", err)
	}
	return uc.Subject, nil
}

// KeyPair returns the enroll user's key pair.
func (t *EnrollToken) KeyPair() (nkeys.KeyPair, error) { return nkeys.FromSeed([]byte(t.Seed)) }

// Bundle returns the bundle of an enrolled device: the token's hubs and CA
// with the device's own creds.
func (t *EnrollToken) Bundle(creds []byte) (*Bundle, error) {
	b := &Bundle{
		Version:       BundleVersion,
		Edge:          t.Edge,
		Account:       t.Account,
		Domain:        t.Domain,
		HubURLs:       t.HubURLs,
		WebsocketURLs: t.WebsocketURLs,
		CA:            t.CA,
		Creds:         string(creds),
	}
	return b, b.Validate()
}

// Encode returns the token's text: base64url (unpadded) of its JSON.
func (t *EnrollToken) Encode() ([]byte, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	out := make([]byte, base64.RawURLEncoding.EncodedLen(len(data)))
	base64.RawURLEncoding.Encode(out, data)
	return out, nil
}

// WriteEnrollToken writes t to path with mode 0600.
func WriteEnrollToken(path string, t *EnrollToken) error {
	if err := t.Validate(); err != nil {
		return err
	}
	text, err := t.Encode()
	if err != nil {
		return err
	}
	return securefile.Write(path, append(text, '\n'), SecretMode)
}

// LoadEnrollToken reads a token file ("-" is r); a file that group or
// others may read is refused.
func LoadEnrollToken(path string, r io.Reader) (*EnrollToken, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(r, 1<<20))
		path = "stdin"
	} else {
		data, err = securefile.Read(path)
	}
	if err != nil {
		return nil, fmt.Errorf("load enrollment token %s: %w", path, err)
	}
	t, err := ParseEnrollToken(data)
	if err != nil {
		return nil, fmt.Errorf("load enrollment token %s: %w", path, err)
	}
	return t, nil
}

// ParseEnrollToken decodes and validates a token's text.
func ParseEnrollToken(text []byte) (*EnrollToken, error) {
	text = bytes.TrimSpace(text)
	data := make([]byte, base64.RawURLEncoding.DecodedLen(len(text)))
	n, err := base64.RawURLEncoding.Decode(data, text)
	if err != nil {
		return nil, fmt.Errorf("%w (want the text written by 'tether edge add --token' or 'tether edge token'): base64url: %v", ErrBadToken, err)
	}
	var t EnrollToken
	dec := json.NewDecoder(bytes.NewReader(data[:n]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Validate reports every problem in t, each naming its field. Expiry is not
// checked here (see Expired): an expired token is still well formed.
func (t *EnrollToken) Validate() error {
	var errs []error
	if t.Version != contract.EnrollVersion {
		errs = append(errs, fmt.Errorf("version: got %d, want %d", t.Version, contract.EnrollVersion))
	}
	if err := contract.ValidateEdgeName(t.Edge); err != nil {
		errs = append(errs, fmt.Errorf("edge: %w", err))
	}
	if !nkeys.IsValidPublicAccountKey(t.Account) {
		errs = append(errs, fmt.Errorf("account: %q is not an account public key", t.Account))
	}
	errs = append(errs, validateFabricRefs(t.Edge, t.Domain, t.HubURLs, t.WebsocketURLs, t.CA)...)
	var sub string
	if uc, err := jwt.DecodeUserClaims(t.JWT); err != nil {
		errs = append(errs, fmt.Errorf("jwt: %w", err))
	} else if uc.IssuerAccount != t.Account {
		errs = append(errs, fmt.Errorf("jwt: user belongs to account %q, want %s", uc.IssuerAccount, t.Account))
	} else {
		sub = uc.Subject
	}
	if kp, err := nkeys.FromSeed([]byte(t.Seed)); err != nil {
		errs = append(errs, fmt.Errorf("seed: %w", err))
	} else if pub, _ := kp.PublicKey(); sub != "" && pub != sub {
		errs = append(errs, fmt.Errorf("seed: belongs to %s, not to the jwt's user %s", pub, sub))
	}
	if t.Expires.IsZero() {
		errs = append(errs, errors.New("expires: missing"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrBadToken, errors.Join(errs...))
	}
	return nil
}

// Expired reports whether the token says it has expired at now.
func (t *EnrollToken) Expired(now time.Time) bool { return !now.Before(t.Expires) }

// NewEnrollRequest makes the device's enrollment request for the new user
// key newUser, signed with it and with the token's key.
func (t *EnrollToken) NewEnrollRequest(newUser nkeys.KeyPair) (*contract.EnrollRequest, error) {
	tkp, err := t.KeyPair()
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	return contract.NewEnrollRequest(t.Edge, t.JWT, tkp, newUser)
}
