package accounts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
	"github.com/tether-fabric/tether/internal/sitefile"
)

// TestEnrollTokenRoundTrip: a token written to a file reads back equal; its
// enroll user is an unscoped user of the edge's account, limited to the
// enroll permissions and leaf connections, expiring with the token.
func TestEnrollTokenRoundTrip(t *testing.T) {
	s := newStore(t)
	e, err := s.AddEdgeForEnrollment("plant-7")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.NewEnrollToken("plant-7", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "plant-7.token")
	if err := sitefile.WriteEnrollToken(path, tok); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("token mode %04o, want 0600", fi.Mode().Perm())
	}
	got, err := sitefile.LoadEnrollToken(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.JWT != tok.JWT || got.Seed != tok.Seed || !got.Expires.Equal(tok.Expires) || got.Account != e.Account.Pub {
		t.Errorf("token read back differs: got %v, want %v", got, tok)
	}
	uc, err := jwt.DecodeUserClaims(tok.JWT)
	if err != nil {
		t.Fatal(err)
	}
	if uc.IssuerAccount != e.Account.Pub || uc.Expires != tok.Expires.Unix() {
		t.Errorf("enroll user: issuer account %s expires %d, want %s %d", uc.IssuerAccount, uc.Expires, e.Account.Pub, tok.Expires.Unix())
	}
	ac, _ := jwt.DecodeAccountClaims(e.Account.JWT)
	if sc, listed := ac.SigningKeys.GetScope(uc.Issuer); !listed || sc != nil {
		t.Errorf("enroll user signed by %s (scope %v); want the account's unscoped signing key", uc.Issuer, sc)
	}
	if !equalLists(uc.Pub.Allow, contract.EnrollPermissions().Pub.Allow) || !equalLists(uc.Sub.Allow, contract.EnrollPermissions().Sub.Allow) ||
		!equalLists(uc.AllowedConnectionTypes, contract.LeafConnectionTypes()) {
		t.Errorf("enroll user permissions %+v conn types %v", uc.Permissions, uc.AllowedConnectionTypes)
	}
	if strings.Contains(tok.String(), tok.Seed) {
		t.Error("token's String shows its seed")
	}
}

func equalLists(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// TestEnrolledEdgeHasNoStoredKey: an edge made for enrollment has no
// leaf.creds in the store and no bundle; nor has a store-made edge once a
// device-born key became its current leaf user.
func TestEnrolledEdgeHasNoStoredKey(t *testing.T) {
	s := newStore(t)
	if _, err := s.AddEdgeForEnrollment("dev-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "edges", "dev-1", "leaf.creds")); !os.IsNotExist(err) {
		t.Errorf("leaf.creds of an enrollment edge: %v, want none", err)
	}
	if _, err := s.Bundle("dev-1"); !errors.Is(err, ErrKeyOnDevice) {
		t.Errorf("Bundle of an enrollment edge: %v, want %v", err, ErrKeyOnDevice)
	}

	if _, err := s.AddEdge("old-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bundle("old-1"); err != nil {
		t.Fatalf("bundle of a store-made edge: %v", err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	if _, err := s.IssueLeafUser("old-1", upub, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bundle("old-1"); !errors.Is(err, ErrKeyOnDevice) {
		t.Errorf("Bundle after a device enrolled: %v, want %v", err, ErrKeyOnDevice)
	}
}

func TestEnrollTokenErrors(t *testing.T) {
	s := newStore(t)
	if _, err := s.AddEdgeForEnrollment("plant-7"); err != nil {
		t.Fatal(err)
	}
	good, err := s.NewEnrollToken("plant-7", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.AddEdgeForEnrollment("plant-8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*sitefile.EnrollToken)
		want   string
	}{
		{"version", func(k *sitefile.EnrollToken) { k.Version = 2 }, "version: got 2, want 1"},
		{"edge", func(k *sitefile.EnrollToken) { k.Edge = "Bad" }, "edge: invalid edge name"},
		{"no hubs", func(k *sitefile.EnrollToken) { k.HubURLs = nil }, "hub_urls: at least one tls:// URL"},
		{"bad url", func(k *sitefile.EnrollToken) { k.HubURLs = []string{"http://h:1"} }, `hub_urls[0]: "http://h:1": want tls://host:port`},
		{"ca", func(k *sitefile.EnrollToken) { k.CA = "x" }, "ca: "},
		{"jwt", func(k *sitefile.EnrollToken) { k.JWT = "x" }, "jwt: "},
		{"other account", func(k *sitefile.EnrollToken) { k.Account = other.Account.Pub; k.Domain = "edge-plant-7" }, "jwt: user belongs to account"},
		{"seed", func(k *sitefile.EnrollToken) { kp, _ := nkeys.CreateUser(); sd, _ := kp.Seed(); k.Seed = string(sd) }, "seed: belongs to"},
		{"expires", func(k *sitefile.EnrollToken) { k.Expires = time.Time{} }, "expires: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := *good
			tc.mutate(&k)
			text, err := k.Encode()
			if err != nil {
				t.Fatal(err)
			}
			_, err = sitefile.ParseEnrollToken(text)
			if !errors.Is(err, sitefile.ErrBadToken) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %v containing %q", err, sitefile.ErrBadToken, tc.want)
			}
		})
	}
	for _, text := range []string{"not base64!", "bm90IGpzb24", "eyJob3N0IjoxfQ"} { // "not json", {"host":1}
		if _, err := sitefile.ParseEnrollToken([]byte(text)); !errors.Is(err, sitefile.ErrBadToken) {
			t.Errorf("sitefile.ParseEnrollToken(%q) = %v, want %v", text, err, sitefile.ErrBadToken)
		}
	}
	path := filepath.Join(t.TempDir(), "t.token")
	if err := sitefile.WriteEnrollToken(path, good); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o640)
	if _, err := sitefile.LoadEnrollToken(path, nil); !errors.Is(err, securefile.ErrTooOpen) || !strings.Contains(err.Error(), path) {
		t.Errorf("group-readable token: %v, want %v naming the file", err, securefile.ErrTooOpen)
	}
	if _, err := s.NewEnrollToken("plant-7", contract.MaxEnrollTTL+time.Second); err == nil {
		t.Error("token longer than contract.MaxEnrollTTL accepted")
	}
	if _, err := s.RevokeEdge("plant-7"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewEnrollToken("plant-7", time.Hour); !errors.Is(err, ErrEdgeRevoked) {
		t.Errorf("token for a revoked edge: %v, want %v", err, ErrEdgeRevoked)
	}
}

// TestEnrollRequestVerify: both signatures must be over this edge, this
// token and this new key.
func TestEnrollRequestVerify(t *testing.T) {
	s := newStore(t)
	if _, err := s.AddEdgeForEnrollment("plant-7"); err != nil {
		t.Fatal(err)
	}
	tok, err := s.NewEnrollToken("plant-7", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	enrollPub, _ := tok.EnrollUser()
	ukp, _ := nkeys.CreateUser()
	req, err := tok.NewEnrollRequest(ukp)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Verify("plant-7", enrollPub); err != nil {
		t.Fatalf("good request refused: %v", err)
	}
	other, _ := nkeys.CreateUser()
	otherPub, _ := other.PublicKey()
	for _, tc := range []struct {
		name            string
		edge, enrollPub string
		mutate          func(*contract.EnrollRequest)
		want            string
	}{
		{"other edge", "plant-8", enrollPub, func(*contract.EnrollRequest) {}, "proof of possession"},
		{"other token", "plant-7", otherPub, func(*contract.EnrollRequest) {}, "proof of possession"},
		{"swapped key", "plant-7", enrollPub, func(r *contract.EnrollRequest) { r.User = otherPub }, "proof of possession"},
		{"no token sig", "plant-7", enrollPub, func(r *contract.EnrollRequest) { r.TokenSig = r.UserSig }, "proof of holding the token"},
		{"not a user", "plant-7", enrollPub, func(r *contract.EnrollRequest) { r.User = tok.Account }, "not a user public key"},
		{"token key", "plant-7", enrollPub, func(r *contract.EnrollRequest) { r.User = enrollPub }, "must not be the token's key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := *req
			tc.mutate(&r)
			if err := r.Verify(tc.edge, tc.enrollPub); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestNoTokenForAccountWithoutEnrollImport: an edge account made before
// enrollment existed gets no token that could never be answered.
func TestNoTokenForAccountWithoutEnrollImport(t *testing.T) {
	s := newStore(t)
	e, err := s.AddEdgeForEnrollment("plant-7")
	if err != nil {
		t.Fatal(err)
	}
	ac, _ := jwt.DecodeAccountClaims(e.Account.JWT)
	var kept jwt.Imports
	for _, im := range ac.Imports {
		if im.Name != "enroll" {
			kept = append(kept, im)
		}
	}
	ac.Imports = kept
	signer, err := s.readKey("operator", "signing.nk")
	if err != nil {
		t.Fatal(err)
	}
	old, err := ac.Encode(signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := securefile.Write(filepath.Join(s.Dir(), "accounts", "EDGE_plant-7", "account.jwt"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewEnrollToken("plant-7", time.Hour); err == nil || !strings.Contains(err.Error(), "predates enrollment") {
		t.Errorf("token for an account without the enroll import: %v, want an error saying it predates enrollment", err)
	}
}
