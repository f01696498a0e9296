package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/hub"
)

func newHubCmd(d *deps) *cobra.Command {
	var file string
	hubDefaults := hub.Defaults()
	hubDefaults.Store = defaultDir("fabric")
	hubDocs, _ := hub.ConfigDocs() // embedded source: parses, or the help lists keys without docs
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Run a cloud hub",
		Long: `Run a cloud hub: an embedded nats-server in operator mode with JetStream
(domain "hub"), a TLS leafnode listener and a WebSocket-TLS listener for edges.

Configuration: defaults < --config file (YAML, JSON or TOML) < environment
TETHER_<KEY> (e.g. TETHER_CLUSTER_LISTEN) < flags.

` + configKeysHelp(&hubDefaults, hubDocs),
		Example: `  tether hub --store ./fabric --data ./hub-data
  tether hub --config hub.yaml`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := hub.Defaults()
			cfg.Store = defaultDir("fabric")
			if err := loadConfig(file, cmd.Flags(), map[string]string{
				"name": "name", "store": "store", "data": "data_dir", "listen": "listen",
				"leaf-listen": "leaf_listen", "websocket-listen": "websocket_listen",
				"monitor-listen": "monitor_listen", "cluster-listen": "cluster.listen",
				"routes": "cluster.routes", "lame-duck": "lame_duck",
			}, &cfg); err != nil {
				return usageError{err}
			}
			warnUnknownEnv(d.stderr, os.Environ(), &cfg)
			h, err := hub.New(cfg, d.serverLogger())
			if err != nil {
				return usageError{err}
			}
			if err := h.Start(cmd.Context()); err != nil {
				return err
			}
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), cfg.LameDuck+10*time.Second)
			defer cancel()
			return h.Shutdown(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "config", "", "config file")
	f.String("name", "", "server name, unique in the cluster (default hub-1)")
	f.String("store", "", "store directory written by 'tether init' (default "+defaultDir("fabric")+")")
	f.String("data", "", "data directory for JetStream and the account resolver")
	f.String("listen", "", "client TLS address (default 127.0.0.1:4222)")
	f.String("leaf-listen", "", "leafnode TLS address (default 0.0.0.0:7422)")
	f.String("websocket-listen", "", "WebSocket-TLS address for edges, or off (default 0.0.0.0:7443)")
	f.String("monitor-listen", "", "HTTP monitoring address, or off (default 127.0.0.1:8222)")
	f.String("cluster-listen", "", "route address; enables clustering")
	f.StringSlice("routes", nil, "other hubs' route URLs (tls://host:port)")
	f.Duration("lame-duck", 0, "time to move clients and edges away on shutdown")
	cmd.AddCommand(newHubExportCmd(d))
	return cmd
}

func newHubExportCmd(d *deps) *cobra.Command {
	var dir, out string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "export --out DIR",
		Short: "Write the part of the store a hub needs, for hubs that must not hold the whole store",
		Long: `Write into --out what a hub reads: the operator and account JWTs, the CA and
hub certificates and the hub's key, the cloud user's creds, and each edge's
scoped leaf signing key (for enrollment; it can mint leaf users of that edge
only). Never the operator's keys, account identity or signing keys, the system
user, edges' creds or the CA key. Files are rewritten in place (a directory
mounted into running containers stays valid); run it again after adding,
revoking or removing edges. deployments/up.sh does.`,
		Example: `  tether hub export --dir ./fabric --out ./hub-store`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if out == "" {
				return usageError{errors.New("--out DIR is required")}
			}
			s, err := accounts.Open(dir)
			if err != nil {
				return err
			}
			res, err := s.ExportHub(out)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(d, res)
			}
			fmt.Fprintf(d.stdout, "hub store %s: %d files, %d removed\n", out, len(res.Files), len(res.Removed))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("fabric"), "store directory")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the hub's part of the store to")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
