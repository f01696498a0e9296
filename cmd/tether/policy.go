package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/fleet"
	"github.com/tether-fabric/tether/policy"
)

func newPolicyCmd(d *deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check, review and apply the declarative access policy",
		Long: `The access policy is one YAML file (see docs/POLICY.md): edges and their
labels, groups chosen by label, cloud roles and users with their grants,
services edges expose and call, edge-to-edge links. 'check' validates it,
'diff' says what applying it changes, 'apply' re-signs the changed accounts
and pushes them to every hub; connected users get the change live.`,
		Args: exactArgs(0, "a subcommand"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("%s needs a subcommand (see '%s --help')", cmd.CommandPath(), cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newPolicyCheckCmd(d), newPolicyDiffCmd(d), newPolicyApplyCmd(d), newPolicyShowCmd(d),
		newPolicyHistoryCmd(d), newPolicyRollbackCmd(d))
	return cmd
}

// printDiagnostics writes every diagnostic and a count; it returns the
// error of the errors among them.
func printDiagnostics(d *deps, ds policy.Diagnostics) error {
	for _, x := range ds {
		fmt.Fprintln(d.stderr, x)
	}
	if err := ds.Err(); err != nil {
		return fmt.Errorf("%w: %d error(s), %d warning(s)", policy.ErrInvalid, len(ds.Errors()), len(ds.Warnings()))
	}
	return nil
}

func newPolicyCheckCmd(d *deps) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a policy file: every error and warning with file:line:column",
		Args:  exactArgs(1, "one policy FILE"),
		RunE: func(_ *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read policy: %w", err)
			}
			_, ds := policy.Parse(args[0], data)
			if asJSON {
				if ds == nil {
					ds = policy.Diagnostics{}
				}
				if err := printJSON(d, ds); err != nil {
					return err
				}
				if ds.Err() != nil {
					return fmt.Errorf("%w: %d error(s)", policy.ErrInvalid, len(ds.Errors()))
				}
				return nil
			}
			if err := printDiagnostics(d, ds); err != nil {
				return err
			}
			fmt.Fprintf(d.stdout, "%s: ok (%d warning(s))\n", args[0], len(ds.Warnings()))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the diagnostics as JSON")
	return cmd
}

// planFile reads and plans a policy file over the store in dir.
func planFile(d *deps, dir, path string) (*accounts.Store, *accounts.PolicyPlan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read policy: %w", err)
	}
	s, err := accounts.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	plan, err := s.PlanPolicy(path, data)
	if errors.Is(err, policy.ErrInvalid) {
		return nil, nil, printDiagnostics(d, plan.Diagnostics)
	}
	if err != nil {
		return nil, nil, err
	}
	for _, x := range plan.Diagnostics {
		fmt.Fprintln(d.stderr, x)
	}
	return s, plan, nil
}

// diffReport is 'policy diff --json'.
type diffReport struct {
	Changes  []policy.Change `json:"changes"`
	Accounts []string        `json:"accounts"`
	Unpushed []string        `json:"unpushed,omitempty"`
	Notes    []string        `json:"notes,omitempty"`
}

// printPlan prints a plan's changes; unpushed says what becomes of the
// accounts an earlier apply did not get to every hub.
func printPlan(d *deps, plan *accounts.PolicyPlan, unpushed string) {
	if len(plan.Changes) == 0 {
		fmt.Fprintln(d.stdout, "no change: the policy in force already says this")
	}
	last := ""
	for _, c := range plan.Changes {
		head := c.Account
		if c.Principal != "" {
			head += " " + c.Principal
		}
		if head != last {
			fmt.Fprintf(d.stdout, "%s:\n", head)
			last = head
		}
		fmt.Fprintf(d.stdout, "  %s\n", strings.TrimPrefix(c.String(), head+": "))
	}
	for _, n := range plan.Output.Notes {
		fmt.Fprintf(d.stdout, "note: %s\n", n)
	}
	if len(plan.Unpushed) > 0 {
		fmt.Fprintf(d.stdout, "not yet taken by every hub from an earlier apply (%s): %s\n", unpushed, strings.Join(plan.Unpushed, ", "))
	}
}

func newPolicyDiffCmd(d *deps) *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff FILE",
		Short: "Say what applying a policy file would change, per account and principal",
		Args:  exactArgs(1, "one policy FILE"),
		RunE: func(_ *cobra.Command, args []string) error {
			_, plan, err := planFile(d, dir, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				r := diffReport{Changes: plan.Changes, Accounts: plan.Changed, Unpushed: plan.Unpushed, Notes: plan.Output.Notes}
				if r.Changes == nil {
					r.Changes = []policy.Change{}
				}
				if r.Accounts == nil {
					r.Accounts = []string{}
				}
				return printJSON(d, r)
			}
			printPlan(d, plan, "an apply with --push or --dev pushes them again")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// unpushedFate is what an apply or rollback to url ("": --store-only)
// does with the accounts an earlier apply did not get to every hub.
func unpushedFate(url string) string {
	if url == "" {
		return "still not pushed: --store-only"
	}
	return "pushed again"
}

// applyFlags say where an apply or a rollback goes.
type applyFlags struct {
	dir, push, devDir string
	dev, storeOnly    bool
	timeout           time.Duration
}

func (f *applyFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", defaultDir("fabric"), "store directory")
	fl.StringVar(&f.push, "push", "", "a hub's client URL: push every changed JWT to every hub")
	fl.BoolVar(&f.dev, "dev", false, "the running 'tether dev' fabric (its store and hub)")
	fl.StringVar(&f.devDir, "dev-dir", defaultDir("dev"), "with --dev: the dev fabric's directory")
	fl.BoolVar(&f.storeOnly, "store-only", false, "only write the store (hubs take it when they start)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the hubs' answers")
}

func (f *applyFlags) resolve() (dir, url string, err error) {
	n := 0
	for _, set := range []bool{f.push != "", f.dev, f.storeOnly} {
		if set {
			n++
		}
	}
	if n != 1 {
		return "", "", usageError{errors.New("say where the change goes: --push URL, --dev or --store-only")}
	}
	if f.dev {
		info, err := readDevInfo(f.devDir)
		if err != nil {
			return "", "", err
		}
		return filepath.Join(f.devDir, "store"), info.Hub.ClientURL, nil
	}
	return f.dir, f.push, nil
}

func newPolicyApplyCmd(d *deps) *cobra.Command {
	var f applyFlags
	cmd := &cobra.Command{
		Use:   "apply FILE (--push URL | --dev | --store-only)",
		Short: "Apply a policy file: re-sign changed accounts and push them to every hub",
		Long: `Apply a policy file: validate it, re-sign every account whose JWT changes,
record the new version in the store and push every changed JWT to every hub,
reporting each hub's answer. Connected users get the change live: roles are
scoped signing keys in the CLOUD account JWT. If a hub does not answer, the
version is recorded as not pushed and the same apply (or the next) pushes
it again until every hub has it.`,
		Example: `  tether policy apply policy.yaml --push tls://127.0.0.1:4222
  tether policy apply policy.yaml --dev`,
		Args: exactArgs(1, "one policy FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, url, err := f.resolve()
			if err != nil {
				return err
			}
			s, plan, err := planFile(d, dir, args[0])
			if err != nil {
				return err
			}
			printPlan(d, plan, unpushedFate(url))
			return applyPlan(cmd, d, s, plan, url, f.timeout, 0)
		},
	}
	f.register(cmd)
	return cmd
}

func applyPlan(cmd *cobra.Command, d *deps, s *accounts.Store, plan *accounts.PolicyPlan, url string, timeout time.Duration, rollbackOf int) error {
	v, push, err := s.ApplyPolicy(plan, rollbackOf)
	if err != nil {
		return err
	}
	if url == "" {
		fmt.Fprintf(d.stdout, "policy version %d written to the store (%d account(s)); NOT pushed: running hubs keep the old rules until they restart or an apply with --push; a hub that starts from this store also hands the edges their gateway configurations (each takes its own when its link comes up) and makes the group streams\n", v.Version, len(push))
		return nil
	}
	// The gateways and group streams before the accounts: a gateway
	// admitting a caller the accounts do not let call yet is harmless (the
	// hub refuses the call), and a removed grant is refused earlier, never
	// later; an edge whose account changes relinks (its leaf scope
	// changed), so it would miss a push made after the accounts (it
	// fetches its configuration when it relinks, either way); a reader
	// granted a group finds its stream, and an edge that left a group is
	// purged from it before anything else changes.
	if err := deliverToCloud(cmd.Context(), d, s, url, plan.Output, v.Version, timeout); err != nil {
		return fmt.Errorf("policy version %d is in the store but not in force everywhere: %w; run the apply again to converge", v.Version, err)
	}
	if len(push) > 0 {
		if err := pushPolicy(cmd.Context(), d, s, url, push, timeout); err != nil {
			return fmt.Errorf("policy version %d is in the store but not in force everywhere: %w; run the apply again to converge", v.Version, err)
		}
	}
	if err := s.MarkPolicyPushed(v.Version); err != nil {
		return err
	}
	if len(push) == 0 {
		fmt.Fprintf(d.stdout, "policy version %d applied: no account JWT changed\n", v.Version)
		return nil
	}
	fmt.Fprintf(d.stdout, "policy version %d applied: every hub took %d account JWT(s)\n", v.Version, len(push))
	return nil
}

// deliverToCloud hands the cloud what the policy keeps there: every
// edge's gateway configuration (stored in the cloud bucket, pushed to the
// changed edges that are linked) and the group streams, reporting each
// edge (applied now, or pending until its link comes up) and each group
// stream changed.
func deliverToCloud(ctx context.Context, d *deps, s *accounts.Store, url string, out *policy.Output, version int, timeout time.Duration) error {
	nc, err := fleet.ConnectCloud(s, url)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := fleet.DeliverGateways(ctx, s, nc, url, out.Gateways, version)
	if err != nil {
		return fmt.Errorf("the edges' gateway configurations: %w", err)
	}
	var refused []string
	for _, r := range res {
		switch {
		case r.Error != "":
			fmt.Fprintf(d.stdout, "gateway %s: NOT applied: %s\n", r.Edge, r.Error)
			refused = append(refused, r.Edge)
		case r.NoAccount:
			fmt.Fprintf(d.stdout, "gateway %s: no such edge in the store yet: pending, it gets its configuration when it links\n", r.Edge)
		case r.Pending:
			fmt.Fprintf(d.stdout, "gateway %s: edge offline: pending, it gets its configuration when it links\n", r.Edge)
		default:
			fmt.Fprintf(d.stdout, "gateway %s: delivered: exposes %s, %d grant(s)\n", r.Edge, orDash(strings.Join(r.Exposed, ",")), r.Grants)
		}
	}
	if len(res) == 0 {
		fmt.Fprintln(d.stdout, "gateways: no edge's configuration changed")
	}
	changes, err := fleet.ApplyGroupStreams(ctx, nc, out.Groups)
	for _, c := range changes {
		switch {
		case c.Deleted:
			fmt.Fprintf(d.stdout, "group stream %s: deleted (no grant names group %s any more)\n", c.Stream, c.Group)
		case c.Created:
			fmt.Fprintf(d.stdout, "group stream %s: created with %d edge(s)\n", c.Stream, len(c.Joined))
		default:
			fmt.Fprintf(d.stdout, "group stream %s: %d edge(s) joined, %d left\n", c.Stream, len(c.Joined), len(c.Left))
		}
	}
	if err != nil {
		return fmt.Errorf("the group streams: %w", err)
	}
	if len(refused) > 0 {
		return fmt.Errorf("edge(s) %s did not apply their gateway configuration", strings.Join(refused, ", "))
	}
	return nil
}

func newPolicyShowCmd(d *deps) *cobra.Command {
	var dir string
	var version int
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the policy in force (or an earlier applied version)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			s, err := accounts.Open(dir)
			if err != nil {
				return err
			}
			if version > 0 {
				data, err := s.PolicyVersionFile(version)
				if err != nil {
					return err
				}
				_, err = d.stdout.Write(data)
				return err
			}
			data, v, err := s.AppliedPolicy()
			if err != nil {
				return err
			}
			if v == 0 {
				fmt.Fprintln(d.stderr, "no policy applied: this is the default (today's built-in behaviour)")
			} else {
				fmt.Fprintf(d.stderr, "policy version %d\n", v)
			}
			_, err = d.stdout.Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	cmd.Flags().IntVar(&version, "version", 0, "an earlier applied version (see 'tether policy history')")
	return cmd
}

func newPolicyHistoryCmd(d *deps) *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List the applied policy versions",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			s, err := accounts.Open(dir)
			if err != nil {
				return err
			}
			h, err := s.PolicyHistory()
			if err != nil {
				return err
			}
			if asJSON {
				if h == nil {
					h = []accounts.PolicyVersion{}
				}
				return printJSON(d, h)
			}
			tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tAPPLIED\tSHA256\tACCOUNTS\tPUSHED\tSOURCE")
			for _, v := range h {
				src := v.Source
				if v.RollbackOf > 0 {
					src = fmt.Sprintf("rollback to %d", v.RollbackOf)
				}
				pushed := "yes"
				if !v.Pushed {
					pushed = "NO (re-apply)"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", v.Version, v.Applied.Format(time.RFC3339), v.SHA256[:12], len(v.Accounts), pushed, src)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newPolicyRollbackCmd(d *deps) *cobra.Command {
	var f applyFlags
	cmd := &cobra.Command{
		Use:   "rollback VERSION (--push URL | --dev | --store-only)",
		Short: "Apply an earlier applied version again, as a new version",
		Example: `  tether policy history
  tether policy rollback 3 --push tls://127.0.0.1:4222`,
		Args: exactArgs(1, "one VERSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			version, err := strconv.Atoi(args[0])
			if err != nil || version < 1 {
				return usageError{fmt.Errorf("version %q: want a version number from 'tether policy history'", args[0])}
			}
			dir, url, err := f.resolve()
			if err != nil {
				return err
			}
			s, err := accounts.Open(dir)
			if err != nil {
				return err
			}
			data, err := s.PolicyVersionFile(version)
			if err != nil {
				return err
			}
			plan, err := s.PlanPolicy(fmt.Sprintf("version-%d.yaml", version), data)
			if err != nil {
				for _, x := range plan.Diagnostics {
					fmt.Fprintln(d.stderr, x)
				}
				return fmt.Errorf("rollback to version %d: %w", version, err)
			}
			printPlan(d, plan, unpushedFate(url))
			return applyPlan(cmd, d, s, plan, url, f.timeout, version)
		},
	}
	f.register(cmd)
	return cmd
}
