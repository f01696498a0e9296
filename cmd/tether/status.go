package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/hub"
)

func newStatusCmd(d *deps) *cobra.Command {
	var dir, url, devDir string
	var dev, asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Fleet view: every edge as the hubs see it",
		Long: `Show every edge of the store as the hubs see it: online or offline (from the
hubs' own leafnode tables), the hub it is attached to and the RTT, commands
queued for it in the cloud, and how many of its messages the cloud stream
holds. An edge's own buffer (backlog, oldest, stalled) is shown by
'tether leaf status' at the site.`,
		Example: `  tether status --dev
  tether status --dir ./fabric --hub tls://127.0.0.1:4222 --json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dev {
				info, err := readDevInfo(devDir)
				if err != nil {
					return err
				}
				dir, url = filepath.Join(devDir, "store"), info.Hub.ClientURL
			}
			s, err := accounts.Open(dir)
			if err != nil {
				return err
			}
			names, err := s.Edges()
			if err != nil {
				return err
			}
			pubs := map[string]string{}
			for _, n := range names {
				e, err := s.Edge(n)
				if err != nil {
					return err
				}
				pubs[n] = e.Account.Pub
			}
			sys, err := s.ConnectSystem(url)
			if err != nil {
				return err
			}
			defer sys.Close()
			cloud, err := nats.Connect(url, nats.UserCredentials(s.CloudCredsFile()), nats.RootCAs(s.CAFile()), nats.Timeout(5*time.Second))
			if err != nil {
				return fmt.Errorf("connect to hub %s as cloud user: %w", url, err)
			}
			defer cloud.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Duration(len(names)+5)*time.Second)
			defer cancel()
			views, err := hub.Fleet(ctx, sys, cloud, pubs, names)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(d.stdout)
				enc.SetIndent("", "  ")
				if views == nil {
					views = []hub.EdgeView{}
				}
				return enc.Encode(views)
			}
			tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EDGE\tLINK\tHUB\tRTT\tVIA\tCMDS WAITING\tCLOUD MSGS\tERROR")
			for _, v := range views {
				link := "offline"
				if v.Online {
					link = "online"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", v.Edge, link, orDash(v.Hub), orDash(v.RTT), orDash(v.Transport), v.CommandsWaiting, v.TelemetryMsgs, v.Error)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	f.StringVar(&url, "hub", "tls://127.0.0.1:4222", "a hub's client URL")
	f.BoolVar(&dev, "dev", false, "the running 'tether dev' fabric")
	f.StringVar(&devDir, "dev-dir", defaultDir("dev"), "with --dev: the dev fabric's directory")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
