package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/fleet"

	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/accounts"
)

func newEdgeCmd(d *deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "edge",
		Short: "Manage edge sites (identities and bundles)",
		Args:  exactArgs(0, "a subcommand"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("%s needs a subcommand (see '%s --help')", cmd.CommandPath(), cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newEdgeAddCmd(d), newEdgePushCmd(d), newEdgeLsCmd(d), newEdgeRevokeCmd(d), newEdgeRotateCmd(d), newEdgeRmCmd(d), newEdgeTokenCmd(d))
	return cmd
}

func newEdgeAddCmd(d *deps) *cobra.Command {
	var dir, out, pushURL string
	var token, force bool
	var tf tokenFlags
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Create an edge identity and write its bundle or enrollment token",
		Long: `Create the account EDGE_<NAME> and the edge's leaf user, and write the bundle
(creds, CA, hub URLs) to --out with mode 0600. Copy the bundle to the site and
run 'tether leaf --bundle FILE'. An existing --out file is refused unless
--force. With --push, the new account is pushed to the running hubs at once
(if that fails, the edge stays in the store: push it with 'tether edge push
NAME'); otherwise hubs load it when they (re)start.

With --token, no leaf user is made here: a one-time enrollment token (mode
0600, default NAME.token, valid for --token-ttl) is written instead, and at
the site 'tether leaf --enroll FILE' generates the edge's key on the device.`,
		Example: `  tether edge add plant-7 --dir ./fabric --out plant-7.bundle
  tether edge add plant-7 --out plant-7.bundle --push tls://127.0.0.1:4222
  tether edge add plant-7 --token --token-ttl 2h --push tls://127.0.0.1:4222`,
		Args: exactArgs(1, "one edge NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := contract.ValidateEdgeName(name); err != nil {
				return usageError{err}
			}
			if err := tf.validate(); err != nil {
				return err
			}
			if !token && cmd.Flags().Changed("token-ttl") {
				return usageError{errors.New("--token-ttl needs --token")}
			}
			if out == "" && !token {
				out = name + ".bundle"
			}
			if err := checkOut(out, name, token, force); err != nil {
				return err
			}
			s, err := accounts.Open(dir)
			if err != nil {
				return err
			}
			if err := addEdgeFiles(d, s, name, out, token, tf); err != nil {
				return err
			}
			if pushURL != "" {
				return pushEdge(cmd.Context(), d, s, pushURL, name, dir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	cmd.Flags().StringVar(&out, "out", "", "bundle file to write (default NAME.bundle; with --token the token file, default NAME.token)")
	cmd.Flags().StringVar(&pushURL, "push", "", "hub client URL to push the account to running hubs")
	cmd.Flags().BoolVar(&token, "token", false, "write a one-time enrollment token instead of a bundle: the key is born on the device")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing --out file")
	tf.add(cmd.Flags())
	return cmd
}

func pushAccount(ctx context.Context, d *deps, s *accounts.Store, url, account string) error {
	nc, err := fleet.ConnectSystem(s, url)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := fleet.PushAccount(ctx, s, nc, account)
	for _, r := range res {
		state := "ok"
		if !r.OK {
			state = "FAILED"
		}
		fmt.Fprintf(d.stdout, "  push to %s: %s %s\n", r.Hub, state, r.Message)
	}
	if errors.Is(err, fleet.ErrPushIncomplete) {
		return fmt.Errorf("push %s: %w (hubs that missed it converge through their resolvers)", account, err)
	}
	return err
}

// prepareEdge creates the cloud side of a new edge (its command queue
// consumer) on running hubs, as the cloud user.
func prepareEdge(ctx context.Context, s *accounts.Store, url, edge string) error {
	cloud, err := fleet.ConnectCloud(s, url)
	if err != nil {
		return err
	}
	defer cloud.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return fleet.PrepareEdge(ctx, cloud, edge)
}

func newEdgeLsCmd(d *deps) *cobra.Command {
	var ff fabricFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List edges: from the store, and online state as the hubs see it",
		Long: `List the store's edges (name, account, domain, revoked). With --hub URL or
--dev, also each edge's state as the hubs see it now: online or offline (from
the hubs' own leafnode tables, not from a report), the hub and RTT, since
when (link up time while online, last report while offline) and the edge's
version (from its last report). Without --hub or --dev nothing is dialled.`,
		Example: `  tether edge ls --dir ./fabric
  tether edge ls --dir ./fabric --hub tls://hub-1:4222 --json
  tether edge ls --dev`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			live := ff.dev || cmd.Flags().Changed("hub")
			s, url, err := ff.open()
			if err != nil {
				return err
			}
			names, err := s.Edges()
			if err != nil {
				return err
			}
			type row struct {
				Name    string    `json:"name"`
				Account string    `json:"account"`
				Domain  string    `json:"domain"`
				Revoked string    `json:"revoked,omitempty"`
				Online  *bool     `json:"online,omitempty"`
				Hub     string    `json:"hub,omitempty"`
				RTT     string    `json:"rtt,omitempty"`
				Since   time.Time `json:"since,omitzero"`
				Version string    `json:"version,omitempty"`
			}
			views := map[string]fleet.EdgeView{}
			if live {
				vs, err := fleetView(cmd.Context(), s, url)
				if err != nil {
					return err
				}
				for _, v := range vs {
					views[v.Edge] = v
				}
			}
			rows := []row{}
			for _, n := range names {
				e, err := s.Edge(n)
				if err != nil {
					return err
				}
				r := row{Name: n, Account: e.Account.Pub, Domain: contract.EdgeDomain(n)}
				if at, ok := s.Revoked(n); ok {
					r.Revoked = at.Format(time.RFC3339)
				}
				if v, ok := views[n]; ok {
					online := v.Online
					r.Online, r.Hub, r.RTT, r.Since, r.Version = &online, v.Hub, v.RTT, v.Since, v.EdgeVersion
				}
				rows = append(rows, r)
			}
			if asJSON {
				return printJSON(d, rows)
			}
			tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
			if !live {
				fmt.Fprintln(tw, "NAME\tACCOUNT\tDOMAIN\tREVOKED")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Account, r.Domain, orDash(r.Revoked))
				}
				return tw.Flush()
			}
			fmt.Fprintln(tw, "NAME\tLINK\tSINCE\tHUB\tRTT\tVERSION\tREVOKED\tACCOUNT")
			for _, r := range rows {
				link, since := "offline", "-"
				if r.Online != nil && *r.Online {
					link = "online"
				}
				if !r.Since.IsZero() {
					since = r.Since.Local().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, link, since, orDash(r.Hub), orDash(r.RTT),
					orDash(r.Version), orDash(r.Revoked), r.Account)
			}
			return tw.Flush()
		},
	}
	ff.register(cmd)
	cmd.Flags().Lookup("hub").DefValue = ""
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newEdgeRevokeCmd(d *deps) *cobra.Command {
	var dir, pushURL string
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an edge: close its live link and refuse every reconnect",
		Long: `Revoke every credential of the edge issued so far (its leaf user included) in
the account EDGE_<NAME>. With --push the hubs get the change at once, close
the edge's live connection and refuse its reconnects; without it, hubs apply it
when they (re)start. A revoked edge gets no new bundle.`,
		Example: `  tether edge revoke plant-7 --dir ./fabric --push tls://127.0.0.1:4222`,
		Args:    exactArgs(1, "one edge NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := contract.ValidateEdgeName(name); err != nil {
				return usageError{err}
			}
			s, err := accounts.Open(dir)
			if err != nil {
				return err
			}
			at, err := s.RevokeEdge(name)
			if err != nil {
				return err
			}
			fmt.Fprintf(d.stdout, "edge %s: credentials issued up to %s revoked\n", name, at.Format(time.RFC3339))
			if pushURL == "" {
				fmt.Fprintf(d.stderr, "warning: not pushed; running hubs keep accepting the edge until they restart (use --push)\n")
				return nil
			}
			return pushAccount(cmd.Context(), d, s, pushURL, contract.EdgeAccountName(name))
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	cmd.Flags().StringVar(&pushURL, "push", "", "hub client URL to push the revocation to running hubs")
	return cmd
}
