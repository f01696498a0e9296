package contract

// HighWater is the hubs' answer on an edge's UplinkHighWater question: how
// far the edge's telemetry got into the cloud, as the origin (buffer
// incarnation) and buffer sequence of the last message of the edge that
// the CLOUD TELEMETRY stream holds. Empty when it holds none; Error says
// why the hubs could not tell.
type HighWater struct {
	Origin string `json:"origin,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	Error  string `json:"error,omitempty"`
}
