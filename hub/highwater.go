package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
)

// highWaterQueue makes one hub of a cluster answer each question.
const highWaterQueue = "tether-high-water"

// serveHighWater answers edges' high-water questions (edges.<edge>.hwm,
// reached through each edge's own import, so the subject names the asking
// edge) until ctx ends. The forwarder asks at the start of each session
// and skips what the cloud already holds: exactly once even when a lost
// PubAck is resent after the stream's duplicate window.
func (s *Server) serveHighWater(ctx context.Context, credsFile string) error {
	nc, js, err := s.cloudJetStream(ctx, credsFile, "tether-hub-high-water")
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := nc.QueueSubscribe(contract.CloudHighWaterSubject("*"), highWaterQueue, func(m *nats.Msg) {
		hw := lookupHighWater(ctx, js, strings.Split(m.Subject, ".")[1])
		data, _ := json.Marshal(hw)
		_ = m.Respond(data)
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	<-ctx.Done()
	return nil
}

func lookupHighWater(ctx context.Context, js jetstream.JetStream, edge string) contract.HighWater {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, contract.TelemetryStream)
	if err != nil {
		return contract.HighWater{Error: "telemetry stream: " + err.Error()}
	}
	m, err := st.GetLastMsgForSubject(ctx, contract.CloudTelemetrySubject(edge))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return contract.HighWater{}
	}
	if err != nil {
		return contract.HighWater{Error: "last message of " + edge + ": " + err.Error()}
	}
	seq, err := strconv.ParseUint(m.Header.Get(contract.HeaderSeq), 10, 64)
	if err != nil {
		return contract.HighWater{Error: fmt.Sprintf("last message of %s has no %s header", edge, contract.HeaderSeq)}
	}
	return contract.HighWater{Origin: m.Header.Get(contract.HeaderOrigin), Seq: seq}
}
