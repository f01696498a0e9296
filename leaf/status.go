package leaf

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/tether-fabric/tether/contract"
)

// StatusSubject is the local subject on which an edge answers with its
// Status as JSON. It is served on the edge's loopback port only: the leaf
// user's permissions do not let it cross to the hub.
const StatusSubject = contract.LeafStatusSubject

// Status is what 'tether leaf status' shows.
type Status struct {
	Edge     string         `json:"edge"`
	Account  string         `json:"account"`
	Domain   string         `json:"domain"`
	Version  string         `json:"version"`
	Client   string         `json:"client_url"`
	Link     Link           `json:"link"`
	Buffer   UplinkStatus   `json:"buffer"`
	Commands DownlinkStatus `json:"commands"`
	// Gateway is the service gateway: local services exposed and its
	// counters.
	Gateway *GatewayStatus `json:"gateway,omitempty"`
}

// Status returns the edge's status.
func (s *Server) Status() Status {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r := s.Report(ctx)
	return Status{
		Edge:     s.bundle.Edge,
		Account:  s.bundle.Account,
		Domain:   s.bundle.Domain,
		Version:  r.Version,
		Client:   s.ClientURL(),
		Link:     s.Link(),
		Buffer:   r.Buffer,
		Commands: r.Commands,
		Gateway:  s.gw.status(),
	}
}

func (s *Server) startStatusService() error {
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        "tether-leaf",
		Version:     "1.0.0",
		Description: "Tether edge status",
		Metadata:    map[string]string{"edge": s.bundle.Edge},
	})
	if err != nil {
		return fmt.Errorf("status service: %w", err)
	}
	return svc.AddEndpoint("status", micro.HandlerFunc(func(r micro.Request) {
		data, err := json.Marshal(s.Status())
		if err != nil {
			_ = r.Error("500", err.Error(), nil)
			return
		}
		_ = r.Respond(data)
	}), micro.WithEndpointSubject(StatusSubject))
}
