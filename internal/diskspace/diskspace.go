// Package diskspace measures the filesystem an edge keeps its store on, so
// the edge can fit its buffer's budget to the space there really is.
package diskspace

import (
	"io/fs"
	"path/filepath"
)

// Used returns the bytes taken by the regular files under dir (0 if dir
// does not exist).
func Used(dir string) uint64 {
	var n uint64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += uint64(fi.Size())
			}
		}
		return nil
	})
	return n
}
