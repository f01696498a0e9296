package forwarder

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/contract"
)

// The forwarder's decisions, as pure functions: what the cloud confirmed,
// what may leave the buffer, where a session starts. The NATS plumbing in
// forwarder.go, fastbatch.go and highwater.go only carries out what these
// decide; decide_test.go checks them table by table.

// highWaterSkip is what the cloud's high-water answer hw lets a session
// skip of a buffer (incarnation origin) holding sequences first..last:
// start is the first sequence still to send and, with purge, the buffer
// may be purged up to purgeTo (what the cloud already holds). With
// gapRisk (the cloud may hold a message without every earlier one) the
// mark is not trusted to skip anything; nor is an answer for another
// incarnation of the buffer, an error, or a mark below first.
func highWaterSkip(hw contract.HighWater, origin string, first, last uint64, gapRisk bool) (start, purgeTo uint64, purge bool) {
	if gapRisk || hw.Error != "" || hw.Origin != origin || hw.Seq < first {
		return first, 0, false
	}
	upTo := min(hw.Seq, last)
	return upTo + 1, upTo, true
}

// afterFirst is how a session goes on once its first message is stored:
// as fast batches, unless the cloud does not allow them (noBatch) or the
// first was a duplicate (the cloud may hold more of what an interrupted
// session sent, and a batch starting with a duplicate ends at once).
// Otherwise per-message PubAcks, which can leave a gap in the cloud (a
// message refused as the link dropped, later ones stored as it came back),
// so gapRisk is set until the session ends with everything confirmed;
// dups then says the per-message run stops once the cloud stores a new
// message, to batch again.
func afterFirst(noBatch, duplicate bool) (batches, gapRisk, dups bool) {
	if !noBatch && !duplicate {
		return true, false, false
	}
	return false, true, !noBatch
}

// ackPrefix tracks the confirmed prefix of per-message sends: PubAcks are
// taken in send order, so the last one received confirms everything up
// to its sequence. The buffer is purged every uplinkPurgeEvery confirmed
// messages, when the pipeline drains, and, after a failure, up to the
// confirmed prefix (nothing beyond it).
type ackPrefix struct {
	confirmed uint64 // the buffer sequence confirmed last
	pending   int    // confirmed messages not purged yet
}

// ack records the PubAck of the message with buffer sequence seq; it
// reports whether the buffer should be purged now.
func (a *ackPrefix) ack(seq uint64) bool {
	a.confirmed = seq
	a.pending++
	return a.pending >= uplinkPurgeEvery
}

// take returns what to purge (up to seq, n messages) and forgets it; ok is
// false when nothing is pending.
func (a *ackPrefix) take() (seq uint64, n int, ok bool) {
	if a.pending == 0 {
		return 0, 0, false
	}
	n, a.pending = a.pending, 0
	return a.confirmed, n, true
}

// batchVerdict is what one answer of the cloud stream to a fast batch
// means for the batch.
type batchVerdict struct {
	// confirm: batch messages 1..confirm are stored (0: no news).
	confirm uint64
	// ended: the answer is the batch's PubAck.
	ended bool
	// noBatch: the cloud stream does not allow fast batches.
	noBatch bool
}

// errNoResponders is a fast-batch message that reached no stream.
var errNoResponders = errors.New("send to cloud: no responders")

// judgeBatchReply decides what an answer (status header and body) means;
// seqAt maps a batch sequence to its buffer sequence for error text. A
// gap or an error ends the session: with gap mode fail, nothing after the
// failed message was stored.
func judgeBatchReply(status string, data []byte, seqAt func(uint64) uint64) (batchVerdict, error) {
	if status == "503" {
		return batchVerdict{}, errNoResponders
	}
	var r batchReply
	if err := json.Unmarshal(data, &r); err != nil {
		return batchVerdict{}, fmt.Errorf("cloud answer %q: %w", data, err)
	}
	switch r.Type {
	case "ack":
		return batchVerdict{confirm: r.Seq}, nil
	case "gap":
		return batchVerdict{}, fmt.Errorf("cloud saw a gap in the batch: expected message %d, got %d", r.LastSeq, r.Seq)
	case "err":
		desc := ""
		if r.Error != nil {
			desc = r.Error.Description
		}
		return batchVerdict{}, fmt.Errorf("cloud refused batch message %d (buffered %d): %s", r.Seq, seqAt(r.Seq), desc)
	case "":
		if r.Error != nil {
			v := batchVerdict{noBatch: r.Error.ErrCode == errBatchDisabled}
			return v, fmt.Errorf("cloud refused batch: %s (%d)", r.Error.Description, r.Error.ErrCode)
		}
		return batchVerdict{confirm: r.Count, ended: true}, nil
	default:
		return batchVerdict{}, fmt.Errorf("cloud answer of unknown type %q", r.Type)
	}
}

// batchConfirmed is the batch messages confirmed after a confirmation of
// 1..n, given acked confirmed before and sent sent: confirmations never go
// back, nor beyond what was sent.
func batchConfirmed(acked, sent int, n uint64) int {
	return max(acked, int(min(n, uint64(sent))))
}

// batchPurge is what a batch may purge from the buffer: seqs[i] is the
// buffer sequence of batch message i+1, acked of them are confirmed and
// purged purged. It returns the sequence to purge up to and how many
// messages that removes; ok is false when nothing new is confirmed.
func batchPurge(seqs []uint64, acked, purged int) (seq uint64, n int, ok bool) {
	if acked <= purged || acked > len(seqs) {
		return 0, 0, false
	}
	return seqs[acked-1], acked - purged, true
}

// batchWindowFull reports whether a batch has as much in flight as it may:
// fastBatchWindow messages, or, beyond two flow acks' worth of messages
// (fewer would wait for a flow ack that cannot come), limit bytes.
func batchWindowFull(inFlight, flow int, bytesInFlight, limit int64) bool {
	if inFlight >= fastBatchWindow {
		return true
	}
	return inFlight >= 2*flow && bytesInFlight >= limit
}

// outboundHeader is the header a buffered message crosses with: the
// site's own headers except those the forwarder owns (forwarderOwned),
// then the message id and the edge, sequence and origin headers.
func outboundHeader(site nats.Header, id, edge, origin, seq string) nats.Header {
	h := nats.Header{}
	for k, v := range site {
		if forwarderOwned(k) {
			continue
		}
		h[k] = v
	}
	h.Set(nats.MsgIdHdr, id)
	h.Set(HeaderEdge, edge)
	h.Set(HeaderSeq, seq)
	h.Set(HeaderOrigin, origin)
	return h
}

// uplinkSubject is the edge-relative subject a buffered message is sent
// on: its own, or, for a subject no publisher can mean (a wildcard or an
// empty token, which the door refuses but the server still stores),
// contract.QuarantineSubject, with the subject as published to go in
// contract.HeaderInvalidSubject.
func uplinkSubject(subject string) (send, invalid string) {
	if contract.CheckPublishSubject(subject) != nil {
		return contract.QuarantineSubject, subject
	}
	return subject, ""
}
