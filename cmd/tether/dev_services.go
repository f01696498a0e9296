package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/fleet"
)

// The dev fabric's services: each dev edge runs two sample micro services
// (echo, and sensor with a "read" endpoint). What reaches them is the dev
// policy's (dev_policy.go): the lab edges expose every service, the dev
// cloud user ("dev") may call them all and the second dev user "viewer"
// only sensor.read (5 calls/s), so the tour can show a denied call. The
// edges get their gateway configurations from the cloud when they link.

// devViewer is the narrower dev cloud user.
const devViewer = "viewer"

// devUser is the dev cloud user of dev.json.
const devUser = "dev"

// ensureDevUser creates the dev cloud user of the dev policy unless it
// exists and returns its creds file; when the policy file no longer names
// it, the store's own cloud user (admin, no service grants) stands in.
func ensureDevUser(store *accounts.Store) string {
	path, err := store.AddCloudUser(devUser, "", nil, time.Time{})
	if errors.Is(err, accounts.ErrUserExists) {
		return filepath.Join(store.Dir(), "users", devUser+".creds")
	}
	if err != nil {
		return store.CloudCredsFile()
	}
	return path
}

// ensureDevViewer creates the dev store's viewer user unless it exists:
// signed with its own scoped key of the dev policy (or, when the policy
// file no longer names it, as a reader).
func ensureDevViewer(store *accounts.Store) error {
	_, err := store.AddCloudUser(devViewer, "", nil, time.Time{})
	if errors.Is(err, accounts.ErrUserExists) {
		return nil
	}
	if err != nil {
		_, err = store.AddCloudUser(devViewer, contract.RoleReader, nil, time.Time{})
	}
	return err
}

// deliverDevGateways stores the dev edges' gateway configurations of the
// applied policy in the running hub's bucket (the edges fetch theirs when
// they link) and pushes them to edges already linked.
func deliverDevGateways(ctx context.Context, store *accounts.Store, url string, log *slog.Logger) error {
	gws, err := store.Gateways()
	if err != nil {
		return err
	}
	_, version, err := store.AppliedPolicy()
	if err != nil {
		return err
	}
	nc, err := fleet.ConnectCloud(store, url)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := fleet.DeliverGateways(ctx, store, nc, url, gws, version)
	if err != nil {
		return fmt.Errorf("dev gateways: %w", err)
	}
	for _, r := range res {
		log.Debug("dev gateway configuration", "edge", r.Edge, "applied", r.Applied, "pending", r.Pending, "err", r.Error)
	}
	groups, err := store.GroupStreams()
	if err == nil {
		_, err = fleet.ApplyGroupStreams(ctx, nc, groups)
	}
	if err != nil {
		return fmt.Errorf("dev group streams: %w", err)
	}
	return nil
}

// startDevServices runs the sample services at a dev edge's local port;
// the returned func stops them.
func startDevServices(url, edge string) (func(), error) {
	nc, err := nats.Connect(url, nats.Name("tether-dev-services"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("dev services at %s: %w", edge, err)
	}
	echo, err := micro.AddService(nc, micro.Config{Name: "echo", Version: "1.0.0", Description: "answers with what it gets"})
	if err == nil {
		err = echo.AddEndpoint("echo", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) }))
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("dev echo service at %s: %w", edge, err)
	}
	sensor, err := micro.AddService(nc, micro.Config{Name: "sensor", Version: "1.0.0", Description: "reads the (simulated) temperature sensor"})
	if err == nil {
		err = sensor.AddEndpoint("read", micro.HandlerFunc(func(r micro.Request) {
			_ = r.RespondJSON(map[string]any{"edge": edge, "sensor": "temp", "celsius": 20 + rand.Float64()*5, "at": time.Now().UTC()})
		}))
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("dev sensor service at %s: %w", edge, err)
	}
	return nc.Close, nil
}
