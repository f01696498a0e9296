package accounts

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
)

// Enrollment: the operator makes a one-time token for an edge; the device
// generates its own user key pair, proves it holds it, and gets its leaf
// user JWT from the hubs' registrar (see hub/registrar.go, leaf/enroll.go).
const (
	// EnrollTokenVersion is the token format this build writes and reads.
	EnrollTokenVersion = 1
	// DefaultEnrollTTL is how long a token is valid unless told otherwise.
	DefaultEnrollTTL = 24 * time.Hour
	// MaxEnrollTTL bounds a token's life; the registrar remembers used
	// tokens at least this long.
	MaxEnrollTTL = 7 * 24 * time.Hour
	// enrollUserSuffix names an edge's enroll users: <edge>-enroll.
	enrollUserSuffix = "-enroll"
)

// Errors of enrollment.
var (
	// ErrKeyOnDevice reports an edge whose leaf user's seed lives only on
	// the device (it enrolled with a token), so no bundle can be made.
	ErrKeyOnDevice = errors.New("keys live on the device (the edge enrolled with a token or its key was rotated); to replace the device, make a token with 'tether edge token'")
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
	return securefile.Write(path, append(text, '\n'), secretMode)
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
	if t.Version != EnrollTokenVersion {
		errs = append(errs, fmt.Errorf("version: got %d, want %d", t.Version, EnrollTokenVersion))
	}
	if err := ValidateEdgeName(t.Edge); err != nil {
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

// NewEnrollToken creates an enroll user in the edge's account, signed by
// the account's signing key, valid for ttl (0: DefaultEnrollTTL), and
// returns a token holding it. The token is single use: the registrar
// remembers every enroll user that obtained a leaf user.
func (s *Store) NewEnrollToken(edge string, ttl time.Duration) (*EnrollToken, error) {
	if ttl == 0 {
		ttl = DefaultEnrollTTL
	}
	if ttl < 0 || ttl > MaxEnrollTTL {
		return nil, fmt.Errorf("enrollment token for %s: ttl %s: want more than 0 and at most %s", edge, ttl, MaxEnrollTTL)
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
	ujwt, seed, err := SplitCreds(creds)
	if err != nil {
		return nil, err
	}
	t := &EnrollToken{
		Version:       EnrollTokenVersion,
		Edge:          edge,
		Account:       e.Account.Pub,
		Domain:        EdgeDomain(edge),
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

// NewEnrollRequest makes the device's request: it signs the challenge with
// the new user key and the token's key.
func NewEnrollRequest(t *EnrollToken, newUser nkeys.KeyPair) (*EnrollRequest, error) {
	enrollPub, err := t.EnrollUser()
	if err != nil {
		return nil, err
	}
	tkp, err := t.KeyPair()
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	upub, err := newUser.PublicKey()
	if err != nil {
		return nil, err
	}
	ch := EnrollChallenge(t.Edge, enrollPub, upub)
	usig, err := newUser.Sign(ch)
	if err != nil {
		return nil, err
	}
	tsig, err := tkp.Sign(ch)
	if err != nil {
		return nil, err
	}
	return &EnrollRequest{
		Version: EnrollTokenVersion, Edge: t.Edge, EnrollJWT: t.JWT, User: upub,
		UserSig:  base64.RawURLEncoding.EncodeToString(usig),
		TokenSig: base64.RawURLEncoding.EncodeToString(tsig),
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
		kp, err := nkeys.FromPublicKey(c.key)
		if err != nil {
			return fmt.Errorf("%s: %w", c.what, err)
		}
		sig, err := base64.RawURLEncoding.DecodeString(c.sig)
		if err != nil || kp.Verify(ch, sig) != nil {
			return fmt.Errorf("%s: bad signature for edge %s", c.what, edge)
		}
	}
	return nil
}
