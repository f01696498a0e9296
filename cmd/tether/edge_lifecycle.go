package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/fleet"

	"github.com/spf13/cobra"
)

func printJSON(d *deps, v any) error {
	enc := json.NewEncoder(d.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printPushes(d *deps, what string, res []fleet.PushResult) {
	for _, r := range res {
		state := "ok"
		if !r.OK {
			state = "FAILED"
		}
		fmt.Fprintf(d.stdout, "  %s on %s: %s %s\n", what, r.Hub, state, r.Message)
	}
}

func newEdgeRotateCmd(d *deps) *cobra.Command {
	var ff fabricFlags
	var asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Give an edge new credentials, made on the device, over its live link",
		Long: `Rotate the edge's leaf credentials without anyone at the site. Over the edge's
own link, the edge makes a new key pair on the device and proves it holds both
the current and the new key; the store signs a user JWT for the new key; the
edge installs it (its bundle is rewritten, 0600) and the old key is revoked on
every hub, which closes the old link. The edge reconnects with the new key;
buffered data waits on its disk meanwhile. The edge must be online; an offline
edge is refused and nothing changes.`,
		Example: `  tether edge rotate plant-7 --dir ./fabric --hub tls://hub-1:4222
  tether edge rotate dev-a --dev`,
		Args: exactArgs(1, "one edge NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := contract.ValidateEdgeName(name); err != nil {
				return usageError{err}
			}
			s, url, err := ff.open()
			if err != nil {
				return err
			}
			sys, err := fleet.ConnectSystem(s, url)
			if err != nil {
				return err
			}
			defer sys.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := fleet.Rotate(ctx, s, url, sys, name)
			if res != nil {
				if asJSON {
					_ = printJSON(d, res)
				} else {
					fmt.Fprintf(d.stdout, "edge %s: new user %s (made on the device), old user %s revoked\n", name, res.User, res.Previous)
					printPushes(d, "revocation", res.Pushed)
					if err == nil {
						fmt.Fprintf(d.stdout, "edge %s: linked with its new key %s after the revocation\n", name, res.Relinked.Round(time.Millisecond))
					}
				}
			}
			return err
		},
	}
	ff.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the edge to come back with its new key")
	return cmd
}

func newEdgeRmCmd(d *deps) *cobra.Command {
	var ff fabricFlags
	var asJSON, keepData, yes bool
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Decommission an edge: revoke it, delete its cloud data and account everywhere",
		Long: `Decommission the edge: every credential is revoked on every hub (its link is
closed and refused), its telemetry and queued commands in the CLOUD streams
and its command consumer are deleted (--keep-data keeps the telemetry and
commands), its account is deleted from every hub's resolver, and the edge is
removed from the store. Hubs that did not answer are named; run it again once
they are back (every step is idempotent). Needs --yes.`,
		Example: `  tether edge rm plant-7 --dir ./fabric --hub tls://hub-1:4222 --yes`,
		Args:    exactArgs(1, "one edge NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := contract.ValidateEdgeName(name); err != nil {
				return usageError{err}
			}
			if !yes {
				return usageError{fmt.Errorf("edge rm deletes edge %s and its cloud data for good: add --yes", name)}
			}
			s, url, err := ff.open()
			if err != nil {
				return err
			}
			if _, err := s.Edge(name); err != nil {
				return err
			}
			sys, err := fleet.ConnectSystem(s, url)
			if err != nil {
				return err
			}
			defer sys.Close()
			cloud, err := fleet.ConnectCloud(s, url)
			if err != nil {
				return err
			}
			defer cloud.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			res, err := fleet.Remove(ctx, s, sys, cloud, name, keepData)
			if res != nil {
				if asJSON {
					_ = printJSON(d, res)
				} else {
					printPushes(d, "revocation", res.Revoked)
					if res.Data != nil {
						fmt.Fprintf(d.stdout, "  cloud data: %d telemetry and %d command messages deleted, consumer deleted: %v\n",
							res.Data.TelemetryMsgs, res.Data.CommandMsgs, res.Data.Consumer)
					}
					printPushes(d, "account deletion", res.Deleted)
				}
			}
			if err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintf(d.stdout, "edge %s removed (account %s)\n", name, res.Account)
			}
			return nil
		},
	}
	ff.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&keepData, "keep-data", false, "keep the edge's telemetry and commands in the CLOUD streams")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the removal")
	return cmd
}
