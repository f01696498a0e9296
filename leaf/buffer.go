package leaf

import (
	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/leaf/forwarder"
)

const (
	// BufferStream is the edge-local stream that buffers telemetry; the
	// forwarder (leaf/forwarder) forwards it to the cloud.
	BufferStream = forwarder.BufferStream
	// uplinkInbox is the plumbing connections' inbox prefix; the leaf user
	// may receive it, so cloud PubAcks reach the edge.
	uplinkInbox = contract.UplinkInbox
)

// UplinkStatus is the buffer's state as 'tether leaf status' shows it and
// as the edge reports it to the cloud.
type UplinkStatus = contract.BufferStatus
