// Package sitefile reads and writes the files a site holds: the edge
// bundle (who the edge is, where the hubs are, the CA, its leaf
// credentials) and the one-time enrollment token. Both are secrets (0600);
// a file that group or others may read is refused. The operator's store
// writes them, the edge reads them.
package sitefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/nats-io/jwt/v2"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/pki"
	"github.com/tether-fabric/tether/internal/securefile"
)

// SecretMode is the mode of every secret file a site holds.
const SecretMode = 0o600

// BundleVersion is the bundle format this build writes and reads.
const BundleVersion = 1

// Bundle is the one file an edge needs: who it is, where the hubs are, the
// CA to verify them and its leaf user's credentials. It is a secret (0600).
type Bundle struct {
	Version       int      `json:"version"`
	Edge          string   `json:"edge"`
	Account       string   `json:"account"`
	Domain        string   `json:"domain"`
	HubURLs       []string `json:"hub_urls"`
	WebsocketURLs []string `json:"websocket_urls,omitempty"`
	CA            string   `json:"ca"`
	Creds         string   `json:"creds"`
}

// String names the bundle without its secrets, so it is safe to log.
func (b *Bundle) String() string {
	return fmt.Sprintf("bundle(edge=%s account=%s hubs=%v)", b.Edge, b.Account, b.HubURLs)
}

// WriteBundle writes b to path with mode 0600.
func WriteBundle(path string, b *Bundle) error {
	if err := b.Validate(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return securefile.Write(path, append(data, '\n'), SecretMode)
}

// LoadBundle reads and validates a bundle file; a file that group or others
// may read is refused.
func LoadBundle(path string) (*Bundle, error) {
	data, err := securefile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", path, err)
	}
	b, err := ParseBundle(data)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", path, err)
	}
	return b, nil
}

// ParseBundle decodes and validates a bundle.
func ParseBundle(data []byte) (*Bundle, error) {
	var b Bundle
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("not a tether bundle (want the JSON written by 'tether edge add'): %w", err)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return &b, nil
}

// Validate reports every problem in b, each naming its field.
func (b *Bundle) Validate() error {
	var errs []error
	if b.Version != BundleVersion {
		errs = append(errs, fmt.Errorf("version: got %d, want %d", b.Version, BundleVersion))
	}
	if err := contract.ValidateEdgeName(b.Edge); err != nil {
		errs = append(errs, fmt.Errorf("edge: %w", err))
	}
	errs = append(errs, validateFabricRefs(b.Edge, b.Domain, b.HubURLs, b.WebsocketURLs, b.CA)...)
	if b.Creds == "" {
		errs = append(errs, errors.New("creds: missing: want the leaf user's credentials written by 'tether edge add'"))
	} else if ujwt, err := jwt.ParseDecoratedJWT([]byte(b.Creds)); err != nil {
		errs = append(errs, fmt.Errorf("creds: %w", err))
	} else if uc, err := jwt.DecodeUserClaims(ujwt); err != nil {
		errs = append(errs, fmt.Errorf("creds: user JWT: %w", err))
	} else if uc.IssuerAccount != b.Account && uc.Issuer != b.Account {
		errs = append(errs, fmt.Errorf("creds: user belongs to account %s, want %s", uc.IssuerAccount, b.Account))
	} else if _, err := jwt.ParseDecoratedUserNKey([]byte(b.Creds)); err != nil {
		errs = append(errs, fmt.Errorf("creds: seed: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid bundle: %w", errors.Join(errs...))
	}
	return nil
}

func checkURL(raw, scheme string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	if u.Scheme != scheme || u.Host == "" || u.Port() == "" {
		return fmt.Errorf("%q: want %s://host:port", raw, scheme)
	}
	return nil
}

// validateFabricRefs checks what bundles and enrollment tokens both carry
// to find and trust the hubs: the edge's domain, the hub URLs (at least
// one tls://) and WebSocket URLs (wss://), and the CA certificate.
func validateFabricRefs(edge, domain string, hubURLs, wsURLs []string, ca string) []error {
	var errs []error
	if domain != contract.EdgeDomain(edge) {
		errs = append(errs, fmt.Errorf("domain: got %q, want %q", domain, contract.EdgeDomain(edge)))
	}
	if len(hubURLs) == 0 {
		errs = append(errs, errors.New("hub_urls: at least one tls:// URL is required"))
	}
	for i, u := range hubURLs {
		if err := checkURL(u, "tls"); err != nil {
			errs = append(errs, fmt.Errorf("hub_urls[%d]: %w", i, err))
		}
	}
	for i, u := range wsURLs {
		if err := checkURL(u, "wss"); err != nil {
			errs = append(errs, fmt.Errorf("websocket_urls[%d]: %w", i, err))
		}
	}
	if ca == "" {
		errs = append(errs, errors.New("ca: missing: want the fabric CA certificate (PEM) written by 'tether edge add'"))
	} else if _, err := pki.Pool([]byte(ca)); err != nil {
		errs = append(errs, fmt.Errorf("ca: %w", err))
	}
	return errs
}

// SplitCreds returns the user JWT and the seed held in a creds file's
// content.
func SplitCreds(creds []byte) (ujwt string, seed []byte, err error) {
	ujwt, err = jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return "", nil, err
	}
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		return "", nil, err
	}
	seed, err = kp.Seed()
	return ujwt, seed, err
}
