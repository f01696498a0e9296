// Package dirlock holds an exclusive lock on a data directory for the life
// of a process, so two processes never run on one store: the second is
// refused with an error naming the directory and the first one's pid. The
// lock is an flock(2) on a file in the directory, released by the kernel
// when the process ends however it ends, so a crash never leaves a stale
// lock behind.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FileName is the lock file inside a locked directory; it holds the pid of
// the process holding the lock.
const FileName = "LOCK"

// ErrInUse is returned (wrapped) when another process holds the lock.
var ErrInUse = errors.New("in use by another process")

// Lock is a held directory lock.
type Lock struct {
	f *os.File
}

// Acquire locks dir (which must exist) for this process; what names the
// kind of process in the error ("edge", "hub").
func Acquire(dir, what string) (*Lock, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		data, _ := os.ReadFile(path)
		_ = f.Close()
		holder := "another process"
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); perr == nil {
			holder = fmt.Sprintf("another %s process (pid %d)", what, pid)
		}
		return nil, fmt.Errorf("data dir %s is %w: %s holds its lock %s; stop it, or give this %s another data dir (%v)",
			dir, ErrInUse, holder, path, what, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release unlocks the directory. It is safe to call on nil and more than
// once.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = unlockFile(l.f)
	_ = l.f.Close()
	l.f = nil
}
