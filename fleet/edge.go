package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/cloudjs"
)

// PrepareEdge sets up the cloud side of a new edge on running hubs (its
// command consumer), through cloud, a connection of a CLOUD user.
func PrepareEdge(ctx context.Context, cloud *nats.Conn, edge string) error {
	js, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	if err != nil {
		return err
	}
	return cloudjs.Retry(ctx, func(ctx context.Context) error { return cloudjs.EnsureCommandConsumer(ctx, js, edge) })
}

// EdgeDataRemoved counts what ForgetEdge deleted.
type EdgeDataRemoved struct {
	TelemetryMsgs uint64 `json:"telemetry_msgs"`
	CommandMsgs   uint64 `json:"command_msgs"`
	Consumer      bool   `json:"consumer"`
}

// ForgetEdge deletes the cloud side of an edge, as the cloud user: its
// command consumer and every message of edges.<edge>.> in the CLOUD
// streams (telemetry, queued commands, its last status report). It is
// idempotent.
func ForgetEdge(ctx context.Context, cloud *nats.Conn, edge string) (EdgeDataRemoved, error) {
	var out EdgeDataRemoved
	js, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	if err != nil {
		return out, err
	}
	err = js.DeleteConsumer(ctx, contract.CommandsStream, contract.CommandConsumer(edge))
	switch {
	case err == nil:
		out.Consumer = true
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	default:
		return out, fmt.Errorf("forget edge %s: delete consumer %s: %w", edge, contract.CommandConsumer(edge), err)
	}
	for _, p := range []struct {
		stream string
		n      *uint64
	}{{contract.TelemetryStream, &out.TelemetryMsgs}, {contract.CommandsStream, &out.CommandMsgs}, {contract.EdgeStatusStream, new(uint64)}} {
		st, err := js.Stream(ctx, p.stream)
		if err != nil {
			return out, fmt.Errorf("forget edge %s: stream %s: %w", edge, p.stream, err)
		}
		subj := contract.CloudEdgeSubjects(edge)
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
		if err != nil {
			return out, fmt.Errorf("forget edge %s: stream %s: %w", edge, p.stream, err)
		}
		for _, n := range info.State.Subjects {
			*p.n += n
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return out, fmt.Errorf("forget edge %s: purge %s in %s: %w", edge, subj, p.stream, err)
		}
	}
	return out, nil
}
