package accounts

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/internal/securefile"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Init(filepath.Join(t.TempDir(), "store"), DefaultInitOptions())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInitModesAndTrust(t *testing.T) {
	s := newStore(t)
	fi, err := os.Stat(s.Dir())
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("store dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	secrets := []string{"operator/operator.nk", "operator/signing.nk", "accounts/SYS/account.nk",
		"accounts/CLOUD/signing.nk", "users/sys.creds", "users/cloud.creds", "pki/ca-key.pem", "pki/hub-key.pem"}
	for _, p := range secrets {
		fi, err := os.Stat(filepath.Join(s.Dir(), p))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", p, fi.Mode().Perm(), err)
		}
	}
	ojwt, err := s.OperatorJWT()
	if err != nil {
		t.Fatal(err)
	}
	oc, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	if !oc.StrictSigningKeyUsage || len(oc.SigningKeys) != 1 {
		t.Errorf("operator: strict=%v signing keys=%d, want strict with one signing key", oc.StrictSigningKeyUsage, len(oc.SigningKeys))
	}
	sys, err := s.Account(contract.SystemAccountName)
	if err != nil || oc.SystemAccount != sys.Pub {
		t.Errorf("operator system account %q, SYS %q (%v)", oc.SystemAccount, sys.Pub, err)
	}
	for _, a := range []string{contract.SystemAccountName, contract.CloudAccountName} {
		acc, err := s.Account(a)
		if err != nil {
			t.Fatal(err)
		}
		ac, _ := jwt.DecodeAccountClaims(acc.JWT)
		if !oc.DidSign(ac) || ac.Issuer == oc.Subject {
			t.Errorf("account %s must be signed by the operator signing key, issuer %s", a, ac.Issuer)
		}
	}
}

func TestInitRefusesExistingAndLeavesNothingOnError(t *testing.T) {
	s := newStore(t)
	if _, err := Init(s.Dir(), DefaultInitOptions()); !errors.Is(err, ErrStoreExists) {
		t.Errorf("second init = %v, want ErrStoreExists", err)
	}
	dir := filepath.Join(t.TempDir(), "bad")
	bad := DefaultInitOptions()
	bad.HubURLs = []string{"http://hub:7422"}
	_, err := Init(dir, bad)
	if err == nil || !strings.Contains(err.Error(), "hub_urls[0]") {
		t.Errorf("init with http URL = %v, want an error naming hub_urls[0]", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed init left %s behind", dir)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 0 {
		t.Errorf("failed init left files: %v", entries)
	}
}

func TestAddEdge(t *testing.T) {
	s := newStore(t)
	cloudBefore, _ := s.Account(contract.CloudAccountName)
	e, err := s.AddEdge("plant-7")
	if err != nil {
		t.Fatal(err)
	}
	if e.Account.Name != "EDGE_plant-7" {
		t.Errorf("account name %q", e.Account.Name)
	}
	ac, err := jwt.DecodeAccountClaims(e.Account.JWT)
	if err != nil {
		t.Fatal(err)
	}
	if len(ac.Imports) != len(edgeImports("plant-7", "A", "S")) || ac.Limits.LeafNodeConn != edgeLeafConns {
		t.Errorf("edge account imports=%d leaf limit=%d", len(ac.Imports), ac.Limits.LeafNodeConn)
	}
	if _, err := s.AddEdge("plant-7"); !errors.Is(err, ErrEdgeExists) {
		t.Errorf("second add = %v, want ErrEdgeExists", err)
	}
	cloudAfter, _ := s.Account(contract.CloudAccountName)
	if cloudAfter.JWT != cloudBefore.JWT {
		t.Error("adding an edge changed the CLOUD account JWT")
	}
	names, _ := s.Edges()
	if len(names) != 1 || names[0] != "plant-7" {
		t.Errorf("Edges() = %v", names)
	}
	b, err := s.Bundle("plant-7")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "b.bundle")
	if err := sitefile.WriteBundle(path, b); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("bundle mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := sitefile.LoadBundle(path); err != nil {
		t.Errorf("LoadBundle: %v", err)
	}
	// Not a search for "SU": random public keys contain it about one run
	// in twenty.
	ujwt, _ := jwt.ParseDecoratedJWT([]byte(b.Creds))
	ukp, _ := jwt.ParseDecoratedUserNKey([]byte(b.Creds))
	seed, _ := ukp.Seed()
	if strings.Contains(b.String(), string(seed)) || strings.Contains(b.String(), ujwt) || strings.Contains(b.String(), "JWT") {
		t.Errorf("bundle String() leaks secrets: %s", b)
	}
}

func TestLeafUsersAreScoped(t *testing.T) {
	s := newStore(t)
	e, err := s.AddEdge("plant-7")
	if err != nil {
		t.Fatal(err)
	}
	ac, _ := jwt.DecodeAccountClaims(e.Account.JWT)
	var scope *jwt.UserScope
	for k := range ac.SigningKeys {
		if sc, ok := ac.SigningKeys.GetScope(k); ok && sc != nil {
			scope = sc.(*jwt.UserScope)
		}
	}
	if scope == nil || scope.Role != LeafRole {
		t.Fatalf("edge account has no scoped %q signing key: %v", LeafRole, ac.SigningKeys)
	}
	if !reflect.DeepEqual(scope.Template.Permissions, contract.LeafPermissions()) {
		t.Errorf("scope template permissions = %+v, want contract.LeafPermissions()", scope.Template.Permissions)
	}
	if ac.Limits.Payload != edgeMaxPayload || ac.Limits.JetStreamLimits.DiskStorage != 0 {
		t.Errorf("edge limits payload=%d js disk=%d, want %d and no JetStream", ac.Limits.Payload, ac.Limits.JetStreamLimits.DiskStorage, edgeMaxPayload)
	}
	if fi, err := os.Stat(s.leafSignerFile("plant-7")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("leaf signing key: %v %v, want mode 0600", fi, err)
	}
	b, _ := s.Bundle("plant-7")
	ujwt, err := jwt.ParseDecoratedJWT([]byte(b.Creds))
	if err != nil {
		t.Fatal(err)
	}
	uc, _ := jwt.DecodeUserClaims(ujwt)
	if uc.Issuer != scope.Key || !uc.HasEmptyPermissions() {
		t.Errorf("leaf user issuer %s (scope %s), empty perms %v; want signed by the scoped key with no own permissions", uc.Issuer, scope.Key, uc.HasEmptyPermissions())
	}
	if cur, _ := s.LeafUser("plant-7"); cur != uc.Subject {
		t.Errorf("LeafUser = %s, want %s", cur, uc.Subject)
	}
	if _, err := s.IssueLeafUser("plant-7", e.Account.Pub, time.Time{}); err == nil || !strings.Contains(err.Error(), "not a user public key") {
		t.Errorf("IssueLeafUser(account key) = %v, want 'not a user public key'", err)
	}
}

func TestAddEdgeRejectsBadNames(t *testing.T) {
	s := newStore(t)
	for _, name := range []string{"", "Plant-7", "plant_7", "-x", "x-", "a.b", strings.Repeat("a", 64)} {
		if _, err := s.AddEdge(name); !errors.Is(err, contract.ErrInvalidEdgeName) {
			t.Errorf("AddEdge(%q) = %v, want ErrInvalidEdgeName", name, err)
		}
	}
	if names, _ := s.Edges(); len(names) != 0 {
		t.Errorf("bad names left edges behind: %v", names)
	}
	accs, _ := s.Accounts()
	if len(accs) != 3 { // SYS, CLOUD, SVC
		t.Errorf("bad names left accounts behind: %d accounts", len(accs))
	}
}

func TestLoadBundleErrors(t *testing.T) {
	s := newStore(t)
	if _, err := s.AddEdge("plant-7"); err != nil {
		t.Fatal(err)
	}
	good, _ := s.Bundle("plant-7")
	dir := t.TempDir()
	write := func(name string, data []byte, mode fs.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	gp := filepath.Join(dir, "good")
	if err := sitefile.WriteBundle(gp, good); err != nil {
		t.Fatal(err)
	}
	gdata, _ := os.ReadFile(gp)
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"world readable", write("open", gdata, 0o644), []string{"open", "0600", "chmod 600"}},
		{"not json", write("garbage", []byte("hello"), 0o600), []string{"garbage", "not a tether bundle"}},
		{"missing creds", write("nocreds", []byte(strings.Replace(string(gdata), `"creds"`, `"creds_x"`, 1)), 0o600), []string{"nocreds", "creds_x"}},
		{"bad fields", write("bad", []byte(`{"version":9,"edge":"Bad","hub_urls":["http://x"],"ca":"","creds":""}`), 0o600),
			[]string{"version: got 9", "edge:", "hub_urls[0]", "ca:", "creds:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sitefile.LoadBundle(tc.path)
			if err == nil {
				t.Fatal("LoadBundle succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := securefile.Read(filepath.Join(dir, "open")); !errors.Is(err, securefile.ErrTooOpen) {
		t.Errorf("securefile.Read of 0644 = %v, want ErrTooOpen", err)
	}
}

func TestExportHub(t *testing.T) {
	s := newStore(t)
	for _, e := range []string{"plant-7", "plant-8"} {
		if _, err := s.AddEdge(e); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "hub-store")
	exp, err := s.ExportHub(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Files) == 0 || len(exp.Removed) != 0 {
		t.Errorf("first export: %d files, %d removed; want files and nothing removed", len(exp.Files), len(exp.Removed))
	}
	// What may mint identities or certificates beyond an edge's leaf
	// users never leaves the store.
	for _, banned := range []string{"operator/operator.nk", "operator/signing.nk", "pki/ca-key.pem", "users/sys.creds",
		"accounts/CLOUD/account.nk", "accounts/CLOUD/signing.nk", "accounts/EDGE_plant-7/signing.nk",
		"accounts/EDGE_plant-7/account.nk", "edges/plant-7/leaf.creds"} {
		if _, err := os.Stat(filepath.Join(dir, banned)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("export holds %s (%v)", banned, err)
		}
	}
	for _, secret := range []string{"pki/hub-key.pem", "users/cloud.creds", "accounts/EDGE_plant-7/leaf-signing.nk"} {
		if fi, err := os.Stat(filepath.Join(dir, secret)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("export %s: %v %v, want mode 0600", secret, fi, err)
		}
	}
	// The export opens as a store with the same edges and accounts.
	hs, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if names, _ := hs.Edges(); len(names) != 2 {
		t.Errorf("export's edges = %v, want plant-7 and plant-8", names)
	}
	if _, err := hs.SignLeafUser("plant-7", mustUserPub(t), time.Time{}); err != nil {
		t.Errorf("export cannot sign a leaf user (the registrar's job): %v", err)
	}
	// Removing an edge and exporting again removes it from the export.
	if err := s.RemoveEdge("plant-8"); err != nil {
		t.Fatal(err)
	}
	exp, err = s.ExportHub(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Removed) == 0 {
		t.Error("second export removed nothing")
	}
	if _, err := os.Stat(filepath.Join(dir, "edges", "plant-8")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("removed edge still in the export: %v", err)
	}
	if _, err := s.ExportHub(filepath.Join(s.Dir(), "x")); err == nil {
		t.Error("export into the store itself was accepted")
	}
}

func mustUserPub(t *testing.T) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return pub
}

// TestUpgrade: a store whose CLOUD exports and edge account predate this
// version (no exports beyond telemetry, no imports, no scoped key) is
// brought up to the contract, and a second upgrade changes nothing.
func TestUpgrade(t *testing.T) {
	s := newStore(t)
	if _, err := s.AddEdge("plant-7"); err != nil {
		t.Fatal(err)
	}
	signer, err := s.readKey("operator", "signing.nk")
	if err != nil {
		t.Fatal(err)
	}
	age := func(name string, edit func(*jwt.AccountClaims)) {
		acc, _ := s.Account(name)
		ac, _ := jwt.DecodeAccountClaims(acc.JWT)
		edit(ac)
		ajwt, err := ac.Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.Dir(), "accounts", name, "account.jwt"), []byte(ajwt), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	age(contract.CloudAccountName, func(ac *jwt.AccountClaims) { ac.Exports = ac.Exports[:1] })
	age(contract.EdgeAccountName("plant-7"), func(ac *jwt.AccountClaims) {
		ac.Imports = ac.Imports[:1]
		ac.SigningKeys = jwt.SigningKeys{}
	})
	_ = os.Remove(s.leafSignerFile("plant-7"))

	changed, err := s.Upgrade()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(changed, []string{contract.CloudAccountName, contract.EdgeAccountName("plant-7")}) {
		t.Errorf("Upgrade changed %v, want CLOUD and EDGE_plant-7", changed)
	}
	cloud, _ := s.Account(contract.CloudAccountName)
	cc, _ := jwt.DecodeAccountClaims(cloud.JWT)
	if len(cc.Exports) != len(cloudExports()) {
		t.Errorf("CLOUD exports after upgrade: %d, want %d", len(cc.Exports), len(cloudExports()))
	}
	e, _ := s.Edge("plant-7")
	ec, _ := jwt.DecodeAccountClaims(e.Account.JWT)
	if len(ec.Imports) != len(edgeImports("plant-7", cloud.Pub, "S")) || len(ec.SigningKeys) == 0 {
		t.Errorf("edge account after upgrade: %d imports, %d signing keys", len(ec.Imports), len(ec.SigningKeys))
	}
	if _, err := s.SignLeafUser("plant-7", mustUserPub(t), time.Time{}); err != nil {
		t.Errorf("no scoped leaf key after upgrade: %v", err)
	}
	if again, err := s.Upgrade(); err != nil || len(again) != 0 {
		t.Errorf("second Upgrade changed %v (%v), want nothing", again, err)
	}
}
