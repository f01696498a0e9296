//go:build !linux

package workingset

// ReleaseExecutable does nothing outside Linux.
func ReleaseExecutable() (uint64, error) { return 0, nil }
