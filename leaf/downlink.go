package leaf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/linkloop"
	"github.com/tether-fabric/tether/internal/securefile"
)

// The edge's downlink: commands for the edge wait in the CLOUD stream
// COMMANDS (edges.<edge>.cmd.>) while it is offline. Once linked, the
// downlink pulls them one at a time from the edge's own durable consumer,
// publishes each on cmd.> into the site account (stored there in the
// stream CommandStream, and seen by core subscribers), records its cloud
// sequence in the data dir, and only then acks it in the cloud. A command
// redelivered after a lost ack is acked again but not delivered twice: the
// record (which no site client can write) says it was delivered, and the
// site stream's message id (the cloud sequence) catches a redelivery after
// a crash between delivery and record.
const (
	// CommandStream is the site account's stream of delivered commands.
	CommandStream = contract.EdgeCommandsStream
	// HeaderCloudSeq carries the command's sequence in the cloud stream.
	HeaderCloudSeq = contract.HeaderCloudSeq

	// downlinkWait is how long one pull waits at the hub. A command
	// queued meanwhile is delivered at once, so a longer wait costs no
	// latency; what it saves is the pulls of an idle edge, each one work
	// for the hub and the edge (docs/BENCHMARKS.md, "Idle edge"). A pull made
	// just before the link dies (or the edge stops) stays at the hub this
	// long and can take one command with it, which the consumer
	// redelivers after its ack wait (2s): a longer wait does not make that
	// delay longer, it only makes it possible for longer after a cut.
	downlinkWait = 30 * time.Second
	// localDeliverWait bounds the local publish of a command.
	localDeliverWait = 10 * time.Second

	// downlinkStateFile records the cloud sequence of the last command
	// delivered, in the data dir.
	downlinkStateFile = "downlink.json"
)

type downlink struct {
	edge   string
	nc     *nats.Conn
	js     jetstream.JetStream
	linked func() bool
	// lost returns a channel closed when the link next goes down.
	lost   func() <-chan struct{}
	prefix string // cloud subject prefix: edges.<edge>.
	inbox  string
	sub    *nats.Subscription
	state  string // path of downlinkStateFile

	mu        sync.Mutex
	last      uint64 // cloud sequence of the last command delivered locally
	delivered uint64
	lastErr   string
}

// DownlinkStatus is the command path's state.
type DownlinkStatus = contract.CommandStatus

func startDownlink(ctx context.Context, edge string, nc *nats.Conn, dataDir string, linked func() bool, lost func() <-chan struct{}) (*downlink, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	// One long-lived inbox: its interest crosses the link once per
	// connection, so a pull's answer is never sent before the hub knows
	// where to deliver it (a per-request inbox could lose the delivery and
	// hold the command until its ack wait expires).
	inbox := contract.UplinkInbox + ".down." + nats.NewInbox()[len(nats.InboxPrefix):]
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("downlink inbox: %w", err)
	}
	d := &downlink{edge: edge, nc: nc, js: js, linked: linked, lost: lost, prefix: contract.CloudCommandPrefix(edge), inbox: inbox, sub: sub,
		state: filepath.Join(dataDir, downlinkStateFile)}
	if d.last, err = readDownlinkState(d.state); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return d, nil
}

// downlinkState is what downlinkStateFile holds.
type downlinkState struct {
	LastCloudSeq uint64 `json:"last_cloud_seq"`
}

func readDownlinkState(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("downlink state: %w", err)
	}
	var st downlinkState
	if err := json.Unmarshal(data, &st); err != nil {
		return 0, fmt.Errorf("downlink state %s: %w", path, err)
	}
	return st.LastCloudSeq, nil
}

func (d *downlink) run(ctx context.Context) {
	linkloop.While(ctx, d.linked, func(ctx context.Context) error {
		// A pull made just before the link died gets no answer: stop
		// waiting for it as soon as the link is down, so the first pull
		// after a reconnect is not held up by it.
		lost := d.lost()
		if !d.linked() {
			return nil // linkloop.While waits for the link
		}
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { // ends with sctx, at the latest when this step returns
			select {
			case <-lost:
				cancel()
			case <-sctx.Done():
			}
		}()
		err := d.next(sctx)
		if sctx.Err() != nil && ctx.Err() == nil {
			return nil // the link went down; linkloop.While waits for it
		}
		if err != nil && ctx.Err() == nil {
			d.mu.Lock()
			d.lastErr = err.Error()
			d.mu.Unlock()
		}
		return err
	})
}

// next waits up to downlinkWait for one queued command and delivers it.
func (d *downlink) next(ctx context.Context) error {
	req, _ := json.Marshal(map[string]any{"batch": 1, "expires": downlinkWait.Nanoseconds()})
	rctx, cancel := context.WithTimeout(ctx, downlinkWait+3*time.Second)
	defer cancel()
	if err := d.nc.PublishRequest(contract.DownlinkNext, d.inbox, req); err != nil {
		return fmt.Errorf("ask the cloud for commands: %w", err)
	}
	m, err := d.sub.NextMsgWithContext(rctx)
	if err != nil {
		return fmt.Errorf("ask the cloud for commands: %w", err)
	}
	if status := m.Header.Get("Status"); status != "" {
		switch status {
		case "404", "408", "409":
			return nil // nothing queued (or the request expired): ask again
		}
		return fmt.Errorf("cloud command queue: status %s %s", status, m.Header.Get("Description"))
	}
	seq, err := cloudSeq(m.Reply)
	if err != nil {
		return err
	}
	d.mu.Lock()
	dup := seq <= d.last
	d.mu.Unlock()
	if !dup {
		// The local publish does not need the link: a link lost meanwhile
		// (which cancels ctx) must not cut it short, or the command could
		// be stored and seen by subscribers without being recorded, and
		// be delivered again when the cloud redelivers it.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), localDeliverWait)
		err := d.deliver(dctx, m, seq)
		cancel()
		if err != nil {
			return err
		}
	}
	if _, err := d.nc.RequestWithContext(rctx, m.Reply, []byte("+ACK")); err != nil {
		return fmt.Errorf("ack command %d in the cloud: %w", seq, err)
	}
	return nil
}

// deliver publishes a command locally on cmd.> and records its sequence.
func (d *downlink) deliver(ctx context.Context, m *nats.Msg, seq uint64) error {
	subj, ok := strings.CutPrefix(m.Subject, d.prefix)
	if !ok || !strings.HasPrefix(subj, "cmd.") {
		return fmt.Errorf("command on unexpected subject %q", m.Subject)
	}
	h := nats.Header{}
	for k, v := range m.Header {
		h[k] = v
	}
	h.Set(HeaderCloudSeq, strconv.FormatUint(seq, 10))
	h.Set(nats.MsgIdHdr, "cloud-"+strconv.FormatUint(seq, 10))
	if _, err := d.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Header: h, Data: m.Data}); err != nil {
		return fmt.Errorf("deliver command %d locally: %w", seq, err)
	}
	b, _ := json.Marshal(downlinkState{LastCloudSeq: seq})
	if err := securefile.Write(d.state, b, 0o600); err != nil {
		return fmt.Errorf("record delivered command %d: %w", seq, err)
	}
	d.mu.Lock()
	d.last = seq
	d.delivered++
	d.mu.Unlock()
	return nil
}

// cloudSeq reads the stream sequence from a JetStream ack subject:
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
// (or the v2 form with domain and account hash before the stream).
func cloudSeq(reply string) (uint64, error) {
	tok := strings.Split(reply, ".")
	if len(tok) < 9 || tok[0] != "$JS" || tok[1] != "ACK" {
		return 0, fmt.Errorf("command without a JetStream ack subject (%q)", reply)
	}
	n := len(tok)
	seq, err := strconv.ParseUint(tok[n-4], 10, 64)
	if err != nil {
		return 0, errors.New("bad sequence in ack subject " + reply)
	}
	return seq, nil
}

func (d *downlink) status() DownlinkStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	return DownlinkStatus{Delivered: d.delivered, LastSeq: d.last, LastError: d.lastErr}
}
