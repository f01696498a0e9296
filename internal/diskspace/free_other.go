//go:build !unix

package diskspace

import "errors"

// ErrUnsupported is returned where free space cannot be measured.
var ErrUnsupported = errors.New("free space: not supported on this platform")

// Free is not supported on this platform.
func Free(string) (uint64, error) { return 0, ErrUnsupported }
