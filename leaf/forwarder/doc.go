// Package forwarder is the edge's exactly-once, in-order forwarder: it
// reads the edge's store-and-forward buffer (the file-backed JetStream
// stream BufferStream on telemetry.>, in the edge's site account) and
// publishes every message to the cloud (tether.up.telemetry.> over the
// plumbing account's leaf link, edges.<edge>.telemetry.> in CLOUD), first
// one message alone, then as nats-server fast batches, or with per-message
// PubAcks where batches are not allowed or the cloud already holds some of
// what follows. The leaf server (package leaf) builds one with New and
// runs it; test/bench runs the same code without Tether's accounts.
//
// Invariants:
//   - The buffer holds exactly what the cloud has not confirmed, oldest
//     first: it is purged only up to the longest prefix the cloud
//     acknowledged (a PubAck in send order, a flow ack or a batch's
//     PubAck), after a failure too, and never beyond it.
//   - Nothing overtakes an unconfirmed message: a failure ends the
//     session and the next one resends from the oldest unconfirmed
//     message; fast batches use gap mode "fail"; the cloud's high-water
//     mark is trusted to skip a prefix only while no per-message session
//     may have left a gap (the gap-risk marker, kept in the data dir).
//   - Message ids are per edge and unforgeable: <edge>:<origin>:<seq>:<tag>,
//     tag a MAC under a key only this edge's data dir holds, the same on
//     every resend so the cloud's dedup drops what it already stored.
//
// The decisions are pure functions (decide.go), tested table by table in
// decide_test.go; the rest carries them out over NATS.
package forwarder
