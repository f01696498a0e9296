package policy

import (
	"crypto/sha256"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
)

// fixedKey returns a deterministic public key of kind for name, so golden
// files do not change between runs.
func fixedKey(t testing.TB, kind nkeys.PrefixByte, name string) string {
	t.Helper()
	seed := sha256.Sum256([]byte(name))
	kp, err := nkeys.FromRawSeed(kind, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return pub
}

// testFacts builds store facts the way 'tether init' and 'tether edge add'
// make accounts: CLOUD with the contract's exports and a plain signing key,
// one account per edge with the contract's imports and a leaf scope, and a
// scoped key for every scope the policy needs.
func testFacts(t testing.TB, p *Policy, edges ...string) Facts {
	t.Helper()
	cloudPub := fixedKey(t, nkeys.PrefixByteAccount, "CLOUD")
	cloud := jwt.NewAccountClaims(cloudPub)
	cloud.Name = "CLOUD"
	cloud.Exports = contract.CloudExports()
	cloud.SigningKeys.Add(fixedKey(t, nkeys.PrefixByteAccount, "CLOUD-signing"))
	f := Facts{Cloud: cloud, Edges: map[string]*jwt.AccountClaims{}, ScopeKeys: map[string]string{}}
	for _, e := range edges {
		ac := jwt.NewAccountClaims(fixedKey(t, nkeys.PrefixByteAccount, "EDGE_"+e))
		ac.Name = "EDGE_" + e
		ac.Imports = contract.EdgeImports(e, cloudPub)
		sc := jwt.NewUserScope()
		sc.Key = fixedKey(t, nkeys.PrefixByteAccount, "leaf-"+e)
		sc.Role = contract.LeafScopeRole
		sc.Template.Permissions = contract.LeafPermissions()
		sc.Template.AllowedConnectionTypes = contract.LeafConnectionTypes()
		ac.SigningKeys.AddScopedSigner(sc)
		f.Edges[e] = ac
	}
	if p != nil {
		for _, s := range p.ScopeNames() {
			f.ScopeKeys[s] = fixedKey(t, nkeys.PrefixByteAccount, "scope-"+s)
		}
	}
	return f
}
