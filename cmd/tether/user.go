package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
)

func newUserCmd(d *deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage cloud users (creds for cloud applications)",
		Args:  exactArgs(0, "a subcommand"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("%s needs a subcommand (see '%s --help')", cmd.CommandPath(), cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newUserAddCmd(d), newUserLsCmd(d))
	return cmd
}

func newUserAddCmd(d *deps) *cobra.Command {
	var dir, role string
	var edges []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "add NAME --role ROLE",
		Short: "Create a cloud user with a role and write its creds (0600)",
		Long: `Create a user of the CLOUD account for a cloud application and write its creds
to users/NAME.creds in the store (mode 0600). Roles:
  reader     read telemetry: live on edges.*.telemetry.> and from the TELEMETRY
             stream through its own consumers; no publishing, no stream changes
  commander  send commands on edges.<edge>.cmd.> (all edges, or only --edge ones)
  admin      anything inside the CLOUD account (never edges' accounts or $SYS)
Once a policy is applied ('tether policy apply'), --role takes its roles: the
user is signed with the role's scoped signing key, so a policy change reaches
it live. A user the policy names needs no --role.

Every user but an admin receives replies only on its own inbox prefix,
_INBOX.<NAME> (nats.go: nats.CustomInboxPrefix("_INBOX.<NAME>"); the tether
commands set it themselves), and a reader creates, reads and deletes only
consumers named <NAME>_1 … <NAME>_` + strconv.Itoa(contract.OwnedConsumers) + `.`,
		Example: `  tether user add dashboard --role reader
  tether user add ops --role commander --edge plant-7 --edge plant-8 --ttl 720h`,
		Args: exactArgs(1, "one user NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			if ttl < 0 {
				return usageError{fmt.Errorf("--ttl %s: want a positive duration, or 0 for no expiry", ttl)}
			}
			s, err := accounts.Open(dir)
			if err != nil {
				return err
			}
			// Roles of the applied policy first (their users change live
			// with the policy), then the built-in ones.
			policyRoles, err := s.PolicyRoles()
			if err != nil {
				return err
			}
			known := append(append([]string{}, policyRoles...), contract.Roles()...)
			inPolicy := false
			for _, r := range policyRoles {
				inPolicy = inPolicy || r == role
			}
			if role == "" && len(policyRoles) == 0 {
				return usageError{fmt.Errorf("--role is required: one of %s", strings.Join(known, ", "))}
			}
			if role != "" && (!inPolicy || len(edges) > 0) {
				if _, err := contract.CloudRolePermissions(args[0], role, edges); err != nil {
					if len(policyRoles) > 0 {
						err = fmt.Errorf("%w (roles of the applied policy: %s)", err, strings.Join(policyRoles, ", "))
					}
					return usageError{fmt.Errorf("--role: %w", err)}
				}
			}
			var exp time.Time
			if ttl > 0 {
				exp = time.Now().Add(ttl)
			}
			path, err := s.AddCloudUser(args[0], role, edges, exp)
			if err != nil {
				return err
			}
			shown := role
			if shown == "" {
				shown = "as the policy names it"
			}
			fmt.Fprintf(d.stdout, "user %s (%s): creds %s (0600)\n", args[0], shown, path)
			perms, err := cloudUserPermissions(s, path)
			if err != nil {
				return err
			}
			fmt.Fprintln(d.stdout, ownsLine(args[0], perms))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	cmd.Flags().StringVar(&role, "role", "", "role: "+strings.Join(contract.Roles(), ", "))
	cmd.Flags().StringArrayVar(&edges, "edge", nil, "with --role commander: only this edge (repeatable)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "expiry (0: none)")
	return cmd
}

func newUserLsCmd(d *deps) *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List cloud users",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			s, err := accounts.Open(dir)
			if err != nil {
				return err
			}
			users, err := s.CloudUsers()
			if err != nil {
				return err
			}
			if asJSON {
				if users == nil {
					users = []accounts.CloudUser{}
				}
				return printJSON(d, users)
			}
			tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tUSER\tEXPIRES\tCREDS")
			for _, u := range users {
				exp := "-"
				if !u.Expires.IsZero() {
					exp = u.Expires.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Pub, exp, u.Creds)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// cloudUserPermissions returns what the user of a creds file may do in
// CLOUD: its own permissions, or those of the scoped signing key (a role
// or user of the applied policy) that signed it.
func cloudUserPermissions(s *accounts.Store, credsPath string) (jwt.Permissions, error) {
	data, err := securefile.Read(credsPath)
	if err != nil {
		return jwt.Permissions{}, err
	}
	ujwt, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return jwt.Permissions{}, fmt.Errorf("%s: %w", credsPath, err)
	}
	uc, err := jwt.DecodeUserClaims(ujwt)
	if err != nil {
		return jwt.Permissions{}, fmt.Errorf("%s: %w", credsPath, err)
	}
	acc, err := s.Account(contract.CloudAccountName)
	if err != nil {
		return jwt.Permissions{}, err
	}
	ac, err := jwt.DecodeAccountClaims(acc.JWT)
	if err != nil {
		return jwt.Permissions{}, fmt.Errorf("account %s: %w", contract.CloudAccountName, err)
	}
	if scope, ok := ac.SigningKeys.GetScope(uc.Issuer); ok && scope != nil {
		if us, ok := scope.(*jwt.UserScope); ok {
			return us.Template.Permissions, nil
		}
	}
	return uc.Permissions, nil
}

// ownsLine tells what the clients of a new cloud user must know: its
// inbox prefix, unless it may subscribe anywhere (an admin), and its
// consumer names, if it may create consumers only by name.
func ownsLine(user string, p jwt.Permissions) string {
	if len(p.Sub.Allow) == 0 && len(p.Sub.Deny) == 0 {
		return "an admin: its clients may use any inbox prefix and consumer name"
	}
	line := "its clients must set the inbox prefix " + contract.CloudInboxPrefix(user)
	for _, subj := range p.Pub.Allow {
		if strings.HasPrefix(subj, "$JS.API.CONSUMER.CREATE.") {
			names := contract.CloudConsumerNames(user)
			return line + "; its consumers are named " + names[0] + " … " + names[len(names)-1]
		}
	}
	return line
}
