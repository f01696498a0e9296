package forwarder

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
)

// Fast-batch forwarding: a backlog crosses as nats-server's fast batch
// publish (server/stream.go getFastBatch, jetstream_batching.go) instead of
// one PubAck per message. The protocol lives in each message's reply
// subject,
//
//	<inbox>.<batch id>.<flow>.<gap mode>.<batch seq>.<op>.$FI
//
// and the CLOUD stream (AllowBatchPublish) answers only every <flow>
// persisted messages with a flow ack {"type":"ack","seq":N}, and the end
// of the batch with a PubAck {"count":N}. Through the edge account's
// service import the reply becomes an _R_ subject; the hub keeps the
// original one in Nats-Request-Info, where the stream finds it.
//
// Invariants: gap mode "fail", so a message that arrives after a lost one
// ends the batch instead of being stored: the cloud holds a prefix of what
// was sent, and a flow ack or PubAck for N confirms batch messages 1..N.
// The buffer is purged only up to that prefix; anything else ends the
// session and the next one resends from the oldest unconfirmed message
// with the same message ids.
const (
	// fastBatchFlow asks for a flow ack every that many messages at most
	// (the server lowers it when several batches share the stream); a
	// batch asks for fewer when the pace allows fewer bytes in flight
	// than 4 flow acks' worth, down to fastBatchMinFlow, which is also
	// where a forwarder starts before it has measured its link.
	fastBatchFlow    = 100
	fastBatchMinFlow = 10
	// fastBatchWindow is how many messages may be sent beyond the last
	// flow ack, at most; the bytes in flight are bounded too (pace).
	fastBatchWindow = 4096
	// fastBatchPaceTarget is how long the bytes in flight may take to
	// cross the link at the rate the cloud has been confirming them: on a
	// slow link the rest waits in the edge's buffer, not in front of the
	// link's pings (a spoke leaf's pings are never delayed, and a queue
	// longer than ping_interval x max_pings_out drops the link).
	fastBatchPaceTarget = time.Second
	// fastBatchPaceFloor is the bytes in flight before the rate is known
	// and at least (beyond two flow acks' worth of messages, which always
	// may be in flight); fastBatchRateSample the shortest span a rate
	// sample is taken over (flow acks arrive in bursts).
	fastBatchPaceFloor  = 8 << 10
	fastBatchRateSample = 100 * time.Millisecond
	// fastBatchMax is how many messages are sent with replies on one
	// inbox subscription (see forwardBatches) and at most in one batch.
	fastBatchMax = 32768
	// fastBatchIdle ends a batch when the buffer has had nothing new for
	// that long.
	fastBatchIdle = 50 * time.Millisecond
	// fastBatchPurgeEvery is how many confirmed messages trigger a purge
	// of the buffer during a batch (it is also purged at the batch's end).
	fastBatchPurgeEvery = 4096
	// fastBatchPurgeAfter bounds how long confirmed messages stay in the
	// buffer during a batch: the edge's backlog, its age and its stall
	// check are read from the buffer.
	fastBatchPurgeAfter = time.Second
	// fastBatchLiveCommit: a batch that has caught up with the producers
	// is committed once it is that old. Producers publishing steadily
	// faster than fastBatchIdle would otherwise keep one batch open for
	// up to fastBatchMax messages, with flow acks only every fastBatchFlow:
	// the cloud would confirm a steady 25 msg/s every 20 s.
	fastBatchLiveCommit = time.Second

	fastBatchGapFail = "fail"
	fastBatchSuffix  = ".$FI"
	fbOpStart        = 0
	fbOpAppend       = 1
	fbOpCommitEOB    = 3

	// errBatchDisabled is JSBatchPublishDisabledErr: the CLOUD stream does
	// not allow fast batches (a hub older than this edge).
	errBatchDisabled = 10205
)

// batchReply is any answer of the stream to a fast-batch message.
type batchReply struct {
	Type string `json:"type"` // "ack", "gap", "err", or "" for a PubAck
	// Seq is the batch sequence of a flow ack or error (a PubAck's stream
	// sequence, unused).
	Seq     uint64 `json:"seq"`
	LastSeq uint64 `json:"last_seq"`
	// Count is how many batch messages a PubAck confirms.
	Count uint64 `json:"count"`
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// fastBatch is one batch in flight.
type fastBatch struct {
	u      *Forwarder
	prefix string // reply subject up to the batch sequence
	resp   chan *nats.Msg
	// seqs[i] is the buffer sequence of batch message i+1.
	seqs   []uint64
	max    int  // messages at most in this batch
	acked  int  // batch messages the cloud confirmed
	purged int  // of which removed from the buffer
	ended  bool // the cloud answered with the batch's PubAck

	flow int // the flow this batch asked for
	// repace is set when the pace calls for a flow at least twice as far
	// from this batch's: the batch ends and the next one asks for it.
	repace bool

	started   time.Time
	lastPurge time.Time
	last      jetstream.Msg // the last message sent

	// sent[i] is the bytes sent up to and including batch message i+1.
	sent []int64
	// sampleAt and sampleAcked start the current rate sample.
	sampleAt    time.Time
	sampleAcked int
}

// errBatchCut ends a session whose batch the cloud ended early (its
// PubAck confirms fewer messages than were sent): the rest was not stored
// and is read from the buffer again.
var errBatchCut = errors.New("batch ended early")

// forwardBatches sends what iter reads as fast batches, one after the
// other, until the buffer idles (nil) or anything fails.
//
// The answers come back on one inbox subscription, replaced after
// fastBatchMax messages: leaving it lets the hub drop the response
// mappings of the messages that got no answer (all but one in
// fastBatchFlow), which it would otherwise keep for the export's response
// threshold (2 min).
func (u *Forwarder) forwardBatches(ctx context.Context, iter jetstream.MessagesContext) error {
	var in *batchInbox
	defer func() { in.close() }()
	linkCheck := time.NewTicker(100 * time.Millisecond)
	defer linkCheck.Stop()
	for {
		m, err := iter.Next(jetstream.NextMaxWait(500 * time.Millisecond))
		if errors.Is(err, nats.ErrTimeout) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read buffer: %w", err)
		}
		if in == nil || in.sent >= fastBatchMax {
			in.close()
			if in, err = u.openBatchInbox(); err != nil {
				return err
			}
		}
		flow := u.pace.flow()
		b := &fastBatch{
			u:       u,
			flow:    flow,
			prefix:  in.prefix + nats.NewInbox()[len(nats.InboxPrefix):] + "." + strconv.Itoa(flow) + "." + fastBatchGapFail + ".",
			resp:    in.ch,
			seqs:    make([]uint64, 0, 1024),
			max:     fastBatchMax - in.sent,
			started: time.Now(),
		}
		err = b.run(ctx, iter, m, linkCheck.C)
		in.sent += len(b.seqs)
		if errors.Is(err, errBatchCut) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// batchInbox is the subscription on which batches' answers arrive.
type batchInbox struct {
	sub    *nats.Subscription
	ch     chan *nats.Msg
	prefix string // ends with a dot
	sent   int    // messages sent with a reply on this inbox
}

func (u *Forwarder) openBatchInbox() (*batchInbox, error) {
	in := &batchInbox{
		ch:     make(chan *nats.Msg, 1024),
		prefix: uplinkInbox + "." + nats.NewInbox()[len(nats.InboxPrefix):] + ".",
	}
	sub, err := u.nc.ChanSubscribe(in.prefix+">", in.ch)
	if err != nil {
		return nil, fmt.Errorf("batch inbox: %w", err)
	}
	in.sub = sub
	return in, nil
}

func (in *batchInbox) close() {
	if in != nil {
		_ = in.sub.Unsubscribe()
	}
}

// run sends first and what follows it in iter as one fast batch until the
// buffer idles, the batch is full, or anything fails, and commits it.
func (b *fastBatch) run(ctx context.Context, iter jetstream.MessagesContext, first jetstream.Msg, linkCheck <-chan time.Time) error {
	err := b.send(ctx, iter, first, linkCheck)
	if err == nil && !b.ended {
		err = b.commit(ctx, linkCheck)
	}
	if err == nil && b.acked < len(b.seqs) {
		err = errBatchCut
	}
	// Whatever the cloud confirmed leaves the buffer, even after a failure.
	if perr := b.purge(ctx); err == nil {
		err = perr
	}
	return err
}

// send publishes m and the following messages of iter, keeping at most
// fastBatchWindow beyond the last flow ack.
func (b *fastBatch) send(ctx context.Context, iter jetstream.MessagesContext, m jetstream.Msg, linkCheck <-chan time.Time) error {
	for !b.ended {
		full := b.windowFull()
		if err := b.poll(ctx, linkCheck, full); err != nil {
			return err
		}
		if n := b.acked - b.purged; n >= fastBatchPurgeEvery || n > 0 && time.Since(b.lastPurge) >= fastBatchPurgeAfter {
			if err := b.purge(ctx); err != nil {
				return err
			}
		}
		if full || b.ended {
			continue
		}
		if m == nil {
			// A batch holding uplinkInFlightBytes unconfirmed is committed
			// rather than waiting for a flow ack: with large messages
			// fewer than two flows' worth may fit.
			if len(b.seqs) >= b.max || b.repace || b.caughtUp() || b.bytesSent()-b.bytesAt(b.acked) >= uplinkInFlightBytes {
				return nil
			}
			var err error
			m, err = iter.Next(jetstream.NextMaxWait(fastBatchIdle))
			if errors.Is(err, nats.ErrTimeout) {
				return nil // idle: commit what was sent
			}
			if err != nil {
				return fmt.Errorf("read buffer: %w", err)
			}
		}
		out, seq, err := b.u.outbound(m)
		if err != nil {
			return err
		}
		op := fbOpAppend
		if len(b.seqs) == 0 {
			op = fbOpStart
		}
		out.Reply = b.reply(len(b.seqs)+1, op)
		if err := b.u.nc.PublishMsg(out); err != nil {
			return fmt.Errorf("send to cloud: %w", err)
		}
		b.seqs = append(b.seqs, seq)
		b.sent = append(b.sent, b.bytesSent()+int64(len(out.Subject)+len(out.Reply)+len(out.Data)+headerSize(out.Header)))
		b.last = m
		m = nil
	}
	return nil
}

// caughtUp reports whether the batch is fastBatchLiveCommit old and its
// last message was the newest in the buffer.
func (b *fastBatch) caughtUp() bool {
	if b.last == nil || time.Since(b.started) < fastBatchLiveCommit {
		return false
	}
	md, err := b.last.Metadata()
	return err == nil && md.NumPending == 0
}

// commit ends the batch (an end-of-batch marker on
// contract.BatchEndSubject, not stored) and waits for
// its PubAck, which the stream sends once every message is persisted.
func (b *fastBatch) commit(ctx context.Context, linkCheck <-chan time.Time) error {
	// On a subject of its own: sent on the last message's subject, it
	// reached every live subscriber of that data subject as an empty
	// message (the stream only needs to capture it).
	eob := &nats.Msg{Subject: contract.UplinkPrefix + contract.BatchEndSubject, Reply: b.reply(len(b.seqs)+1, fbOpCommitEOB)}
	if err := b.u.nc.PublishMsg(eob); err != nil {
		return fmt.Errorf("send to cloud: %w", err)
	}
	deadline := time.NewTimer(uplinkAckWait)
	defer deadline.Stop()
	for !b.ended {
		select {
		case m := <-b.resp:
			if err := b.handle(m); err != nil {
				return err
			}
		case <-linkCheck:
			if !b.u.linked() {
				return errLinkLost
			}
		case <-deadline.C:
			return fmt.Errorf("cloud did not confirm batch of %d messages within %s", len(b.seqs), uplinkAckWait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

var errLinkLost = errors.New("link to the hub went down before the cloud acknowledged")

// poll handles the stream's answers received so far; with wait, it blocks
// until one arrives (at most uplinkAckWait).
func (b *fastBatch) poll(ctx context.Context, linkCheck <-chan time.Time, wait bool) error {
	var stall *time.Timer
	for {
		select {
		case m := <-b.resp:
			if err := b.handle(m); err != nil {
				return err
			}
			wait = false
			continue
		case <-linkCheck:
			if !b.u.linked() {
				return errLinkLost
			}
			continue
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if !wait {
			return nil
		}
		if stall == nil {
			stall = time.NewTimer(uplinkAckWait)
			defer stall.Stop()
		}
		select {
		case m := <-b.resp:
			if err := b.handle(m); err != nil {
				return err
			}
			wait = false
		case <-linkCheck:
			if !b.u.linked() {
				return errLinkLost
			}
		case <-stall.C:
			return fmt.Errorf("cloud confirmed nothing of %d messages in flight within %s", len(b.seqs)-b.acked, uplinkAckWait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handle applies one answer of the stream. Gaps and errors end the
// session: what follows the failed message was not stored (gap mode fail)
// and is sent again.
func (b *fastBatch) handle(m *nats.Msg) error {
	if !strings.HasPrefix(m.Subject, b.prefix) {
		return nil // late answer to an earlier batch
	}
	v, err := judgeBatchReply(m.Header.Get("Status"), m.Data, b.seqAt)
	if v.noBatch {
		b.u.noBatch.Store(true)
	}
	if err != nil {
		return err
	}
	if v.confirm > 0 {
		b.confirmed(v.confirm)
	}
	b.ended = b.ended || v.ended
	return nil
}

func (b *fastBatch) seqAt(n uint64) uint64 {
	if n == 0 || n > uint64(len(b.seqs)) {
		return 0
	}
	return b.seqs[n-1]
}

// confirmed records that batch messages 1..n are stored in the cloud, and
// samples the rate at which the cloud confirms bytes.
func (b *fastBatch) confirmed(n uint64) {
	acked := batchConfirmed(b.acked, len(b.seqs), n)
	if acked == b.acked {
		return
	}
	b.acked = acked
	now := time.Now()
	if b.sampleAt.IsZero() {
		b.sampleAt = b.started
	}
	if d := now.Sub(b.sampleAt); d >= fastBatchRateSample {
		bytes := b.bytesAt(b.acked) - b.bytesAt(b.sampleAcked)
		b.u.pace.sample(float64(bytes)/d.Seconds(), float64(bytes)/float64(b.acked-b.sampleAcked))
		b.sampleAt, b.sampleAcked = now, b.acked
		if f := b.u.pace.flow(); f >= 2*b.flow || 2*f <= b.flow {
			b.repace = true
		}
	}
}

// windowFull reports whether the batch has as much in flight as it may:
// fastBatchWindow messages, or, beyond two flow acks' worth of messages
// (fewer would wait for a flow ack that cannot come), the bytes the pace
// allows.
func (b *fastBatch) windowFull() bool {
	return batchWindowFull(len(b.seqs)-b.acked, b.flow, b.bytesSent()-b.bytesAt(b.acked), b.u.pace.limit())
}

// bytesAt is the bytes sent up to batch message n (0: none).
func (b *fastBatch) bytesAt(n int) int64 {
	if n == 0 {
		return 0
	}
	return b.sent[n-1]
}

func (b *fastBatch) bytesSent() int64 { return b.bytesAt(len(b.sent)) }

// headerSize approximates the bytes h takes on the wire.
func headerSize(h nats.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// pace bounds the bytes a forwarder keeps in flight by the rate at which
// the cloud confirmed them: fastBatchPaceTarget's worth, at least
// fastBatchPaceFloor. It lives as long as the forwarder, across sessions, and
// only the forwarder's goroutine uses it.
type pace struct {
	rate float64 // bytes per second, smoothed; 0: not measured yet
	size float64 // bytes per message, smoothed
}

func (p *pace) sample(bytesPerSec, bytesPerMsg float64) {
	if p.rate == 0 {
		p.rate, p.size = bytesPerSec, bytesPerMsg
		return
	}
	p.rate = 0.7*p.rate + 0.3*bytesPerSec
	p.size = 0.7*p.size + 0.3*bytesPerMsg
}

// flow is the flow a new batch asks for: a quarter of the messages the
// pace allows in flight, between fastBatchMinFlow and fastBatchFlow.
func (p *pace) flow() int {
	if p.size <= 0 {
		return fastBatchMinFlow
	}
	return int(min(fastBatchFlow, max(fastBatchMinFlow, float64(p.limit())/p.size/4)))
}

func (p *pace) limit() int64 {
	return max(fastBatchPaceFloor, int64(p.rate*fastBatchPaceTarget.Seconds()))
}

// purge removes the confirmed prefix from the buffer.
func (b *fastBatch) purge(ctx context.Context) error {
	seq, n, ok := batchPurge(b.seqs, b.acked, b.purged)
	if !ok {
		return nil
	}
	b.purged, b.lastPurge = b.acked, time.Now()
	return b.u.confirm(ctx, seq, n)
}

// reply is the reply subject of batch message n with operation op.
func (b *fastBatch) reply(n, op int) string {
	buf := make([]byte, 0, len(b.prefix)+24)
	buf = append(buf, b.prefix...)
	buf = strconv.AppendInt(buf, int64(n), 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, int64(op), 10)
	buf = append(buf, fastBatchSuffix...)
	return string(buf)
}
