package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/internal/sysreq"
	"github.com/tether-fabric/tether/policy"
)

// EdgeView is one edge as the hubs see it: its link (from the hubs'
// leafnode tables, not from anything the edge reports) and its cloud-side
// queues.
type EdgeView struct {
	Edge    string `json:"edge"`
	Account string `json:"account"`
	Online  bool   `json:"online"`
	// Hub is the hub the edge is attached to; RTT as that hub measures it.
	Hub string `json:"hub,omitempty"`
	RTT string `json:"rtt,omitempty"`
	// Transport is "tls" or "websocket" while online.
	Transport string `json:"transport,omitempty"`
	// CommandsWaiting are commands queued in the cloud for the edge.
	CommandsWaiting uint64 `json:"commands_waiting"`
	// TelemetryMsgs is how many of the edge's messages the CLOUD telemetry
	// stream holds.
	TelemetryMsgs uint64 `json:"telemetry_msgs"`
	Error         string `json:"error,omitempty"`
}

type leafzReply struct {
	Server struct {
		Name string `json:"name"`
	} `json:"server"`
	Data struct {
		Leafs []struct {
			RTT       string `json:"rtt"`
			Websocket bool   `json:"websocket"`
		} `json:"leafs"`
	} `json:"data"`
}

// Fleet reports every edge as the hubs see it. sys is a system-account
// connection (for the hubs' LEAFZ), cloud a CLOUD-account connection (for
// the streams). accounts maps edge names to account public keys.
func Fleet(ctx context.Context, sys, cloud *nats.Conn, accounts map[string]string, names []string) ([]EdgeView, error) {
	js, err := jetstream.NewWithDomain(cloud, JetStreamDomain)
	if err != nil {
		return nil, err
	}
	var counts map[string]uint64
	if st, err := js.Stream(ctx, TelemetryStream); err == nil {
		if info, err := st.Info(ctx, jetstream.WithSubjectFilter("edges.*.telemetry.>")); err == nil {
			counts = map[string]uint64{}
			for subj, n := range info.State.Subjects {
				counts[edgeOf(subj)] += n
			}
		}
	}
	var out []EdgeView
	for _, name := range names {
		v := EdgeView{Edge: name, Account: accounts[name], TelemetryMsgs: counts[name]}
		ectx, cancel := context.WithTimeout(ctx, time.Second)
		err := sysreq.Gather(ectx, sys, fmt.Sprintf("$SYS.REQ.ACCOUNT.%s.LEAFZ", v.Account), nil, 250*time.Millisecond, 0, func(data []byte) {
			var r leafzReply
			if json.Unmarshal(data, &r) != nil || len(r.Data.Leafs) == 0 {
				return
			}
			l := r.Data.Leafs[0]
			v.Online, v.Hub, v.RTT, v.Transport = true, r.Server.Name, l.RTT, "tls"
			if l.Websocket {
				v.Transport = "websocket"
			}
		})
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			v.Error = err.Error()
		}
		if ci, err := js.Consumer(ctx, policy.CommandsStream, policy.CommandConsumer(name)); err == nil {
			info := ci.CachedInfo()
			v.CommandsWaiting = info.NumPending + uint64(info.NumAckPending)
		} else {
			v.Error = fmt.Sprintf("command queue: %v", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// edgeOf returns <edge> from edges.<edge>.telemetry.<...>.
func edgeOf(subj string) string {
	const p = "edges."
	if len(subj) <= len(p) {
		return ""
	}
	rest := subj[len(p):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '.' {
			return rest[:i]
		}
	}
	return rest
}
