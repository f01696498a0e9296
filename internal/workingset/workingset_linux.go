package workingset

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mapping is one line of /proc/self/smaps with the fields read from it.
type mapping struct {
	start, end uint64
	perms      string
	path       string
	rss, anon  uint64 // bytes
	// anonSeen: the Anonymous field was read (a mapping whose private
	// pages cannot be counted is never released).
	anonSeen bool
}

// ReleaseExecutable releases the resident pages of the process's read-only
// mappings of its own executable and returns how many bytes were resident
// in them before.
func ReleaseExecutable() (uint64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("release the executable's pages: %w", err)
	}
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("release the executable's pages: %w", err)
	}
	maps, err := parseSmaps(data)
	if err != nil {
		return 0, fmt.Errorf("release the executable's pages: /proc/self/smaps: %w", err)
	}
	var released uint64
	for _, m := range releasable(maps, exe) {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("release the executable's pages: madvise %x-%x: %w", m.start, m.end, errno)
		}
		released += m.rss
	}
	return released, nil
}

// releasable returns the mappings of exe that can be released: read-only
// (no write permission) and holding no anonymous (copied-on-write) page.
func releasable(maps []mapping, exe string) []mapping {
	var out []mapping
	for _, m := range maps {
		if m.path == exe && !strings.Contains(m.perms, "w") && m.anonSeen && m.anon == 0 && m.end > m.start {
			out = append(out, m)
		}
	}
	return out
}

// parseSmaps reads the mappings of an smaps file: a header line per
// mapping ("start-end perms offset dev inode [path]") followed by
// "Field: value kB" lines.
func parseSmaps(data []byte) ([]mapping, error) {
	var maps []mapping
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") { // a mapping's header line
			if len(f) < 5 {
				return nil, fmt.Errorf("mapping line %q: want at least 5 fields", sc.Text())
			}
			lo, hi, ok := strings.Cut(f[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("mapping line %q: bad address range", sc.Text())
			}
			m := mapping{start: start, end: end, perms: f[1]}
			if len(f) >= 6 {
				m.path = strings.Join(f[5:], " ")
			}
			maps = append(maps, m)
			continue
		}
		if len(maps) == 0 || len(f) != 3 || f[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", sc.Text(), err)
		}
		switch f[0] {
		case "Rss:":
			maps[len(maps)-1].rss = kb << 10
		case "Anonymous:":
			maps[len(maps)-1].anon, maps[len(maps)-1].anonSeen = kb<<10, true
		}
	}
	return maps, sc.Err()
}
