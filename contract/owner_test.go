package contract

import (
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// TestCloudUsersOwnTheirRepliesAndConsumers: no permission of a cloud
// user other than an admin reaches another user's inbox or consumer: every
// inbox subscription is below its own prefix and every consumer subject
// names one of its own consumers (no wildcard, no legacy form).
func TestCloudUsersOwnTheirRepliesAndConsumers(t *testing.T) {
	const user = "dashboard"
	must := must(t)
	owned := map[string]bool{}
	for _, c := range CloudConsumerNames(user) {
		owned[c] = true
	}
	perms := map[string]jwt.Permissions{
		"reader narrowed":  CloudTelemetryReadPermissions(user, []string{"plant-7"}),
		"command base":     CloudCommandBasePermissions(user),
		"service call":     CloudServiceCallPermissions(user, []string{CloudServiceCallSubject("*", "echo")}),
		"commander --edge": must(CloudRolePermissions(user, RoleCommander, []string{"plant-7"})),
	}
	for _, r := range []string{RoleReader, RoleCommander} {
		perms[r] = must(CloudRolePermissions(user, r, nil))
	}
	for name, p := range perms {
		for _, s := range p.Sub.Allow {
			if strings.HasPrefix(s, "_INBOX") && s != CloudInbox(user) {
				t.Errorf("%s may subscribe %q, want only %q", name, s, CloudInbox(user))
			}
		}
		for _, s := range p.Pub.Allow {
			tok := strings.Split(s, ".")
			var consumer string
			switch {
			case strings.HasPrefix(s, "$JS.API.CONSUMER.") && len(tok) >= 5 && tok[3] == "MSG":
				consumer = tokenAt(tok, 6)
			case strings.HasPrefix(s, "$JS.API.CONSUMER."):
				if tok[3] == "DURABLE" || len(tok) < 6 {
					t.Errorf("%s may publish the legacy %q", name, s)
					continue
				}
				consumer = tok[5]
			case strings.HasPrefix(s, "$JS.ACK.") || strings.HasPrefix(s, "$JS.FC."):
				consumer = tokenAt(tok, 3)
			default:
				continue
			}
			if !owned[consumer] {
				t.Errorf("%s may publish %q: consumer %q is not one of %s's", name, s, consumer, user)
			}
		}
	}
	admin := must(CloudRolePermissions(user, RoleAdmin, nil))
	if len(admin.Sub.Allow)+len(admin.Pub.Allow)+len(admin.Sub.Deny)+len(admin.Pub.Deny) != 0 {
		t.Errorf("admin permissions %+v, want none (all of CLOUD)", admin)
	}
}

func tokenAt(tok []string, i int) string {
	if i < len(tok) {
		return tok[i]
	}
	return ""
}

func must(t *testing.T) func(jwt.Permissions, error) jwt.Permissions {
	return func(p jwt.Permissions, err error) jwt.Permissions {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func TestInboxPrefixOfCreds(t *testing.T) {
	akp, _ := nkeys.CreateAccount()
	creds := func(name string) []byte {
		ukp, _ := nkeys.CreateUser()
		upub, _ := ukp.PublicKey()
		seed, _ := ukp.Seed()
		uc := jwt.NewUserClaims(upub)
		uc.Name = name
		ujwt, err := uc.Encode(akp)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := jwt.FormatUserConfig(ujwt, seed)
		return data
	}
	for _, tc := range []struct{ name, want string }{
		{"dashboard", "_INBOX.dashboard"},
		{"Not A Label", ""},
	} {
		got, err := InboxPrefixOfCreds(creds(tc.name))
		if err != nil || got != tc.want {
			t.Errorf("InboxPrefixOfCreds(user %q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := InboxPrefixOfCreds([]byte("not creds")); err == nil {
		t.Error("InboxPrefixOfCreds(garbage): no error")
	}
}
