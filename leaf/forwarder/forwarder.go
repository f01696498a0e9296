package forwarder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/diskspace"
	"github.com/tether-fabric/tether/internal/linkloop"
)

// The edge's store-and-forward buffer: every local publish on telemetry.>
// lands in the file-backed stream BufferStream first. The forwarder reads it
// in order with an ordered consumer, publishes each message to the cloud
// (tether.up.telemetry.> becomes edges.<edge>.telemetry.> through the edge
// account's import) with a message id, keeps up to uplinkWindow in flight,
// and purges the buffer only up to the longest prefix the cloud has
// acknowledged. Invariant: the buffer holds exactly what the cloud has not
// confirmed, oldest first.
const (
	// BufferStream is the edge-local stream that buffers telemetry.
	BufferStream = contract.EdgeBufferStream
	// uplinkInbox is the forwarder's inbox prefix; the leaf user may
	// receive it, so cloud PubAcks reach the edge.
	uplinkInbox = contract.UplinkInbox

	// Headers on every forwarded message.
	HeaderEdge   = contract.HeaderEdge
	HeaderSeq    = contract.HeaderSeq
	HeaderOrigin = contract.HeaderOrigin

	// uplinkWindow is how many messages may await the cloud's PubAck.
	uplinkWindow = 2048
	// uplinkReadAhead bounds the messages the forwarder reads ahead of
	// what it sends (its consumer's pull buffer), and uplinkPullBytes the
	// bytes of each pull, which is at least several of the largest
	// messages (contract.SiteMaxMessage): about two pulls' worth are
	// buffered at most.
	uplinkReadAhead = 1024
	uplinkPullBytes = 4 << 20
	// uplinkInFlightBytes bounds the bytes sent and not yet confirmed by
	// the cloud, per-message PubAcks and fast batches alike. With
	// uplinkReadAhead it bounds the forwarder's memory in bytes whatever
	// the message sizes (see docs/ARCHITECTURE.md, "Forwarder memory").
	uplinkInFlightBytes = 16 << 20
	// uplinkPurgeEvery is how many confirmed messages trigger a purge of
	// the buffer (it is also purged whenever the pipeline drains).
	uplinkPurgeEvery = 512
	uplinkAckWait    = 10 * time.Second

	// failLogEvery is how often the same forwarding error is logged again.
	failLogEvery = 30 * time.Second
	// uplinkIdleWait bounds how long an idle forwarder waits for a local
	// publish before it reads the buffer again anyway.
	uplinkIdleWait = 5 * time.Second
	// uplinkWakeRecheck is how soon an idle forwarder woken by a publish
	// reads the buffer again when it found it still empty: subscribers see
	// a publish a moment before the stream has stored it. The delay
	// doubles up to uplinkWakeRecheckMax, then the forwarder idles again.
	uplinkWakeRecheck    = 5 * time.Millisecond
	uplinkWakeRecheckMax = 640 * time.Millisecond
)

// Forwarder forwards the buffer to the cloud. The buffer lives in the site
// account (bufNC, buf: read and purge), the link in the plumbing account
// (nc, js: publish to the cloud, its answers, the high-water question).
type Forwarder struct {
	edge   string
	nc     *nats.Conn
	js     jetstream.JetStream
	bufNC  *nats.Conn
	buf    jetstream.JetStream
	stream jetstream.Stream
	origin string // identifies this incarnation of the buffer stream
	log    *slog.Logger
	// quarantined counts messages sent on contract.QuarantineSubject;
	// quarantineLogged is when one was last logged (unix ns).
	quarantined, quarantineLogged atomic.Int64
	linked                        func() bool
	// stallAfter is how long a backlog may go without progress, while
	// linked, before the forwarder reports itself stalled.
	stallAfter time.Duration
	dataDir    string
	dropOldest bool
	// noBatch is set once the cloud refused a fast batch (its stream does
	// not allow them): per-message PubAcks only from then on.
	noBatch atomic.Bool
	// pace bounds a fast batch's bytes in flight (fastbatch.go).
	pace pace
	// gapRisk: see setGapRisk.
	gapRisk atomic.Bool
	// freeSpace is Config.FreeSpace.
	freeSpace func() bool
	// idle is waitForData's subscription to local publishes while the
	// buffer is empty, and wake its signal; only the run goroutine
	// touches them.
	idle *nats.Subscription
	wake chan struct{}
	// recheck is the wait before the next read of an empty buffer after
	// a wake-up (uplinkWakeRecheck, doubling); 0: idle (uplinkIdleWait).
	recheck time.Duration
	// ids makes the message ids the cloud deduplicates on (msgid.go).
	ids msgIDs

	mu        sync.Mutex
	forwarded uint64
	lastErr   string
	lastErrAt time.Time
	// lastLogged is when fail last logged.
	lastLogged time.Time
	lastOK     time.Time
}

// Config is what a Forwarder needs.
type Config struct {
	// Edge is the edge's name, in every message id and Tether-Edge header.
	Edge string
	// Conn is the plumbing account's connection: the link to the cloud.
	Conn *nats.Conn
	// BufferConn is the site account's connection, where the buffer
	// stream lives (read and purge). It may be Conn where one account has
	// both (the forwarder benchmark).
	BufferConn *nats.Conn
	// DataDir holds the message id key and the gap-risk marker.
	DataDir string
	// StallAfter is how long a backlog may go without progress, while
	// linked, before Status reports it stalled.
	StallAfter time.Duration
	// DropOldest makes a full buffer drop its oldest messages; otherwise
	// it refuses new ones.
	DropOldest bool
	// MaxBytes is the buffer's budget.
	MaxBytes int64
	// Linked reports whether the link to the hubs is up.
	Linked func() bool
	// Log receives the forwarder's log; nil discards it.
	Log *slog.Logger
	// FreeSpace, when set, is called when a purge of confirmed messages
	// fails; it reports whether it made room on the buffer's filesystem
	// (the edge's space reserve), and the purge is then tried once more.
	FreeSpace func() bool
}

// bufferConfig is the edge stream's configuration with the budget
// maxBytes.
func bufferConfig(dropOldest bool, maxBytes int64) jetstream.StreamConfig {
	discard := jetstream.DiscardNew
	if dropOldest {
		discard = jetstream.DiscardOld
	}
	return jetstream.StreamConfig{
		Name:        BufferStream,
		Description: "Tether store-and-forward buffer: telemetry waiting for the cloud",
		Subjects:    []string{contract.LocalTelemetry},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxBytes:    maxBytes,
		Discard:     discard,
		Duplicates:  2 * time.Minute,
		// A site message above contract.SiteMaxMessage is refused at
		// publish time: with the forwarder's headers the hubs would
		// refuse it, and everything behind it would wait forever.
		MaxMsgSize: contract.SiteMaxMessage,
	}
}

// New creates or updates the buffer stream with the budget c.MaxBytes (or
// what the buffer already holds, if more) and returns its forwarder; Run
// starts forwarding.
func New(ctx context.Context, c Config) (*Forwarder, error) {
	var missing []string
	for field, unset := range map[string]bool{"Edge": c.Edge == "", "Conn": c.Conn == nil, "BufferConn": c.BufferConn == nil, "Linked": c.Linked == nil} {
		if unset {
			missing = append(missing, field)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("forwarder config: %s must be set", strings.Join(missing, ", "))
	}
	edge, nc, bufNC, linked := c.Edge, c.Conn, c.BufferConn, c.Linked
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(uplinkWindow),
		jetstream.WithPublishAsyncTimeout(uplinkAckWait))
	if err != nil {
		return nil, err
	}
	buf, err := jetstream.New(bufNC)
	if err != nil {
		return nil, err
	}
	cfg := bufferConfig(c.DropOldest, c.MaxBytes)
	if st, err := buf.Stream(ctx, BufferStream); err == nil {
		// Lowering a stream's MaxBytes below what it holds drops the
		// oldest messages (with DiscardOld; with either policy in older
		// nats-server releases, see refitBuffer): never shrink the
		// budget under the backlog.
		if held := int64(st.CachedInfo().State.Bytes); held > cfg.MaxBytes {
			cfg.MaxBytes = held
		}
	}
	st, err := buf.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("buffer stream %s: %w", BufferStream, err)
	}
	u := &Forwarder{
		edge: edge, nc: nc, js: js, bufNC: bufNC, buf: buf, stream: st, linked: linked, log: c.Log,
		stallAfter: c.StallAfter, dataDir: c.DataDir, dropOldest: c.DropOldest, freeSpace: c.FreeSpace,
		origin: strconv.FormatInt(st.CachedInfo().Created.UnixNano(), 36),
	}
	u.loadGapRisk()
	if u.ids, err = loadMsgIDs(c.DataDir, edge, u.origin); err != nil {
		return nil, err
	}
	return u, nil
}

// Run forwards until ctx ends.
func (u *Forwarder) Run(ctx context.Context) {
	linkloop.While(ctx, u.linked, func(ctx context.Context) error {
		err := u.session(ctx)
		if err != nil {
			// Futures of an abandoned session would hold their slots in
			// the async publisher until they time out, stalling the next
			// session.
			u.js.CleanupPublisher()
			if ctx.Err() == nil {
				u.fail(err)
			}
		}
		return err
	})
}

// fail records a failed session for status and logs it: every new error,
// and the same error again at most every failLogEvery (sessions retry
// every few seconds while it lasts).
func (u *Forwarder) fail(err error) {
	u.mu.Lock()
	now, msg := time.Now(), err.Error()
	log := msg != u.lastErr || now.Sub(u.lastLogged) >= failLogEvery
	u.lastErr, u.lastErrAt = msg, now
	if log {
		u.lastLogged = now
	}
	u.mu.Unlock()
	if log && u.log != nil && !errors.Is(err, errLinkLost) {
		u.log.Warn("forwarding to the cloud failed; retrying", "err", msg, "linked", u.linked())
	}
}

// noRetry turns off nats.go's own resend after "no responders": it
// resends a message 250ms later, behind messages sent since, which breaks
// the order; the forwarder resends from the oldest unconfirmed message
// itself.
var noRetry = jetstream.WithRetryAttempts(0)

// inflight is a message sent to the cloud and not yet confirmed.
type inflight struct {
	seq  uint64
	size int64
	ack  jetstream.PubAckFuture
}

// inflightBytes is the bytes of per-message sends awaiting their PubAck;
// the sender waits on freed while they reach uplinkInFlightBytes.
type inflightBytes struct {
	n     atomic.Int64
	freed chan struct{}
}

func (b *inflightBytes) release(n int64) {
	b.n.Add(-n)
	select {
	case b.freed <- struct{}{}:
	default:
	}
}

// msgSize is the bytes m takes on the wire, about.
func msgSize(m *nats.Msg) int64 {
	return int64(len(m.Subject) + len(m.Reply) + len(m.Data) + headerSize(m.Header))
}

// session forwards from the oldest unconfirmed message until the buffer
// is empty for a while (or, for a fast batch, the batch is full) or
// anything fails: then every unconfirmed message is left in the buffer and
// the next session resends it (with the same message id, so the cloud
// drops what it already stored).
//
// After the first message, the rest goes as fast batches (fastbatch.go),
// unless the first turned out to be a duplicate: the cloud may then hold
// more of what an interrupted session sent, and a batch that starts with a
// duplicate ends at once. Then messages go with per-message PubAcks, which
// pass duplicates at full speed, until the cloud stores a new one (or
// 2*fastBatchWindow were sent, more than any session leaves unconfirmed);
// the next session batches again. Per-message PubAcks are also the
// fallback when the cloud stream does not allow fast batches.
func (u *Forwarder) session(ctx context.Context) error {
	info, err := u.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("read buffer: %w", err)
	}
	if info.State.Msgs == 0 {
		return u.waitForData(ctx)
	}
	u.recheck = 0
	u.stopIdle()
	start := u.skipHeld(ctx, info.State.FirstSeq, info.State.LastSeq)
	if start > info.State.LastSeq {
		return nil // all of it was in the cloud already
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons, err := u.buf.OrderedConsumer(sctx, BufferStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
	})
	if err != nil {
		return fmt.Errorf("read buffer: %w", err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(uplinkReadAhead, uplinkPullBytes))
	if err != nil {
		return fmt.Errorf("read buffer: %w", err)
	}
	defer iter.Stop()

	// The first message goes alone: until it is stored, the path to the
	// cloud is not proven (after a reconnect the hub's interest may still
	// be on its way, and a later message must never overtake a refused one).
	// Bounded: the buffer held messages a moment ago, and a session that
	// waits forever would stall forwarding without a word.
	first, err := iter.Next(jetstream.NextMaxWait(uplinkAckWait))
	if err != nil {
		return fmt.Errorf("read buffer (first of %d messages from sequence %d): %w", info.State.Msgs, start, err)
	}
	out, confirmed, err := u.outbound(first)
	if err != nil {
		return err
	}
	pctx, pcancel := context.WithTimeout(sctx, uplinkAckWait)
	stopWatch := u.cancelOnLinkLoss(pctx, pcancel)
	ack, err := u.js.PublishMsg(pctx, out, noRetry)
	stopWatch()
	pcancel()
	if err != nil {
		return fmt.Errorf("send to cloud: %w", err)
	}
	if err := u.confirm(sctx, confirmed, 1); err != nil {
		return err
	}
	// Per-message PubAcks in flight can leave a gap in the cloud; fast
	// batches cannot (the hub refuses what follows a gap). Until a session
	// ends with everything confirmed, the high-water mark must not be
	// trusted to skip anything (afterFirst).
	if batches, gapRisk, dups := afterFirst(u.noBatch.Load(), ack.Duplicate); batches {
		err = u.forwardBatches(sctx, iter)
	} else {
		u.setGapRisk(gapRisk)
		err = u.pipeline(sctx, cancel, iter, dups)
	}
	if err == nil {
		u.setGapRisk(false)
	}
	return err
}

// pipeline sends messages from iter with up to uplinkWindow PubAcks
// outstanding, until the buffer idles or anything fails; with dups (the
// cloud holds some of what follows), also once the cloud stored a message
// that was new to it or 2*fastBatchWindow messages were sent.
func (u *Forwarder) pipeline(sctx context.Context, cancel context.CancelFunc, iter jetstream.MessagesContext, dups bool) error {
	limit := 0
	if dups {
		limit = 2 * fastBatchWindow
	}
	var fresh atomic.Bool // the cloud stored a message new to it
	window := make(chan inflight, uplinkWindow)
	ackErr := make(chan error, 1)
	bytes := &inflightBytes{freed: make(chan struct{}, 1)}
	go func() {
		err := u.collect(sctx, window, &fresh, bytes)
		if err != nil {
			// Stop sending at once: a message sent after the link comes
			// back must never overtake one lost with the old link.
			cancel()
		}
		ackErr <- err
	}()

	var sendErr error
	for sent := 0; sctx.Err() == nil && (!dups || (sent < limit && !fresh.Load())); {
		m, err := u.nextOrIdle(sctx, iter, window)
		if err != nil {
			sendErr = err
			break
		}
		if m == nil { // drained and idle: end the session cleanly
			break
		}
		out, seq, err := u.outbound(m)
		if err != nil {
			sendErr = err
			break
		}
		size := msgSize(out)
		for sctx.Err() == nil && bytes.n.Load() > 0 && bytes.n.Load()+size > uplinkInFlightBytes {
			select {
			case <-bytes.freed:
			case err := <-ackErr:
				return err
			case <-sctx.Done():
			}
		}
		if sctx.Err() != nil {
			break
		}
		f, err := u.js.PublishMsgAsync(out, noRetry)
		if err != nil {
			sendErr = fmt.Errorf("send to cloud: %w", err)
			break
		}
		bytes.n.Add(size)
		select {
		case window <- inflight{seq: seq, size: size, ack: f}:
			sent++
		case err := <-ackErr:
			return err
		}
	}
	close(window)
	err := <-ackErr
	if err == nil {
		err = sendErr
	}
	return err
}

// nextOrIdle returns the next buffered message, or nil when the buffer
// has been empty for a moment and nothing is in flight.
func (u *Forwarder) nextOrIdle(ctx context.Context, iter jetstream.MessagesContext, window chan inflight) (jetstream.Msg, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err // the collector stopped, or the edge shuts down
		}
		m, err := iter.Next(jetstream.NextMaxWait(500 * time.Millisecond))
		if errors.Is(err, nats.ErrTimeout) {
			if len(window) == 0 {
				return nil, nil
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read buffer: %w", err)
		}
		return m, nil
	}
}

// collect waits for PubAcks in send order and purges the confirmed prefix
// from the buffer. It stops at the first failure or a link loss.
func (u *Forwarder) collect(ctx context.Context, window <-chan inflight, fresh *atomic.Bool, bytes *inflightBytes) error {
	var prefix ackPrefix
	linkCheck := time.NewTicker(100 * time.Millisecond)
	defer linkCheck.Stop()
	flush := func() error {
		seq, n, ok := prefix.take()
		if !ok {
			return nil
		}
		return u.confirm(ctx, seq, n)
	}
	for {
		var in inflight
		var ok bool
		select {
		case in, ok = <-window:
		default:
			// Pipeline drained for now: make the progress durable.
			if err := flush(); err != nil {
				return err
			}
			in, ok = <-window
		}
		if !ok {
			return flush()
		}
	wait:
		for {
			select {
			case ack := <-in.ack.Ok():
				if !ack.Duplicate {
					fresh.Store(true)
				}
				break wait
			case err := <-in.ack.Err():
				_ = flush()
				return fmt.Errorf("cloud refused buffered message %d: %w", in.seq, err)
			case <-linkCheck.C:
				if !u.linked() {
					_ = flush()
					return errors.New("link to the hub went down before the cloud acknowledged")
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		bytes.release(in.size)
		if prefix.ack(in.seq) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// confirm records that the cloud stored everything up to seq and removes
// it from the buffer.
func (u *Forwarder) confirm(ctx context.Context, seq uint64, n int) error {
	err := u.stream.Purge(ctx, jetstream.WithPurgeSequence(seq+1))
	if err != nil && u.freeSpace != nil && u.freeSpace() {
		// Most likely a full filesystem (a purge rewrites a block): the
		// edge made room (Config.FreeSpace), so try once more.
		u.logger().Warn("purge failed, most likely on a full filesystem: made room and trying again", "err", err)
		err = u.stream.Purge(ctx, jetstream.WithPurgeSequence(seq+1))
	}
	if err != nil {
		return fmt.Errorf("purge forwarded messages from the buffer: %w", err)
	}
	u.mu.Lock()
	u.forwarded += uint64(n)
	u.lastOK = time.Now()
	u.mu.Unlock()
	return nil
}

// cancelOnLinkLoss cancels ctx (through cancel) when the link goes down;
// the returned function stops watching.
func (u *Forwarder) cancelOnLinkLoss(ctx context.Context, cancel context.CancelFunc) func() {
	return cancelOnLinkLoss(ctx, u.linked, cancel)
}

// cancelOnLinkLoss calls cancel when linked turns false; the returned
// function stops watching.
func cancelOnLinkLoss(ctx context.Context, linked func() bool, cancel context.CancelFunc) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if !linked() {
					cancel()
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// waitForData returns when something was published on telemetry.> since
// it was last called (the idle subscription, kept between calls, holds the
// wake-up), after uplinkIdleWait, or when ctx ends; after a wake-up, the
// next calls return after u.recheck instead (the publish may not be stored
// yet when the caller reads the buffer). Its first call only
// subscribes: the caller reads the buffer again before waiting, so a
// publish between that read and the subscription is not missed. While the
// buffer stays empty, the forwarder reads it once per wake-up instead of
// four times a second (docs/ARCHITECTURE.md, "Idle edge"). The
// subscription is dropped when the link is found down: while unlinked
// nothing is forwarded, and publishes need not reach it.
func (u *Forwarder) waitForData(ctx context.Context) error {
	if u.idle == nil {
		wake := make(chan struct{}, 1)
		sub, err := u.bufNC.Subscribe(contract.LocalTelemetry, func(*nats.Msg) {
			select {
			case wake <- struct{}{}:
			default: // a wake-up is pending already
			}
		})
		if err != nil {
			return err
		}
		u.idle, u.wake = sub, wake
		return nil
	}
	wait := uplinkIdleWait
	if u.recheck > 0 {
		wait = u.recheck
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
		if u.recheck *= 2; u.recheck > uplinkWakeRecheckMax {
			u.recheck = 0
		}
	case <-u.wake:
		u.recheck = uplinkWakeRecheck
	}
	if !u.linked() {
		u.stopIdle()
	}
	return nil
}

// stopIdle drops the idle subscription: while forwarding, every local
// publish would reach it too.
func (u *Forwarder) stopIdle() {
	if u.idle != nil {
		_ = u.idle.Unsubscribe()
		u.idle, u.wake = nil, nil
	}
}

// outbound turns a buffered message into the message sent to the cloud;
// it also returns the message's buffer sequence.
func (u *Forwarder) outbound(m jetstream.Msg) (*nats.Msg, uint64, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, 0, err
	}
	seq := md.Sequence.Stream
	h := outboundHeader(m.Headers(), u.ids.id(seq), u.edge, u.origin, strconv.FormatUint(seq, 10))
	subject, invalid := uplinkSubject(m.Subject())
	if invalid != "" {
		h.Set(contract.HeaderInvalidSubject, invalid)
		u.noteQuarantined(invalid)
	}
	return &nats.Msg{Subject: contract.UplinkPrefix + subject, Header: h, Data: m.Data()}, seq, nil
}

// noteQuarantined logs a message sent on contract.QuarantineSubject: the
// first one, then at most one a minute (a careless client may send many).
func (u *Forwarder) noteQuarantined(subject string) {
	n := u.quarantined.Add(1)
	now := time.Now().UnixNano()
	last := u.quarantineLogged.Load()
	if n > 1 && now-last < int64(time.Minute) {
		return
	}
	if u.quarantineLogged.CompareAndSwap(last, now) {
		u.logger().Warn("a site client published on a subject that is not literal; forwarded on "+contract.QuarantineSubject,
			"subject", subject, "header", contract.HeaderInvalidSubject, "total", n)
	}
}

// Status reports the buffer's state; its budget is the buffer stream's
// MaxBytes, the one in effect.
func (u *Forwarder) Status(ctx context.Context) contract.BufferStatus {
	u.mu.Lock()
	st := contract.BufferStatus{Forwarded: u.forwarded, LastForward: u.lastOK, LastError: u.lastErr, LastErrorAt: u.lastErrAt, Origin: u.origin}
	lastOK := u.lastOK
	u.mu.Unlock()
	s, err := u.buf.Stream(ctx, BufferStream)
	if err != nil {
		st.LastError = err.Error()
		return st
	}
	info, err := s.Info(ctx)
	if err != nil {
		st.LastError = err.Error()
		return st
	}
	st.BacklogMsgs, st.BacklogBytes, st.MaxBytes = info.State.Msgs, info.State.Bytes, info.Config.MaxBytes
	if info.State.Msgs > 0 {
		st.OldestAge = time.Since(info.State.FirstTime).Round(time.Millisecond).String()
		since := lastOK
		if since.IsZero() || info.State.FirstTime.After(since) {
			since = info.State.FirstTime
		}
		st.Stalled = u.linked() && time.Since(since) > u.stallAfter
	}
	st.Full = st.MaxBytes > 0 && int64(info.State.Bytes) >= st.MaxBytes*95/100
	st.DiskFree, _ = diskspace.Free(u.dataDir)
	return st
}

// LastError is the last forwarding error and when it happened (empty
// before the first).
func (u *Forwarder) LastError() (string, time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lastErr, u.lastErrAt
}

// Origin names this incarnation of the buffer stream: a new one after the
// edge's store was wiped (the cloud sees Tether-Origin change).
func (u *Forwarder) Origin() string { return u.origin }

// Budget is the buffer stream's MaxBytes as last read (at New, or by
// BufferInfo).
func (u *Forwarder) Budget() int64 { return u.stream.CachedInfo().Config.MaxBytes }

// BufferInfo reads the buffer stream's state and configuration.
func (u *Forwarder) BufferInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	info, err := u.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("buffer stream %s: %w", BufferStream, err)
	}
	return info, nil
}

// SetBudget sets the buffer stream's MaxBytes.
func (u *Forwarder) SetBudget(ctx context.Context, maxBytes int64) error {
	if _, err := u.buf.UpdateStream(ctx, bufferConfig(u.dropOldest, maxBytes)); err != nil {
		return fmt.Errorf("set the budget of buffer stream %s to %d bytes: %w", BufferStream, maxBytes, err)
	}
	return nil
}
