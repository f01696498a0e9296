package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/tether-fabric/tether/internal/sitefile"

	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/securefile"
	"github.com/tether-fabric/tether/leaf"
)

// devEdges are the edges of the dev fabric.
var devEdges = []string{"dev-a", "dev-b"}

// DevInfo is what 'tether dev' writes to <dir>/dev.json for scripts.
type DevInfo struct {
	Hub   DevHub    `json:"hub"`
	Edges []DevEdge `json:"edges"`
}

// DevHub tells a cloud client how to reach the dev hub.
type DevHub struct {
	ClientURL  string `json:"client_url"`
	Creds      string `json:"creds"`
	CA         string `json:"ca"`
	MonitorURL string `json:"monitor_url"`
	LeafURL    string `json:"leaf_url"`
	WSURL      string `json:"websocket_url"`
}

// DevEdge tells a local client how to reach a dev edge.
type DevEdge struct {
	Name      string `json:"name"`
	ClientURL string `json:"client_url"`
	Domain    string `json:"domain"`
}

type devPorts struct {
	client, leaf, ws, monitor int
	edges                     []int
}

func newDevCmd(d *deps) *cobra.Command {
	var dir string
	var random bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole fabric in one process: a hub and two edges",
		Long: `Run a hub and two edges (dev-a, dev-b) in one process, on loopback.
Identities are created in --dir on first run and reused after. The file
<dir>/dev.json tells scripts and NATS clients how to connect. Ctrl-C stops.

Ports: hub client 4222 (TLS), leafnode 7422, WebSocket 7443, monitor 8222,
dev-a 4223, dev-b 4224; --random-ports picks free ones instead.

The log shows Tether's own lines and every warning; the embedded
nats-servers' notices show with --log-level debug. With --dir, give the
same directory to the other commands (--dev --dev-dir DIR); the tour
printed at start says so. A dev edge revoked with 'tether edge revoke' is
made again (new account, empty buffer) at the next start; to reset the
whole dev fabric, stop it and remove its directory.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ports := devPorts{4222, 7422, 7443, 8222, []int{4223, 4224}}
			if random {
				ports = devPorts{0, 0, 0, 0, []int{0, 0}}
			}
			return runDev(cmd.Context(), d, dir, ports)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDir("dev"), "directory for the dev fabric's identities and data")
	cmd.Flags().BoolVar(&random, "random-ports", false, "listen on free ports instead of the defaults")
	return cmd
}

func runDev(ctx context.Context, d *deps, dir string, ports devPorts) error {
	log := d.serverLogger()
	dir, err := filepath.Abs(dir) // dev.json paths must work from anywhere
	if err != nil {
		return fmt.Errorf("dev dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dev dir: %w", err)
	}
	infoPath := filepath.Join(dir, "dev.json")
	// A dev.json from an earlier run would point scripts at dead ports.
	if err := os.Remove(infoPath); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove stale %s: %w", infoPath, err)
	}
	defer os.Remove(infoPath)
	store, err := accounts.OpenOrInit(filepath.Join(dir, "store"), accounts.DefaultInitOptions())
	if err != nil {
		return err
	}
	for _, e := range devEdges {
		if err := ensureDevEdge(log, store, dir, e); err != nil {
			return err
		}
	}
	// A dev store from an older Tether gets this version's contract, and
	// the dev edges creds of the scoped key (the hub loads the store when it
	// starts, below).
	changed, err := store.Upgrade()
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		for _, e := range devEdges {
			if err := store.RenewLeafCreds(e); err != nil {
				return err
			}
		}
		log.Info("dev store upgraded to this version", "accounts", changed)
	}

	policyPath, err := ensureDevPolicy(dir, store, log)
	if err != nil {
		return err
	}
	devCreds := ensureDevUser(store)

	hc := hub.Defaults()
	hc.Name = "dev-hub"
	hc.Store = store.Dir()
	hc.DataDir = filepath.Join(dir, "hub")
	hc.Listen = fmt.Sprintf("127.0.0.1:%d", ports.client)
	hc.LeafListen = fmt.Sprintf("127.0.0.1:%d", ports.leaf)
	hc.WebsocketListen = fmt.Sprintf("127.0.0.1:%d", ports.ws)
	hc.MonitorListen = fmt.Sprintf("127.0.0.1:%d", ports.monitor)
	h, err := hub.New(hc, log)
	if err != nil {
		return err
	}
	if err := h.Start(ctx); err != nil {
		return fmt.Errorf("%w (is another 'tether dev' or NATS server running? try --random-ports)", err)
	}
	defer h.Shutdown(context.Background())
	// The edges' gateway configurations from the dev policy: in the
	// cloud before the edges link, so each fetches its own at link-up.
	if err := h.WaitReady(ctx); err != nil {
		return err
	}
	if err := deliverDevGateways(ctx, store, h.ClientURL(), log); err != nil {
		return err
	}

	info := DevInfo{Hub: DevHub{
		ClientURL: h.ClientURL(), Creds: devCreds, CA: store.CAFile(),
		MonitorURL: h.MonitorURL(), LeafURL: h.LeafURL(), WSURL: h.WebsocketURL(),
	}}
	var leaves []*leaf.Server
	defer func() {
		for _, l := range leaves {
			_ = l.Shutdown(context.Background())
		}
	}()
	for i, e := range devEdges {
		l, err := startDevEdge(ctx, log, store, dir, e, h, ports.edges[i])
		if err != nil {
			return err
		}
		leaves = append(leaves, l)
		info.Edges = append(info.Edges, DevEdge{Name: e, ClientURL: l.ClientURL(), Domain: l.Domain()})
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for _, l := range leaves {
		if err := l.WaitLinked(wctx); err != nil {
			return err
		}
	}
	if err := ensureDevViewer(store); err != nil {
		return err
	}
	for _, l := range leaves {
		stop, err := startDevServices(l.ClientURL(), l.Edge())
		if err != nil {
			return err
		}
		defer stop()
	}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	if err := securefile.Write(infoPath, append(data, '\n'), 0o600); err != nil {
		return err
	}
	printTour(d.stdout, infoPath, info)
	printPolicyTour(d.stdout, policyPath, store.Dir(), info)
	<-ctx.Done()
	log.Info("shutting down dev fabric")
	return nil
}

// ensureDevEdge makes the dev edge unless it exists. A dev edge revoked by
// the user (trying 'tether edge revoke') is made again, with a new account
// and an empty buffer: the dev fabric always starts with its two edges.
func ensureDevEdge(log *slog.Logger, store *accounts.Store, dir, name string) error {
	if _, err := store.Edge(name); err == nil {
		at, revoked := store.Revoked(name)
		if !revoked {
			return nil
		}
		if err := store.RemoveEdge(name); err != nil {
			return fmt.Errorf("recreate revoked dev edge %s: %w (or reset the dev fabric: stop it and remove %s)", name, err, dir)
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("recreate revoked dev edge %s: %w (or reset the dev fabric: stop it and remove %s)", name, err, dir)
		}
		log.Warn("dev edge was revoked; made it again with a new account and an empty buffer", "edge", name, "revoked", at.Format(time.RFC3339))
	}
	if _, err := store.AddEdge(name); err != nil {
		return fmt.Errorf("dev edge %s: %w (reset the dev fabric: stop it and remove %s)", name, err, dir)
	}
	return nil
}

func startDevEdge(ctx context.Context, log *slog.Logger, store *accounts.Store, dir, name string, h *hub.Server, port int) (*leaf.Server, error) {
	b, err := store.Bundle(name)
	if err != nil {
		return nil, err
	}
	b.HubURLs = []string{h.LeafURL()}
	b.WebsocketURLs = []string{h.WebsocketURL()}
	bundle := filepath.Join(dir, name+".bundle")
	if err := sitefile.WriteBundle(bundle, b); err != nil {
		return nil, err
	}
	lc := leaf.Defaults()
	lc.Bundle = bundle
	lc.DataDir = filepath.Join(dir, name)
	lc.Listen = fmt.Sprintf("127.0.0.1:%d", port)
	l, err := leaf.New(lc, log)
	if err != nil {
		return nil, err
	}
	if err := l.Start(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func printTour(w io.Writer, infoPath string, info DevInfo) {
	a, b := info.Edges[0], info.Edges[1]
	self := "tether"
	if strings.Contains(os.Args[0], "go-build") {
		self = "go run ./cmd/tether"
	}
	tour := `
Tether dev fabric is up: hub %s, edges %s (%s) and %s (%s).
Connection details for scripts and NATS clients: %s

Try, in another terminal:
  # watch what edges send to the cloud
  go run ./cmd/tether sub --dev 'edges.*.telemetry.>'
  # publish telemetry at edge %s: stored on its disk first, then in the cloud stream
  # TELEMETRY as edges.%s.telemetry.temp (exactly once, in order, even across outages)
  go run ./cmd/tether pub --dev --edge %s telemetry.temp 21.5
  # listen for commands at edge %s, then send one from the cloud (queued while the
  # edge is offline, delivered in order on reconnect)
  go run ./cmd/tether sub --dev --edge %s 'cmd.>'
  go run ./cmd/tether pub --dev edges.%s.cmd.reboot now
  # the edge's link and buffer, and the fleet as the hubs see it (CLOUD MSGS counts
  # what the cloud stream holds per edge)
  go run ./cmd/tether leaf status --url %s
  go run ./cmd/tether status --dev
  # services at the edges, by name (the policy file decides who may call what):
  # discovery, a call, a call the hub refuses the narrower user viewer, one its
  # grant allows, and the audit trail of the calls the edges served
  go run ./cmd/tether svc ls --dev
  go run ./cmd/tether svc call --dev %s/echo.echo hello
  go run ./cmd/tether svc call --dev --as viewer %s/echo.echo hello
  go run ./cmd/tether svc call --dev --as viewer %s/sensor.read
  go run ./cmd/tether audit --dev

With the nats CLI: nats --server %s --creds %s --tlsca %s sub 'edges.*.telemetry.>'
Ctrl-C stops the fabric; identities and data stay in the dev directory.
`
	tour = strings.ReplaceAll(tour, "go run ./cmd/tether", self)
	tour = withDevDir(tour, filepath.Dir(infoPath))
	fmt.Fprintf(w, tour, info.Hub.ClientURL, a.Name, a.ClientURL, b.Name, b.ClientURL, infoPath,
		a.Name, a.Name, a.Name, b.Name, b.Name, b.Name, a.ClientURL, a.Name, a.Name, b.Name,
		info.Hub.ClientURL, info.Hub.Creds, info.Hub.CA)
}

// devFlag is a --dev flag in commands shown to the user.
var devFlag = regexp.MustCompile(`--dev(\s)`)

// withDevDir adds --dev-dir devDir to every --dev flag of the commands in
// text when devDir is not the default dev dir, so that each command finds
// the fabric in devDir.
func withDevDir(text, devDir string) string {
	if def, _ := filepath.Abs(defaultDir("dev")); devDir == def {
		return text
	}
	return devFlag.ReplaceAllString(text, "--dev --dev-dir "+shellQuote(devDir)+"$1")
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// readDevInfo reads the running dev fabric's dev.json.
func readDevInfo(devDir string) (DevInfo, error) {
	path := filepath.Join(devDir, "dev.json")
	var info DevInfo
	data, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("read dev fabric details (is 'tether dev' running?): %w", err)
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}
