package accounts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/pki"
	"github.com/tether-fabric/tether/internal/securefile"
)

// Errors returned by the store.
var (
	ErrStoreExists = errors.New("store already initialised")
	ErrNoStore     = errors.New("no tether store")
	ErrEdgeExists  = errors.New("edge already exists")
	ErrNoEdge      = errors.New("no such edge")
)

const (
	dirMode    fs.FileMode = 0o700
	secretMode fs.FileMode = 0o600
	publicMode fs.FileMode = 0o644

	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 2 * 365 * 24 * time.Hour
)

// Fabric holds the settings an edge needs to find the hubs.
type Fabric struct {
	// HubURLs are the hubs' leafnode TLS URLs, e.g. tls://hub.example.com:7422.
	HubURLs []string `json:"hub_urls"`
	// WebsocketURLs are the hubs' WebSocket-TLS URLs for edges behind
	// proxies, e.g. wss://hub.example.com:443. May be empty.
	WebsocketURLs []string `json:"websocket_urls,omitempty"`
	// HubHosts are the DNS names and IPs in the hub certificate.
	HubHosts []string `json:"hub_hosts"`
}

// InitOptions configure a new store.
type InitOptions struct {
	Fabric
}

// DefaultInitOptions are for a fabric on this machine: hubs reachable as
// localhost on the default ports.
func DefaultInitOptions() InitOptions {
	return InitOptions{Fabric{
		HubURLs:       []string{"tls://localhost:7422"},
		WebsocketURLs: []string{"wss://localhost:7443"},
		HubHosts:      []string{"localhost", "127.0.0.1", "::1"},
	}}
}

// Store is an on-disk identity store. Its methods are safe for use by one
// process at a time.
type Store struct {
	dir    string
	fabric Fabric
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Fabric returns the fabric settings recorded at init.
func (s *Store) Fabric() Fabric { return s.fabric }

func (s *Store) path(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

// CAFile is the fabric CA certificate.
func (s *Store) CAFile() string { return s.path("pki", "ca.pem") }

// HubCertFile is the hub certificate.
func (s *Store) HubCertFile() string { return s.path("pki", "hub.pem") }

// HubKeyFile is the hub certificate's private key.
func (s *Store) HubKeyFile() string { return s.path("pki", "hub-key.pem") }

// SystemCredsFile is the creds file of the system user.
func (s *Store) SystemCredsFile() string { return s.path("users", "sys.creds") }

// CloudCredsFile is the creds file of the default cloud user.
func (s *Store) CloudCredsFile() string { return s.path("users", "cloud.creds") }

// Init creates a new store in dir: operator, system and CLOUD accounts,
// their users, the CA and the hub certificate. The store is built in a
// temporary directory and renamed into place, so a failed init leaves
// nothing behind. dir must not exist or be empty.
func Init(dir string, opts InitOptions) (*Store, error) {
	if err := opts.Fabric.Validate(); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, "fabric.json")); err == nil {
			return nil, fmt.Errorf("init %s: %w", dir, ErrStoreExists)
		}
		return nil, fmt.Errorf("init %s: directory is not empty", dir)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, dirMode); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".init-*")
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	s := &Store{dir: tmp, fabric: opts.Fabric}
	if err := s.create(); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	_ = os.Remove(dir) // empty or absent, checked above
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	s.dir = dir
	return s, nil
}

// Open opens an existing store.
func Open(dir string) (*Store, error) {
	data, err := os.ReadFile(filepath.Join(dir, "fabric.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open store %s: %w (run: tether init --dir %s)", dir, ErrNoStore, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{dir: dir}
	if err := json.Unmarshal(data, &s.fabric); err != nil {
		return nil, fmt.Errorf("open store %s: fabric.json: %w", dir, err)
	}
	return s, nil
}

// OpenOrInit opens the store in dir, creating it first when absent.
func OpenOrInit(dir string, opts InitOptions) (*Store, error) {
	s, err := Open(dir)
	if errors.Is(err, ErrNoStore) {
		return Init(dir, opts)
	}
	return s, err
}

// Validate reports every problem in f, each naming its field.
func (f Fabric) Validate() error {
	var errs []error
	if len(f.HubURLs) == 0 {
		errs = append(errs, errors.New("hub_urls: at least one tls://host:port URL is required"))
	}
	for i, u := range f.HubURLs {
		if !strings.HasPrefix(u, "tls://") {
			errs = append(errs, fmt.Errorf("hub_urls[%d] %q: want a tls://host:port URL", i, u))
		}
	}
	for i, u := range f.WebsocketURLs {
		if !strings.HasPrefix(u, "wss://") {
			errs = append(errs, fmt.Errorf("websocket_urls[%d] %q: want a wss://host:port URL", i, u))
		}
	}
	if len(f.HubHosts) == 0 {
		errs = append(errs, errors.New("hub_hosts: at least one DNS name or IP for the hub certificate is required"))
	}
	return errors.Join(errs...)
}

func (s *Store) create() error {
	for _, d := range []string{"operator", "accounts", "users", "edges", "pki"} {
		if err := os.MkdirAll(s.path(d), dirMode); err != nil {
			return err
		}
	}
	if err := os.Chmod(s.dir, dirMode); err != nil {
		return err
	}
	fab, err := json.MarshalIndent(s.fabric, "", "  ")
	if err != nil {
		return err
	}
	if err := securefile.Write(s.path("fabric.json"), append(fab, '\n'), publicMode); err != nil {
		return err
	}
	if err := s.createPKI(); err != nil {
		return err
	}
	return s.createOperator()
}

func (s *Store) createPKI() error {
	ca, caKey, err := pki.NewCA("Tether fabric CA", caValidity)
	if err != nil {
		return err
	}
	cert, key, err := ca.Issue("tether-hub", s.fabric.HubHosts, certValidity)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		data []byte
		mode fs.FileMode
	}{
		{s.CAFile(), ca.PEM, publicMode},
		{s.path("pki", "ca-key.pem"), caKey, secretMode},
		{s.HubCertFile(), cert, publicMode},
		{s.HubKeyFile(), key, secretMode},
	} {
		if err := securefile.Write(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) createOperator() error {
	okp, err := nkeys.CreateOperator()
	if err != nil {
		return err
	}
	skp, err := nkeys.CreateOperator()
	if err != nil {
		return err
	}
	opub, _ := okp.PublicKey()
	spub, _ := skp.PublicKey()
	if err := writeSeed(s.path("operator", "operator.nk"), okp); err != nil {
		return err
	}
	if err := writeSeed(s.path("operator", "signing.nk"), skp); err != nil {
		return err
	}

	sysPub, err := s.createAccount(contract.SystemAccountName, skp, func(*jwt.AccountClaims) {})
	if err != nil {
		return err
	}
	svcPub, _, err := s.ensureServiceAccount(skp)
	if err != nil {
		return err
	}
	cloudPub, err := s.createAccount(contract.CloudAccountName, skp, func(ac *jwt.AccountClaims) {
		ac.Exports = cloudExports()
		ac.Imports = cloudImports(svcPub)
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
			MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit,
		}
	})
	if err != nil {
		return err
	}
	_ = cloudPub
	if _, err := s.linkServiceAccount(skp); err != nil {
		return err
	}

	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "tether"
	oc.SigningKeys.Add(spub)
	oc.StrictSigningKeyUsage = true
	oc.SystemAccount = sysPub
	ojwt, err := oc.Encode(okp)
	if err != nil {
		return fmt.Errorf("encode operator: %w", err)
	}
	if err := securefile.Write(s.path("operator", "operator.jwt"), []byte(ojwt), publicMode); err != nil {
		return err
	}

	if err := s.writeUser(contract.SystemAccountName, "sys", jwt.Permissions{}, nil, s.SystemCredsFile()); err != nil {
		return err
	}
	return s.writeUser(contract.CloudAccountName, "cloud", jwt.Permissions{}, nil, s.CloudCredsFile())
}

// createAccount makes an account with an identity key and a signing key,
// signed by the operator signing key, and returns its public key.
func (s *Store) createAccount(name string, operatorSigner nkeys.KeyPair, configure func(*jwt.AccountClaims)) (string, error) {
	akp, err := nkeys.CreateAccount()
	if err != nil {
		return "", err
	}
	skp, err := nkeys.CreateAccount()
	if err != nil {
		return "", err
	}
	apub, _ := akp.PublicKey()
	spub, _ := skp.PublicKey()
	dir := s.path("accounts", name)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return "", err
	}
	if err := writeSeed(filepath.Join(dir, "account.nk"), akp); err != nil {
		return "", err
	}
	if err := writeSeed(filepath.Join(dir, "signing.nk"), skp); err != nil {
		return "", err
	}
	ac := jwt.NewAccountClaims(apub)
	ac.Name = name
	ac.SigningKeys.Add(spub)
	configure(ac)
	ajwt, err := ac.Encode(operatorSigner)
	if err != nil {
		return "", fmt.Errorf("encode account %s: %w", name, err)
	}
	if err := securefile.Write(filepath.Join(dir, "account.jwt"), []byte(ajwt), publicMode); err != nil {
		return "", err
	}
	return apub, nil
}

func writeSeed(path string, kp nkeys.KeyPair) error {
	seed, err := kp.Seed()
	if err != nil {
		return err
	}
	return securefile.Write(path, seed, secretMode)
}

func (s *Store) readKey(parts ...string) (nkeys.KeyPair, error) {
	path := s.path(parts...)
	seed, err := securefile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	return kp, nil
}

// OperatorJWT returns the operator JWT.
func (s *Store) OperatorJWT() (string, error) {
	data, err := os.ReadFile(s.path("operator", "operator.jwt"))
	if err != nil {
		return "", fmt.Errorf("read operator JWT: %w", err)
	}
	return string(data), nil
}

// Account is an account's name, public key and JWT.
type Account struct {
	Name string
	Pub  string
	JWT  string
}

// Account returns the named account.
func (s *Store) Account(name string) (Account, error) {
	path := s.path("accounts", name, "account.jwt")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Account{}, fmt.Errorf("account %s: %w", name, fs.ErrNotExist)
	}
	if err != nil {
		return Account{}, fmt.Errorf("account %s: %w", name, err)
	}
	ac, err := jwt.DecodeAccountClaims(string(data))
	if err != nil {
		return Account{}, fmt.Errorf("decode %s: %w", path, err)
	}
	return Account{Name: name, Pub: ac.Subject, JWT: string(data)}, nil
}

// Accounts returns every account in the store, sorted by name.
func (s *Store) Accounts() ([]Account, error) {
	entries, err := os.ReadDir(s.path("accounts"))
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	var out []Account
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		a, err := s.Account(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// IssueUser creates a user in the named account, signed by the account's
// signing key, and returns its creds file content. A zero expires means the
// user does not expire; connTypes limits how it may connect (nil: any).
func (s *Store) IssueUser(account, user string, perms jwt.Permissions, connTypes jwt.StringList, expires time.Time) ([]byte, error) {
	acc, err := s.Account(account)
	if err != nil {
		return nil, err
	}
	skp, err := s.readKey("accounts", account, "signing.nk")
	if err != nil {
		return nil, err
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	uc := jwt.NewUserClaims(upub)
	uc.Name = user
	uc.IssuerAccount = acc.Pub
	uc.Permissions = perms
	uc.AllowedConnectionTypes = connTypes
	if !expires.IsZero() {
		uc.Expires = expires.Unix()
	}
	ujwt, err := uc.Encode(skp)
	if err != nil {
		return nil, fmt.Errorf("encode user %s: %w", user, err)
	}
	return jwt.FormatUserConfig(ujwt, useed)
}

func (s *Store) writeUser(account, user string, perms jwt.Permissions, connTypes jwt.StringList, path string) error {
	creds, err := s.IssueUser(account, user, perms, connTypes, time.Time{})
	if err != nil {
		return err
	}
	return securefile.Write(path, creds, secretMode)
}
