package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tether-fabric/tether/fleet"

	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/accounts"
)

func newStatusCmd(d *deps) *cobra.Command {
	var dir, url, devDir string
	var dev, asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Fleet view: every edge's link, backlog and state",
		Long: `Show every edge of the store as the cloud sees it: its link up or down (from
the hubs' own leafnode tables), the hub it is attached to and the RTT, and
what the edge last reported about its buffer: the backlog waiting on the
edge's disk (messages, bytes, age of the oldest: its lag into the cloud),
the last error, and how old that report is. Also the commands queued for it
in the cloud and how many of its messages the cloud stream holds.

STATE is ok, stalled (link up but the edge's reports stopped, or it reports
a stalled transfer, or its backlog is not reaching the cloud), offline (link
down; backlog as last reported) or unknown (link up, no report yet).`,
		Example: `  tether status --dev
  tether status --dir ./fabric --hub tls://127.0.0.1:4222 --json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dev {
				devDir := devDirOf(cmd.Flags(), dir, devDir)
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
			views, err := fleetView(cmd.Context(), s, url)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(d.stdout)
				enc.SetIndent("", "  ")
				if views == nil {
					views = []fleet.EdgeView{}
				}
				return enc.Encode(views)
			}
			tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EDGE\tSTATE\tLINK\tHUB\tRTT\tVIA\tBACKLOG\tBYTES/BUDGET\tOLDEST\tREPORTED\tCMDS WAITING\tCLOUD MSGS\tSERVICES\tLAST ERROR")
			for _, v := range views {
				link := "down"
				if v.Online {
					link = "up"
				}
				backlog, bytes, reported := "?", "?", "never"
				if v.BacklogMsgs != nil {
					backlog, bytes = strconv.FormatUint(*v.BacklogMsgs, 10), humanBytes(*v.BacklogBytes)
					reported = v.ReportAge + " ago"
				}
				if v.BudgetBytes != nil {
					bytes += "/" + humanBytes(uint64(max(*v.BudgetBytes, 0)))
				}
				if v.Full {
					bytes += " FULL"
				}
				lastErr := v.LastError
				if v.BacklogMsgs == nil && !v.Online && v.Since.IsZero() {
					lastErr = "never linked"
				}
				if v.Error != "" {
					lastErr = strings.TrimSpace(lastErr + " " + v.Error)
				}
				if r := v.RefusedLink; r != nil {
					lastErr = strings.TrimSpace(fmt.Sprintf("%s link refused %s ago by %s from %s (%s): %s",
						lastErr, time.Since(r.At).Round(time.Second), r.Hub, r.Remote, r.Name, r.Reason))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", v.Edge, v.State, link,
					orDash(v.Hub), orDash(v.RTT), orDash(v.Transport), backlog, bytes, orDash(v.OldestAge), reported,
					v.CommandsWaiting, v.TelemetryMsgs, v.Services, orDash(lastErr))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	f.StringVar(&url, "hub", "tls://127.0.0.1:4222", "a hub's client URL")
	f.BoolVar(&dev, "dev", false, "the running 'tether dev' fabric")
	f.StringVar(&devDir, "dev-dir", defaultDir("dev"), "with --dev: the dev fabric's directory (--dir DIR also names it)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// fleetView gathers every edge of the store as the hubs at url see it.
func fleetView(ctx context.Context, s *accounts.Store, url string) ([]fleet.EdgeView, error) {
	names, err := s.Edges()
	if err != nil {
		return nil, err
	}
	pubs := map[string]string{}
	for _, n := range names {
		e, err := s.Edge(n)
		if err != nil {
			return nil, err
		}
		pubs[n] = e.Account.Pub
	}
	sys, err := fleet.ConnectSystem(s, url)
	if err != nil {
		return nil, err
	}
	defer sys.Close()
	cloud, err := fleet.ConnectCloud(s, url)
	if err != nil {
		return nil, err
	}
	defer cloud.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(len(names)+5)*time.Second)
	defer cancel()
	return fleet.Fleet(ctx, sys, cloud, pubs, names)
}
