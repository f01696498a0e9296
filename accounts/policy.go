package accounts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tether-fabric/tether/contract"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/internal/securefile"
	"github.com/tether-fabric/tether/policy"
)

// The applied access policy lives in the store:
//
//	policy/applied.yaml              the policy in force (absent: policy.DefaultFile)
//	policy/gateways.json             its compiled service gateways, one per edge
//	policy/groups.json               its group telemetry streams and their members
//	policy/history.json              every applied version (PolicyVersion)
//	policy/history/<N>.yaml          the file of version N
//	accounts/CLOUD/scopes/<S>.nk     scoped signing seed of policy scope S (a
//	                                 role, or user.<name>); never deleted, so a
//	                                 rollback brings a removed role's users back

// MaxAccountJWT is the largest account JWT an apply writes: a claims update
// must fit in one message to the hubs (1 MiB by default), with room to
// spare.
const MaxAccountJWT = 1_000_000

// ErrNoPolicyVersion reports a rollback to a version the history lacks.
var ErrNoPolicyVersion = errors.New("no such policy version")

// PolicyVersion is one applied policy version.
type PolicyVersion struct {
	Version int       `json:"version"`
	Applied time.Time `json:"applied"`
	SHA256  string    `json:"sha256"`
	// Source is the file name it was applied from.
	Source string `json:"source"`
	// RollbackOf is the version this one restored (0: none).
	RollbackOf int `json:"rollback_of,omitempty"`
	// Accounts are the accounts whose JWT this version changed (or that an
	// earlier incomplete version still had to push).
	Accounts []string `json:"accounts"`
	// Pushed is true once every hub acknowledged every one of Accounts.
	Pushed bool `json:"pushed"`
}

// PolicyPlan is what applying a policy file would do.
type PolicyPlan struct {
	Source      string
	Data        []byte
	Policy      *policy.Policy
	Diagnostics policy.Diagnostics
	Facts       policy.Facts
	Output      *policy.Output
	Changes     []policy.Change
	// Changed are the accounts whose JWT the policy changes, sorted
	// (CLOUD, EDGE_<name>).
	Changed []string
	// Unpushed are accounts an earlier apply changed that not every hub
	// acknowledged: an apply pushes them again, so a re-apply converges.
	Unpushed []string
}

func (s *Store) policyPath(parts ...string) string {
	return s.path(append([]string{"policy"}, parts...)...)
}

func (s *Store) scopeFile(scope string) string {
	return s.path("accounts", contract.CloudAccountName, "scopes", strings.ReplaceAll(scope, ":", ".")+".nk")
}

// AppliedPolicy returns the policy file in force and its version (0 and
// policy.DefaultFile when none was applied).
func (s *Store) AppliedPolicy() ([]byte, int, error) {
	hist, err := s.PolicyHistory()
	if err != nil {
		return nil, 0, err
	}
	data, err := os.ReadFile(s.policyPath("applied.yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		return []byte(policy.DefaultFile), 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("applied policy: %w", err)
	}
	v := 0
	if len(hist) > 0 {
		v = hist[len(hist)-1].Version
	}
	return data, v, nil
}

// PolicyHistory returns every applied version, oldest first.
func (s *Store) PolicyHistory() ([]PolicyVersion, error) {
	data, err := os.ReadFile(s.policyPath("history.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("policy history: %w", err)
	}
	var h []PolicyVersion
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("policy history %s: %w", s.policyPath("history.json"), err)
	}
	return h, nil
}

// PolicyVersionFile returns the file of an applied version.
func (s *Store) PolicyVersionFile(version int) ([]byte, error) {
	data, err := os.ReadFile(s.policyPath("history", fmt.Sprintf("%d.yaml", version)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("policy version %d: %w (see 'tether policy history')", version, ErrNoPolicyVersion)
	}
	return data, err
}

// Gateways returns the service gateway configurations of the policy in
// force, one per edge (nil before any policy was applied).
func (s *Store) Gateways() ([]policy.Gateway, error) {
	return readPolicyJSON[policy.Gateway](s, "gateways.json", "gateways")
}

// GroupStreams returns the group streams of the policy in force (nil
// before any policy was applied, or when no grant names a group).
func (s *Store) GroupStreams() ([]policy.GroupStream, error) {
	return readPolicyJSON[policy.GroupStream](s, "groups.json", "group streams")
}

// readPolicyJSON reads a list the applied policy keeps in the store's
// policy directory (nil when the file does not exist).
func readPolicyJSON[T any](s *Store, file, what string) ([]T, error) {
	data, err := os.ReadFile(s.policyPath(file))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var out []T
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, s.policyPath(file), err)
	}
	return out, nil
}

// PolicyFacts gathers the public facts the compiler needs: the CLOUD and
// edge accounts' claims and the public keys of every scoped signing key
// the store holds, creating the keys p needs that do not exist yet.
func (s *Store) PolicyFacts(p *policy.Policy) (policy.Facts, error) {
	f := policy.Facts{Edges: map[string]*jwt.AccountClaims{}, ScopeKeys: map[string]string{}}
	cloud, err := s.Account(contract.CloudAccountName)
	if err != nil {
		return f, err
	}
	if f.Cloud, err = jwt.DecodeAccountClaims(cloud.JWT); err != nil {
		return f, fmt.Errorf("decode CLOUD account: %w", err)
	}
	edges, err := s.Edges()
	if err != nil {
		return f, err
	}
	for _, e := range edges {
		acc, err := s.Account(contract.EdgeAccountName(e))
		if err != nil {
			return f, err
		}
		if f.Edges[e], err = jwt.DecodeAccountClaims(acc.JWT); err != nil {
			return f, fmt.Errorf("decode account of edge %s: %w", e, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(s.scopeFile("x")), dirMode); err != nil {
		return f, err
	}
	for _, sc := range p.ScopeNames() {
		if _, err := os.Stat(s.scopeFile(sc)); errors.Is(err, fs.ErrNotExist) {
			kp, err := nkeys.CreateAccount()
			if err != nil {
				return f, err
			}
			if err := writeSeed(s.scopeFile(sc), kp); err != nil {
				return f, fmt.Errorf("scope %s: %w", sc, err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(filepath.Dir(s.scopeFile("x")), "*.nk"))
	if err != nil {
		return f, err
	}
	for _, file := range files {
		kp, err := s.readKey("accounts", contract.CloudAccountName, "scopes", filepath.Base(file))
		if err != nil {
			return f, err
		}
		pub, _ := kp.PublicKey()
		name := strings.TrimSuffix(filepath.Base(file), ".nk")
		if strings.HasPrefix(name, "user.") {
			name = "user:" + strings.TrimPrefix(name, "user.")
		}
		f.ScopeKeys[name] = pub
	}
	return f, nil
}

// PlanPolicy parses, validates and compiles a policy file over the store
// and says what applying it would change. A file with errors returns the
// plan (with its Diagnostics) and an error wrapping policy.ErrInvalid.
func (s *Store) PlanPolicy(source string, data []byte) (*PolicyPlan, error) {
	plan := &PolicyPlan{Source: source, Data: data}
	plan.Policy, plan.Diagnostics = policy.Parse(filepath.Base(source), data)
	if err := plan.Diagnostics.Err(); err != nil {
		return plan, err
	}
	var err error
	if plan.Facts, err = s.PolicyFacts(plan.Policy); err != nil {
		return plan, err
	}
	if plan.Output, err = policy.Compile(plan.Policy, plan.Facts); err != nil {
		return plan, err
	}
	if err := policy.Verify(plan.Policy, plan.Facts, plan.Output); err != nil {
		return plan, fmt.Errorf("compiled policy is wider than the file (a bug; nothing applied): %w", err)
	}
	gws, err := s.Gateways()
	if err != nil {
		return plan, err
	}
	groups, err := s.GroupStreams()
	if err != nil {
		return plan, err
	}
	plan.Changes = policy.Diff(plan.Facts, plan.Output, gws, groups)
	if !sameClaims(plan.Facts.Cloud, plan.Output.Cloud) {
		plan.Changed = append(plan.Changed, contract.CloudAccountName)
	}
	for _, e := range sortedEdgeNames(plan.Output.Edges) {
		if !sameClaims(plan.Facts.Edges[e], plan.Output.Edges[e]) {
			plan.Changed = append(plan.Changed, contract.EdgeAccountName(e))
		}
	}
	hist, err := s.PolicyHistory()
	if err != nil {
		return plan, err
	}
	if n := len(hist); n > 0 && !hist[n-1].Pushed {
		for _, a := range hist[n-1].Accounts {
			if !contains(plan.Changed, a) {
				plan.Unpushed = append(plan.Unpushed, a)
			}
		}
	}
	return plan, nil
}

func sortedEdgeNames(m map[string]*jwt.AccountClaims) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sameClaims compares claims without their issue time, id and issuer.
func sameClaims(a, b *jwt.AccountClaims) bool {
	norm := func(ac *jwt.AccountClaims) []byte {
		c := *ac
		c.IssuedAt, c.ID, c.Issuer = 0, "", ""
		data, _ := json.Marshal(&c)
		return data
	}
	return string(norm(a)) == string(norm(b))
}

// ApplyPolicy signs the plan's changed accounts with the operator signing
// key, writes them, the gateways and the file to the store, and records a
// new version, not yet pushed. It returns the version and the accounts to
// push: the changed ones and those an earlier apply did not get to every
// hub. Call MarkPolicyPushed once every hub acknowledged them all.
func (s *Store) ApplyPolicy(plan *PolicyPlan, rollbackOf int) (*PolicyVersion, []Account, error) {
	if plan.Output == nil {
		return nil, nil, fmt.Errorf("apply policy %s: %w", plan.Source, policy.ErrInvalid)
	}
	signed, err := s.signChanged(plan)
	if err != nil {
		return nil, nil, err
	}
	hist, err := s.PolicyHistory()
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(plan.Data)
	v := PolicyVersion{Version: 1, Applied: time.Now().UTC().Truncate(time.Second), SHA256: hex.EncodeToString(sum[:]),
		Source: plan.Source, RollbackOf: rollbackOf, Accounts: append(append([]string{}, plan.Changed...), plan.Unpushed...)}
	sort.Strings(v.Accounts)
	if n := len(hist); n > 0 {
		v.Version = hist[n-1].Version + 1
	}
	v.Pushed = len(v.Accounts) == 0
	gws, err := json.MarshalIndent(plan.Output.Gateways, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	groups, err := json.MarshalIndent(plan.Output.Groups, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(s.policyPath("history"), dirMode); err != nil {
		return nil, nil, err
	}
	// The version is recorded (not pushed) before any account is written:
	// if the apply stops half way, the next apply pushes its accounts.
	if err := securefile.Write(s.policyPath("history", fmt.Sprintf("%d.yaml", v.Version)), plan.Data, publicMode); err != nil {
		return nil, nil, fmt.Errorf("apply policy: %w", err)
	}
	if err := s.writeHistory(append(hist, v)); err != nil {
		return nil, nil, err
	}
	if err := s.writeAccounts(plan.Changed, signed); err != nil {
		return nil, nil, err
	}
	for _, w := range []struct {
		path string
		data []byte
	}{
		{s.policyPath("gateways.json"), append(gws, '\n')},
		{s.policyPath("groups.json"), append(groups, '\n')},
		{s.policyPath("applied.yaml"), plan.Data},
	} {
		if err := securefile.Write(w.path, w.data, publicMode); err != nil {
			return nil, nil, fmt.Errorf("apply policy: %w", err)
		}
	}
	var push []Account
	for _, name := range v.Accounts {
		acc, err := s.Account(name)
		if err != nil {
			return nil, nil, err
		}
		push = append(push, acc)
	}
	return &v, push, nil
}

// signChanged signs the plan's changed accounts with the operator signing
// key; it fails, having written nothing, when one would not fit.
func (s *Store) signChanged(plan *PolicyPlan) (map[string]string, error) {
	signer, err := s.readKey("operator", "signing.nk")
	if err != nil {
		return nil, fmt.Errorf("apply policy: %w", err)
	}
	signed := map[string]string{}
	for _, name := range plan.Changed {
		ac := plan.Output.Cloud
		if name != contract.CloudAccountName {
			ac = plan.Output.Edges[contract.EdgeOfAccountName(name)]
		}
		ajwt, err := ac.Encode(signer)
		if err != nil {
			return nil, fmt.Errorf("apply policy: sign %s: %w", name, err)
		}
		if len(ajwt) > MaxAccountJWT {
			return nil, fmt.Errorf("apply policy: the %s account JWT would be %d B, more than the hubs take (%d B): grants naming many edges one by one list each edge's subjects; grant a group or \"*\" instead (nothing applied)", name, len(ajwt), MaxAccountJWT)
		}
		signed[name] = ajwt
	}
	return signed, nil
}

func (s *Store) writeAccounts(names []string, signed map[string]string) error {
	for _, name := range names {
		if err := securefile.Write(s.path("accounts", name, "account.jwt"), []byte(signed[name]), publicMode); err != nil {
			return fmt.Errorf("apply policy: %w", err)
		}
	}
	return nil
}

// restorePolicy re-signs the accounts whose JWT no longer says what the
// applied policy says (Upgrade rewrites accounts to the bare contract) and
// returns their names, to be pushed. Without an applied policy it does
// nothing.
func (s *Store) restorePolicy() ([]string, error) {
	if _, err := os.Stat(s.policyPath("applied.yaml")); err != nil {
		return nil, nil
	}
	data, _, err := s.AppliedPolicy()
	if err != nil {
		return nil, err
	}
	plan, err := s.PlanPolicy("applied.yaml", data)
	if err != nil {
		return nil, fmt.Errorf("restore the applied policy: %w", err)
	}
	signed, err := s.signChanged(plan)
	if err != nil {
		return nil, err
	}
	return plan.Changed, s.writeAccounts(plan.Changed, signed)
}

// MarkPolicyPushed records that every hub acknowledged version's accounts.
func (s *Store) MarkPolicyPushed(version int) error {
	hist, err := s.PolicyHistory()
	if err != nil {
		return err
	}
	for i := range hist {
		if hist[i].Version == version {
			hist[i].Pushed = true
			return s.writeHistory(hist)
		}
	}
	return fmt.Errorf("mark policy version %d pushed: %w", version, ErrNoPolicyVersion)
}

func (s *Store) writeHistory(h []PolicyVersion) error {
	data, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	return securefile.Write(s.policyPath("history.json"), append(data, '\n'), publicMode)
}

// policyScopeKey returns the scoped signing key a cloud user named name
// asking for role gets from the applied policy: the role's, or for a user
// of the policy file its own or its role's. ok is false when the applied
// policy has none (then the built-in roles apply).
func (s *Store) policyScopeKey(name, role string) (kp nkeys.KeyPair, scope string, ok bool, err error) {
	data, _, err := s.AppliedPolicy()
	if err != nil {
		return nil, "", false, err
	}
	if _, err := os.Stat(s.policyPath("applied.yaml")); err != nil {
		return nil, "", false, nil // the default is not in force until applied
	}
	p, diags := policy.Parse("applied.yaml", data)
	if diags.Err() != nil {
		return nil, "", false, fmt.Errorf("applied policy: %w", diags.Err())
	}
	for _, u := range p.Users {
		if u.Name == name && (role == "" || role == u.Role.Name) {
			scope = "user:" + name
			if u.Role.Name != "" {
				scope = u.Role.Name
			}
		}
	}
	for _, r := range p.Roles {
		if scope == "" && r.Name == role {
			scope = role
		}
	}
	if scope == "" {
		return nil, "", false, nil
	}
	kp, err = s.readKey("accounts", contract.CloudAccountName, "scopes", filepath.Base(s.scopeFile(scope)))
	if err != nil {
		return nil, "", false, fmt.Errorf("scope %s: %w", scope, err)
	}
	return kp, scope, true, nil
}

// PolicyRoles returns the roles of the applied policy (nil when none was
// applied).
func (s *Store) PolicyRoles() ([]string, error) {
	if _, err := os.Stat(s.policyPath("applied.yaml")); err != nil {
		return nil, nil
	}
	data, _, err := s.AppliedPolicy()
	if err != nil {
		return nil, err
	}
	p, _ := policy.Parse("applied.yaml", data)
	var out []string
	for _, r := range p.Roles {
		out = append(out, r.Name)
	}
	sort.Strings(out)
	return out, nil
}

// issueScopedCloudUser signs a CLOUD user with a scoped signing key: it
// carries no permissions of its own, the hubs apply the scope's template,
// so re-signing the CLOUD account with a new template changes what the
// user may do while it stays connected.
func (s *Store) issueScopedCloudUser(user string, signer nkeys.KeyPair, expires time.Time) ([]byte, error) {
	acc, err := s.Account(contract.CloudAccountName)
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
	uc.UserPermissionLimits = jwt.UserPermissionLimits{}
	if !expires.IsZero() {
		uc.Expires = expires.Unix()
	}
	ujwt, err := uc.Encode(signer)
	if err != nil {
		return nil, fmt.Errorf("encode user %s: %w", user, err)
	}
	return jwt.FormatUserConfig(ujwt, useed)
}

// KnownHubs returns the hub names that answered an earlier policy push
// (policy/hubs.json): a hub among them that does not answer now is missing,
// and the push is incomplete.
func (s *Store) KnownHubs() ([]string, error) {
	data, err := os.ReadFile(s.policyPath("hubs.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("known hubs: %w", err)
	}
	var hubs []string
	if err := json.Unmarshal(data, &hubs); err != nil {
		return nil, fmt.Errorf("known hubs %s: %w", s.policyPath("hubs.json"), err)
	}
	return hubs, nil
}

// RecordHubs adds hubs to the known hubs.
func (s *Store) RecordHubs(hubs []string) error {
	known, err := s.KnownHubs()
	if err != nil {
		return err
	}
	for _, h := range hubs {
		if !contains(known, h) {
			known = append(known, h)
		}
	}
	sort.Strings(known)
	data, err := json.Marshal(known)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.policyPath(), dirMode); err != nil {
		return err
	}
	return securefile.Write(s.policyPath("hubs.json"), append(data, '\n'), publicMode)
}
