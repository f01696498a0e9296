package leaf

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/policy"
)

// The edge's store-and-forward buffer: every local publish on telemetry.>
// lands in the file-backed work-queue stream BufferStream first; the
// forwarder reads it through the durable consumer uplinkConsumer, publishes
// each message to the cloud (tether.up.telemetry.> becomes
// edges.<edge>.telemetry.> through the edge account's import) with a
// message id, and acknowledges it locally only after the cloud's PubAck.
const (
	// BufferStream is the edge-local stream that buffers telemetry.
	BufferStream   = "TELEMETRY"
	uplinkConsumer = "uplink"
	// uplinkInbox is the forwarder's inbox prefix; the leaf user may
	// receive it, so cloud PubAcks reach the edge.
	uplinkInbox = policy.UplinkInbox

	// Headers on every forwarded message.
	HeaderEdge   = "Tether-Edge"
	HeaderSeq    = "Tether-Seq"
	HeaderOrigin = "Tether-Origin"

	uplinkBatch     = 512
	uplinkAckWait   = 10 * time.Second
	uplinkMaxBackof = 5 * time.Second
)

// uplink forwards the buffer to the cloud.
type uplink struct {
	edge   string
	nc     *nats.Conn
	js     jetstream.JetStream
	cons   jetstream.Consumer
	origin string // identifies this incarnation of the buffer stream
	linked func() bool

	mu        sync.Mutex
	forwarded uint64
	lastErr   string
	lastErrAt time.Time
	lastOK    time.Time
}

// UplinkStatus is the buffer's state as 'tether leaf status' shows it.
type UplinkStatus struct {
	// Backlog is what waits on the edge's disk for the cloud.
	BacklogMsgs  uint64    `json:"backlog_msgs"`
	BacklogBytes uint64    `json:"backlog_bytes"`
	OldestAge    string    `json:"oldest_age,omitempty"`
	Forwarded    uint64    `json:"forwarded"`
	LastForward  time.Time `json:"last_forward,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at,omitempty"`
	// Stalled is true when there is a backlog and the link is up, but
	// nothing reached the cloud for stallAfter.
	Stalled bool `json:"stalled"`
	// Full is true when the buffer is at its byte budget.
	Full     bool   `json:"full"`
	MaxBytes int64  `json:"max_bytes"`
	Origin   string `json:"origin"`
}

const stallAfter = 15 * time.Second

// bufferConfig is the edge stream's configuration.
func bufferConfig(c Config) jetstream.StreamConfig {
	discard := jetstream.DiscardNew
	if c.BufferFull == BufferDropOldest {
		discard = jetstream.DiscardOld
	}
	return jetstream.StreamConfig{
		Name:        BufferStream,
		Description: "Tether store-and-forward buffer: telemetry waiting for the cloud",
		Subjects:    []string{policy.LocalTelemetry},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		MaxBytes:    c.BufferMaxBytes,
		Discard:     discard,
		Duplicates:  2 * time.Minute,
	}
}

func startUplink(ctx context.Context, edge string, nc *nats.Conn, c Config, linked func() bool) (*uplink, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(uplinkBatch),
		jetstream.WithPublishAsyncTimeout(uplinkAckWait))
	if err != nil {
		return nil, err
	}
	st, err := js.CreateOrUpdateStream(ctx, bufferConfig(c))
	if err != nil {
		return nil, fmt.Errorf("buffer stream %s: %w", BufferStream, err)
	}
	// A consumer left by a previous run may hold messages it delivered but
	// never got acknowledged; they would come back only after AckWait,
	// behind newer ones. The buffer is a work queue (forwarded messages are
	// gone), so a fresh consumer starts exactly at the oldest unforwarded
	// message, in order.
	if err := st.DeleteConsumer(ctx, uplinkConsumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("reset buffer consumer: %w", err)
	}
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       uplinkConsumer,
		Description:   "Tether forwarder to the cloud",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       uplinkAckWait * 3,
		MaxAckPending: uplinkBatch * 2,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("buffer consumer: %w", err)
	}
	return &uplink{
		edge: edge, nc: nc, js: js, cons: cons, linked: linked,
		origin: strconv.FormatInt(st.CachedInfo().Created.UnixNano(), 36),
	}, nil
}

// run forwards until ctx ends.
func (u *uplink) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if !u.linked() {
			if !sleep(ctx, 50*time.Millisecond) {
				return
			}
			continue
		}
		n, err := u.forwardBatch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			u.fail(err)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, uplinkMaxBackof)
			continue
		}
		if n > 0 {
			backoff = 100 * time.Millisecond
		}
	}
}

func (u *uplink) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.lastErr, u.lastErrAt = err.Error(), time.Now()
}

// forwardBatch moves up to uplinkBatch messages to the cloud, in order.
// A message is acknowledged locally (and so deleted from the buffer) only
// after the cloud stored it; the first failure NAKs it and everything
// after it, in order, so they come back first.
func (u *uplink) forwardBatch(ctx context.Context) (int, error) {
	batch, err := u.cons.FetchNoWait(uplinkBatch)
	if err != nil {
		return 0, fmt.Errorf("read buffer: %w", err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		// Nothing buffered: wait briefly for new data without spinning.
		b, err := u.cons.Fetch(1, jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			return 0, nil
		}
		for m := range b.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			return 0, nil
		}
	}
	// The first message goes alone: until it is stored, the path to the
	// cloud is not proven (after a reconnect the hub's interest may still
	// be on its way, and a later message could overtake a refused one).
	first, err := u.outbound(msgs[0])
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, uplinkAckWait)
		_, err = u.js.PublishMsg(pctx, first)
		cancel()
	}
	if err != nil {
		for _, m := range msgs {
			_ = m.Nak()
		}
		return 0, fmt.Errorf("send to cloud: %w", err)
	}
	if err := msgs[0].Ack(); err != nil {
		return 0, fmt.Errorf("ack buffered message: %w", err)
	}
	u.mu.Lock()
	u.forwarded++
	u.lastOK = time.Now()
	u.mu.Unlock()
	msgs = msgs[1:]

	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var pubErr error
	for _, m := range msgs {
		out, err := u.outbound(m)
		var f jetstream.PubAckFuture
		if err == nil {
			f, err = u.js.PublishMsgAsync(out)
		}
		if err != nil {
			pubErr = fmt.Errorf("send to cloud: %w", err)
			break
		}
		futures = append(futures, f)
	}
	acked := 0
	timeout := time.NewTimer(uplinkAckWait)
	defer timeout.Stop()
	linkCheck := time.NewTicker(100 * time.Millisecond)
	defer linkCheck.Stop()
wait:
	for i := 0; i < len(futures); i++ {
		f := futures[i]
		select {
		case <-linkCheck.C:
			if !u.linked() {
				pubErr = errors.New("link to the hub went down before the cloud acknowledged")
				break wait
			}
			i-- // the link is fine: keep waiting for this message
		case <-f.Ok():
			if err := msgs[i].Ack(); err != nil {
				pubErr = fmt.Errorf("ack buffered message: %w", err)
				break wait
			}
			acked++
		case err := <-f.Err():
			pubErr = fmt.Errorf("cloud refused message %d: %w", seqOf(msgs[i]), err)
			break wait
		case <-timeout.C:
			pubErr = fmt.Errorf("no acknowledgement from the cloud within %s", uplinkAckWait)
			break wait
		case <-ctx.Done():
			pubErr = ctx.Err()
			break wait
		}
	}
	for _, m := range msgs[acked:] {
		_ = m.Nak()
	}
	if acked > 0 {
		u.mu.Lock()
		u.forwarded += uint64(acked)
		u.lastOK = time.Now()
		u.mu.Unlock()
	}
	if pubErr == nil && acked < len(msgs) {
		pubErr = errors.New("batch not fully acknowledged")
	}
	return acked + 1, pubErr
}

func seqOf(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

// outbound turns a buffered message into the message sent to the cloud.
func (u *uplink) outbound(m jetstream.Msg) (*nats.Msg, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	seq := strconv.FormatUint(md.Sequence.Stream, 10)
	h := nats.Header{}
	for k, v := range m.Headers() {
		if k == nats.MsgIdHdr || k == "Nats-Expected-Stream" || k == "Nats-Expected-Last-Sequence" {
			continue // meant for the edge's own stream
		}
		h[k] = v
	}
	h.Set(nats.MsgIdHdr, u.edge+":"+u.origin+":"+seq)
	h.Set(HeaderEdge, u.edge)
	h.Set(HeaderSeq, seq)
	h.Set(HeaderOrigin, u.origin)
	return &nats.Msg{Subject: policy.UplinkPrefix + m.Subject(), Header: h, Data: m.Data()}, nil
}

// status reports the uplink's state.
func (u *uplink) status(ctx context.Context, maxBytes int64) UplinkStatus {
	u.mu.Lock()
	st := UplinkStatus{Forwarded: u.forwarded, LastForward: u.lastOK, LastError: u.lastErr, LastErrorAt: u.lastErrAt, Origin: u.origin, MaxBytes: maxBytes}
	lastOK := u.lastOK
	u.mu.Unlock()
	s, err := u.js.Stream(ctx, BufferStream)
	if err != nil {
		st.LastError = err.Error()
		return st
	}
	info, err := s.Info(ctx)
	if err != nil {
		st.LastError = err.Error()
		return st
	}
	st.BacklogMsgs, st.BacklogBytes = info.State.Msgs, info.State.Bytes
	if info.State.Msgs > 0 {
		st.OldestAge = time.Since(info.State.FirstTime).Round(time.Millisecond).String()
		since := lastOK
		if since.IsZero() || info.State.FirstTime.After(since) {
			since = info.State.FirstTime
		}
		st.Stalled = u.linked() && time.Since(since) > stallAfter
	}
	st.Full = maxBytes > 0 && int64(info.State.Bytes) >= maxBytes*95/100
	return st
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
