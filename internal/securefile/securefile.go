// Package securefile writes and reads files that hold secrets.
//
// Invariants: a secret is written to a temporary file in the target
// directory with its final mode, synced, then renamed over the target, so a
// reader never sees a half-written or briefly world-readable secret; a secret
// file that group or others may read is refused on load.
package securefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrTooOpen reports a secret file that group or others can access.
var ErrTooOpen = errors.New("secret file is accessible by group or others")

// Write atomically writes data to path with the given mode.
func Write(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	defer os.Remove(name)
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Read reads a secret file, refusing it when group or others have any access.
func Read(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o, want 0600 (chmod 600 %s): %w", path, fi.Mode().Perm(), path, ErrTooOpen)
	}
	return os.ReadFile(path)
}
