package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/internal/securefile"
)

// devPolicyFile is the dev fabric's access policy, written to
// <dir>/policy.yaml on first start for a newcomer to read and edit, with
// POLICY and STORE in its header made the file's and the store's paths
// and the dev dir added to --dev when it is not the default (devPolicy).
const devPolicyFile = `# The dev fabric's access policy (see docs/POLICY.md). Edit it, then apply
# it to the running fabric; connected users get the change live:
#   tether policy diff  POLICY --dir STORE
#   tether policy apply POLICY --dev
version: 1

# The two dev edges and their labels; groups pick edges by label.
edges:
  dev-a: {labels: {site: lab, line: "1"}}
  dev-b: {labels: {site: lab, line: "2"}}
groups:
  lab:
    match_labels: {site: lab}
    # Every service started at a lab edge is reachable from outside it
    # (the edge's gateway still checks who calls, below). Name services
    # instead of "*" to expose only those.
    expose: ["*"]

# Cloud roles: 'tether user add NAME --role ROLE' signs a user with the
# role's key, so what the role may do changes with this file, live.
roles:
  reader:
    description: read every edge's telemetry
    telemetry: ["*"]
  commander:
    description: send any command to any edge
    commands:
      - to: ["*"]
        subjects: [">"]
  admin:
    admin: true
  dashboard:
    description: reads dev-a only; add dev-b (or "group:lab") and apply
    telemetry: [dev-a]

# Cloud users with grants of their own, signed with their own scoped keys.
# "dev" is the dev cloud user (dev.json's creds, what --dev commands use):
# anything in the cloud, and every service on the lab edges, so one a
# newcomer starts at a dev edge is callable at once. "viewer" may only read
# sensors, 5 calls/s: calling echo is refused. Every call is audited at
# the serving edge ('tether audit').
users:
  dev:
    description: the dev cloud user
    admin: true
    services:
      - {service: "*", on: ["group:lab"], audit: true}
  viewer:
    description: the narrower dev user of the services tour
    services:
      - {service: sensor, endpoint: read, on: ["group:lab"], rate: 5/s, burst: 10, max_in_flight: 4, audit: true}
`

// ensureDevPolicy writes the dev policy on first start and applies the
// file to the store when it differs from the policy in force (the hub,
// started after, loads the store). An invalid file stops the start with
// every problem listed.
func ensureDevPolicy(dir string, store *accounts.Store, log *slog.Logger) (string, error) {
	path := filepath.Join(dir, "policy.yaml")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := securefile.Write(path, []byte(devPolicy(path, store.Dir())), 0o644); err != nil {
			return "", err
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("dev policy: %w", err)
	}
	applied, version, err := store.AppliedPolicy()
	if err != nil {
		return "", err
	}
	if version > 0 && bytes.Equal(applied, data) {
		return path, nil
	}
	plan, err := store.PlanPolicy(path, data)
	if err != nil {
		for _, d := range plan.Diagnostics {
			log.Error("dev policy", "problem", d.String())
		}
		return "", fmt.Errorf("dev policy %s: %w", path, err)
	}
	v, _, err := store.ApplyPolicy(plan, 0)
	if err != nil {
		return "", err
	}
	if err := store.MarkPolicyPushed(v.Version); err != nil { // the hub is not running yet
		return "", err
	}
	log.Info("dev policy applied", "file", path, "version", v.Version)
	return path, nil
}

// devPolicy is devPolicyFile for the policy file at path and the store
// at storeDir, in the dev dir that holds them.
func devPolicy(path, storeDir string) string {
	header, body, _ := strings.Cut(devPolicyFile, "version: 1\n")
	header = strings.NewReplacer("POLICY", shellQuote(path), "STORE", shellQuote(storeDir)).Replace(header)
	return withDevDir(header, filepath.Dir(path)) + "version: 1\n" + body
}

// printPolicyTour shows one policy change applied live.
func printPolicyTour(w io.Writer, policyPath, storeDir string, info DevInfo) {
	tour := fmt.Sprintf(`The access policy is %s. See one change applied live:
  tether user add dash --role dashboard --dir %s
  tether sub --server %s --creds %s --tlsca %s 'edges.dev-b.telemetry.>'
  #   refused: the dashboard role reads dev-a only. Now edit the file (telemetry: [dev-a, dev-b]):
  tether policy diff %s --dir %s
  tether policy apply %s --dev
  #   the same dash creds now read dev-b
`, shellQuote(policyPath), shellQuote(storeDir), info.Hub.ClientURL, shellQuote(filepath.Join(storeDir, "users", "dash.creds")),
		shellQuote(info.Hub.CA), shellQuote(policyPath), shellQuote(storeDir), shellQuote(policyPath))
	if strings.Contains(os.Args[0], "go-build") {
		tour = strings.ReplaceAll(tour, "  tether ", "  go run ./cmd/tether ")
	}
	fmt.Fprint(w, withDevDir(tour, filepath.Dir(storeDir)))
}
