//go:build !unix

package dirlock

import "os"

// Other systems run without the lock (Tether's edges and hubs run on
// Linux); the identity check of the edge's data dir still applies.
func lockFile(*os.File) error   { return nil }
func unlockFile(*os.File) error { return nil }
