package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/accounts"
)

func newStoreCmd(d *deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Maintain the identity store",
		Args:  exactArgs(0, "a subcommand"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("%s needs a subcommand (see '%s --help')", cmd.CommandPath(), cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newStoreUpgradeCmd(d))
	return cmd
}

func newStoreUpgradeCmd(d *deps) *cobra.Command {
	var dir, pushURL string
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Bring a store made by an older Tether up to this version's contract",
		Long: `Re-sign the account JWTs that differ from this version's contract: the CLOUD
exports, and for each edge its imports, its scoped leaf signing key (created
when missing) and its limits. Idempotent. With --push the changed accounts go to
the running hubs. Users already issued keep their permissions: rotate an edge
('tether edge rotate') to give it a user of the scoped key. Run 'tether hub
export' again afterwards if hubs use an export.`,
		Example: `  tether store upgrade --dir ./fabric --push tls://127.0.0.1:4222`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := accounts.Open(dir)
			if err != nil {
				return err
			}
			changed, err := s.Upgrade()
			if err != nil {
				return err
			}
			if len(changed) == 0 {
				fmt.Fprintln(d.stdout, "store is up to date")
				if pushURL != "" {
					// Nothing changed, so nothing is pushed: an edge the hubs
					// do not know (a failed 'edge add --push') has its own command.
					fmt.Fprintf(d.stderr, "nothing to push; to push an edge the hubs do not know: tether edge push NAME --dir %s --hub %s\n", dir, pushURL)
				}
				return nil
			}
			fmt.Fprintf(d.stdout, "upgraded %d account(s): %v\n", len(changed), changed)
			if pushURL == "" {
				fmt.Fprintln(d.stderr, "warning: not pushed; running hubs keep the old JWTs until they restart (use --push)")
				return nil
			}
			for _, name := range changed {
				if err := pushAccount(context.WithoutCancel(cmd.Context()), d, s, pushURL, name); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	cmd.Flags().StringVar(&pushURL, "push", "", "hub client URL to push the changed accounts to running hubs")
	return cmd
}
