package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tether-fabric/tether/contract"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/internal/workingset"
	"github.com/tether-fabric/tether/leaf"
)

// trimAfter bounds how long the edge waits for its first link before it
// releases its start-up pages anyway.
const trimAfter = time.Minute

func newLeafCmd(d *deps) *cobra.Command {
	var file, pprofAddr string
	var ef enrollFlags
	leafDefaults := leaf.Defaults()
	leafDocs, _ := leaf.ConfigDocs() // embedded source: parses, or the help lists keys without docs
	cmd := &cobra.Command{
		Use:   "leaf",
		Short: "Run an edge site",
		Long: `Run an edge: an embedded nats-server listening on loopback with its own
JetStream domain, dialling out to the hubs named in its bundle.

With --enroll FILE (a token from 'tether edge add --token' or 'tether edge
token'), the device first generates its own key, enrolls through the hubs
and writes its bundle (default <data_dir>/edge.bundle, mode 0600), then runs.
A device that already has its bundle is not enrolled again.

Configuration: defaults < --config file < environment TETHER_<KEY> < flags.

Through an HTTP(S) forward proxy (CONNECT; the TLS to the hubs stays end to
end), for both transports: --proxy http://proxy:3128, and the proxy's
user:password in a 0600 file named by proxy_credentials_file. An https://
proxy (TLS to the proxy) is verified with the system's roots, or with the
CA certificate(s) of the PEM file named by proxy_ca_file. Unset, the proxy
is https_proxy/HTTPS_PROXY minus no_proxy/NO_PROXY (http_proxy never
applies); --proxy off dials the hubs directly. The edge must resolve the
hubs' names itself even through a proxy (the CONNECT names the hub for the
proxy to resolve, but the embedded nats-server looks the name up first).

` + configKeysHelp(&leafDefaults, leafDocs),
		Example: `  tether leaf --bundle plant-7.bundle --data /var/lib/tether
  tether leaf --bundle plant-7.bundle --data ./edge --transport websocket
  tether leaf --bundle plant-7.bundle --data ./edge --transport websocket --proxy http://proxy.plant:3128
  tether leaf --enroll plant-7.token --data /var/lib/tether`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := leaf.Defaults()
			if err := loadConfig(file, cmd.Flags(), map[string]string{
				"bundle": "bundle", "data": "data_dir", "listen": "listen", "transport": "transport",
				"compression": "compression", "allow-remote-clients": "allow_remote_clients", "proxy": "proxy",
			}, &cfg); err != nil {
				return usageError{err}
			}
			warnUnknownEnv(d.stderr, os.Environ(), &cfg)
			if len(ef.hubs) > 0 && !ef.requested() {
				return usageError{errors.New("--hub needs --enroll")}
			}
			if ef.requested() {
				if cfg.Bundle == "" && cfg.DataDir != "" {
					cfg.Bundle = filepath.Join(cfg.DataDir, "edge.bundle")
				}
				if err := cfg.Validate(); err != nil {
					return usageError{err}
				}
				if err := ef.enroll(cmd.Context(), d, cfg); err != nil || cmd.Context().Err() != nil {
					return err
				}
			}
			l, err := leaf.New(cfg, d.serverLogger())
			if err != nil {
				return usageError{err}
			}
			if pprofAddr != "" {
				if err := servePprof(cmd.Context(), pprofAddr, d.logger()); err != nil {
					return usageError{err}
				}
			}
			if err := l.Start(cmd.Context()); err != nil {
				if cmd.Context().Err() != nil {
					return nil // a signal during start-up: stopping is not an error
				}
				return err
			}
			trimmed := make(chan struct{})
			go func() {
				defer close(trimmed)
				releaseStartupPages(cmd.Context(), l, d.logger())
			}()
			defer func() { <-trimmed }()
			idle := make(chan struct{})
			ictx, stopIdle := context.WithCancel(cmd.Context())
			go func() {
				defer close(idle)
				trimWhenIdle(ictx, cfg.IdleTrimInterval, d.logger())
			}()
			defer func() { stopIdle(); <-idle }()
			var stuck error
			select {
			case <-cmd.Context().Done():
			case stuck = <-l.Stuck():
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := l.Shutdown(ctx); err != nil {
				return err
			}
			if stuck != nil {
				// Exit 1: the supervisor (systemd Restart=, Docker restart
				// policy) starts a fresh edge with its buffer intact.
				return fmt.Errorf("edge stopped: %w; restart it (run it under a supervisor that does)", stuck)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "config", "", "config file")
	f.String("bundle", "", "edge bundle file (mode 0600) from 'tether edge add'")
	f.String("data", "", "data directory for the edge's store")
	f.String("listen", "", "local client address (default 127.0.0.1:4222)")
	f.Bool("allow-remote-clients", false, "allow a non-loopback --listen")
	f.String("transport", "", "tls (default) or websocket")
	f.String("proxy", "", "HTTP(S) forward proxy to the hubs, http://host:port or https://host:port (default: https_proxy; off: direct)")
	f.String("compression", "", "link compression: off, s2_fast (default), s2_better, s2_best, s2_auto")
	f.StringVar(&pprofAddr, "debug-pprof", "", "serve Go profiles on this loopback address (debugging)")
	_ = f.MarkHidden("debug-pprof")
	ef.add(f)
	cmd.AddCommand(newLeafStatusCmd(d))
	return cmd
}

// trimWhenIdle trims the process's memory every interval while it is idle
// (workingset.TrimWhenIdle), until ctx ends.
func trimWhenIdle(ctx context.Context, interval time.Duration, log *slog.Logger) {
	workingset.TrimWhenIdle(ctx, interval, func(tr workingset.IdleTrim) {
		if tr.Err != nil {
			log.Debug("idle: executable pages not released", "err", tr.Err)
			return
		}
		log.Debug("idle: memory trimmed", "executable_bytes", tr.Executable)
	})
}

// releaseStartupPages releases the binary's pages that start-up mapped
// (internal/workingset) once the link is up, or after trimAfter if it does
// not come up, or not at all if ctx ends first: the idle edge's RSS then
// shows the code it runs, not all the code start-up ran once.
func releaseStartupPages(ctx context.Context, l *leaf.Server, log *slog.Logger) {
	wctx, cancel := context.WithTimeout(ctx, trimAfter)
	defer cancel()
	_ = l.WaitLinked(wctx)
	if ctx.Err() != nil {
		return
	}
	released, err := workingset.ReleaseExecutable()
	if err != nil {
		log.Debug("start-up pages not released", "err", err)
		return
	}
	log.Debug("start-up pages released", "bytes", released)
}

func newLeafStatusCmd(d *deps) *cobra.Command {
	var url string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a running edge's link state",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
			if err != nil {
				return fmt.Errorf("connect to edge at %s: %w", url, err)
			}
			defer nc.Close()
			m, err := nc.Request(contract.LeafStatusSubject, nil, 3*time.Second)
			if err != nil {
				return fmt.Errorf("ask edge at %s for status: %w", url, err)
			}
			var st leaf.Status
			if err := json.Unmarshal(m.Data, &st); err != nil {
				return fmt.Errorf("edge at %s: bad status: %w", url, err)
			}
			if asJSON {
				enc := json.NewEncoder(d.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			state := "DOWN"
			if st.Link.Connected {
				state = "UP"
			}
			fmt.Fprintf(d.stdout, "edge %s (domain %s, version %s)\nlink %s since %s (%s ago) via %s\n",
				st.Edge, st.Domain, st.Version, state, st.Link.Since.Format(time.RFC3339),
				time.Since(st.Link.Since).Round(time.Second), st.Link.Transport)
			if st.Link.Proxy != "" {
				fmt.Fprintf(d.stdout, "through proxy %s\n", st.Link.Proxy)
			}
			if st.Link.Connected {
				fmt.Fprintf(d.stdout, "hub %s rtt %s compression %s\n", st.Link.Hub, st.Link.RTT, st.Link.Compression)
			} else if st.Link.LastError != "" {
				fmt.Fprintf(d.stdout, "link last error: %s\n", st.Link.LastError)
			}
			if st.Link.Refused != "" {
				fmt.Fprintf(d.stdout, "link refused: %s\n", st.Link.Refused)
			}
			b := st.Buffer
			health := "ok"
			switch {
			case b.Stalled:
				health = "STALLED"
			case b.Full:
				health = "FULL"
			}
			fmt.Fprintf(d.stdout, "buffer %s: %d messages, %s waiting (oldest %s), %d forwarded, budget %s, disk free %s\n",
				health, b.BacklogMsgs, humanBytes(b.BacklogBytes), orDash(b.OldestAge), b.Forwarded, humanBytes(uint64(max(b.MaxBytes, 0))), humanBytes(b.DiskFree))
			if b.LastError != "" {
				fmt.Fprintf(d.stdout, "buffer last error at %s: %s\n", b.LastErrorAt.Format(time.RFC3339), b.LastError)
			}
			fmt.Fprintf(d.stdout, "commands: %d delivered (cloud seq %d)\n", st.Commands.Delivered, st.Commands.LastSeq)
			if st.Commands.LastError != "" {
				fmt.Fprintf(d.stdout, "commands last error: %s\n", st.Commands.LastError)
			}
			printGatewayStatus(d.stdout, st.Gateway)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "nats://127.0.0.1:4222", "the edge's local client URL")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
