package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/tether-fabric/tether/accounts"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
	"github.com/tether-fabric/tether/policy"
)

// The dev fabric's services: each dev edge runs two sample micro services
// (echo, and sensor with a "read" endpoint), and its gateway exposes every
// service at the edge to the dev cloud user ("cloud"), so one a newcomer
// starts at a dev edge is callable at once; the second dev user "viewer"
// may only read sensors (5 calls/s), so the tour can show a denied call.

// devViewer is the narrower dev cloud user.
const devViewer = "viewer"

// devGateway is a dev edge's gateway configuration.
func devGateway(edge string) policy.Gateway {
	return policy.Gateway{Edge: edge, Expose: []string{"*"}, Grants: []policy.ServiceGrant{
		{Caller: policy.Principal{Kind: policy.PrincipalUser, Name: "cloud"}, Service: "*", Endpoint: "*", Audit: true},
		{Caller: policy.Principal{Kind: policy.PrincipalUser, Name: devViewer}, Service: "sensor", Endpoint: "read",
			Rate: 5, Burst: 10, MaxInFlight: 4, Audit: true},
	}}
}

// writeDevGateway writes edge's gateway configuration to the dev dir and
// returns its path.
func writeDevGateway(dir, edge string) (string, error) {
	data, err := json.MarshalIndent(devGateway(edge), "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, edge+".gateway.json")
	return path, securefile.Write(path, append(data, '\n'), 0o600)
}

// ensureDevViewer creates the dev store's viewer user unless it exists.
func ensureDevViewer(store *accounts.Store) error {
	_, err := store.AddCloudUser(devViewer, contract.RoleAdmin, nil, time.Time{})
	if errors.Is(err, accounts.ErrUserExists) {
		return nil
	}
	return err
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
