package test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/policy"
)

// TestServiceRoleGrantAndMaxInFlight: a grant to a role lets a cloud user
// whose JWT is signed by that role's scoped signing key call, and nobody
// else; max_in_flight turns away the calls beyond it at once and nothing
// else fails.
func TestServiceRoleGrantAndMaxInFlight(t *testing.T) {
	f := startSvcFabric(t, policy.Gateway{Edge: "plant-7", Expose: []string{"slow"}, Grants: []policy.ServiceGrant{
		{Caller: policy.Principal{Kind: policy.PrincipalRole, Name: "operators"}, Service: "slow", Endpoint: "*", MaxInFlight: 2},
	}})
	// The CLOUD account gets a scoped signing key for role "operators"
	// (as the policy will give it), and a user signed by it.
	dir := f.store.Dir()
	opSeed, err := os.ReadFile(filepath.Join(dir, "operator", "signing.nk"))
	if err != nil {
		t.Fatal(err)
	}
	opKP, err := nkeys.FromSeed(opSeed)
	if err != nil {
		t.Fatal(err)
	}
	cloud, err := f.store.Account(contract.CloudAccountName)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := jwt.DecodeAccountClaims(cloud.JWT)
	if err != nil {
		t.Fatal(err)
	}
	roleKP, _ := nkeys.CreateAccount()
	rolePub, _ := roleKP.PublicKey()
	sc := jwt.NewUserScope()
	sc.Key, sc.Role = rolePub, "operators"
	sc.Template.Pub.Allow.Add("edges.*.svc.>")
	sc.Template.Sub.Allow.Add("_INBOX.>")
	ac.SigningKeys.AddScopedSigner(sc)
	ajwt, err := ac.Encode(opKP)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts", contract.CloudAccountName, "account.jwt"), []byte(ajwt), 0o644); err != nil {
		t.Fatal(err)
	}
	tethertest.PushAccount(t, f.store, contract.CloudAccountName, f.hub)
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	uc := jwt.NewUserClaims(upub)
	uc.Name, uc.IssuerAccount = "alice", cloud.Pub
	uc.UserPermissionLimits = jwt.UserPermissionLimits{} // scoped: the role key's template applies
	ujwt, err := uc.Encode(roleKP)
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := jwt.FormatUserConfig(ujwt, useed)
	credsFile := filepath.Join(t.TempDir(), "alice.creds")
	if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	alice := tethertest.Connect(t, f.hub.ClientURL(), append(cloudUserOptions(t, credsFile), nats.RootCAs(f.store.CAFile()))...)

	// A service that takes 500 ms, so calls overlap.
	nc := tethertest.Connect(t, f.edge.ClientURL())
	slow, err := micro.AddService(nc, micro.Config{Name: "slow", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	_ = slow.AddEndpoint("wait", micro.HandlerFunc(func(r micro.Request) {
		go func() {
			time.Sleep(500 * time.Millisecond) // the service's work, not synchronization
			_ = r.Respond([]byte("done"))
		}()
	}))
	subject := contract.CloudServiceSubject("plant-7", "slow", "wait")
	if _, code, _ := call(t, f.ops, svcMsg(subject, "")); code != contract.CodeDenied {
		t.Errorf("ops (no role): code %d, want %d", code, contract.CodeDenied)
	}
	if got, code, _ := call(t, alice, svcMsg(subject, "")); code != 0 || got != "done" {
		t.Fatalf("alice (role operators): %q code %d", got, code)
	}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, code, took := call(t, alice, svcMsg(subject, ""))
			if code == contract.CodeRateLimited && took > 400*time.Millisecond {
				code = -1 // turned away, but not at once
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[0] != 2 || codes[contract.CodeRateLimited] != 4 || len(codes) != 2 {
		t.Errorf("6 overlapping calls at max_in_flight 2: codes %v, want 2 ok and 4 turned away at once", codes)
	}
}
