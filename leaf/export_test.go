package leaf

// SetMeasureRoom replaces how s measures the room on its data dir's
// filesystem (storeRoom), for tests that fill a disk without a disk. Call
// it before Start.
func SetMeasureRoom(s *Server, f func(dataDir string) (free, room uint64, err error)) {
	s.measureRoom = f
}
