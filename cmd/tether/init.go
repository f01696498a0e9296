package main

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/accounts"
)

func newInitCmd(d *deps) *cobra.Command {
	var dir string
	opts := accounts.DefaultInitOptions()
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a fabric: operator, accounts, CA and hub certificate",
		Long: `Create a new identity store: the operator and its signing key, the system
and CLOUD accounts with their users, the fabric CA and the hub certificate.
Hub URLs are what edges will dial; the hub certificate covers their host names
plus any --hub-host.`,
		Example: `  tether init --dir ./fabric
  tether init --dir ./fabric --hub-url tls://hub.example.com:7422 --ws-url wss://hub.example.com:443`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			hosts := append([]string(nil), opts.HubHosts...)
			for _, u := range append(append([]string(nil), opts.HubURLs...), opts.WebsocketURLs...) {
				if pu, err := url.Parse(u); err == nil && pu.Hostname() != "" {
					hosts = appendUnique(hosts, pu.Hostname())
				}
			}
			opts.HubHosts = hosts
			if err := opts.Fabric.Validate(); err != nil {
				return usageError{fmt.Errorf("init (--hub-url, --ws-url, --hub-host): %w", err)}
			}
			s, err := accounts.Init(dir, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(d.stdout, "initialised fabric in %s\n  hubs: %v\n  cloud user creds: %s\n  CA: %s\nnext: tether edge add NAME --dir %s --out NAME.bundle\n",
				s.Dir(), s.Fabric().HubURLs, s.CloudCredsFile(), s.CAFile(), s.Dir())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("fabric"), "store directory to create")
	cmd.Flags().StringSliceVar(&opts.HubURLs, "hub-url", opts.HubURLs, "leafnode TLS URL(s) edges dial (tls://host:port)")
	cmd.Flags().StringSliceVar(&opts.WebsocketURLs, "ws-url", opts.WebsocketURLs, "WebSocket-TLS URL(s) for edges behind proxies (wss://host:port)")
	cmd.Flags().StringSliceVar(&opts.HubHosts, "hub-host", opts.HubHosts, "extra DNS names or IPs for the hub certificate")
	return cmd
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
