package workingset

import (
	"os"
	"runtime/debug"
	"testing"
)

const smaps = `00400000-00d58000 r-xp 00000000 fe:00 10020694                           /opt/tether/bin/tether
Rss:                8544 kB
Anonymous:             0 kB
00d58000-01687000 r--p 00958000 fe:00 10020694                           /opt/tether/bin/tether
Rss:                8252 kB
Anonymous:             0 kB
01687000-016f3000 rw-p 01287000 fe:00 10020694                           /opt/tether/bin/tether
Rss:                 432 kB
Anonymous:           100 kB
016f3000-016f4000 r--p 012f3000 fe:00 10020694                           /opt/tether/bin/tether
Rss:                   4 kB
Anonymous:             4 kB
01700000-01800000 r--p 00000000 fe:00 10020699                           /opt/other
Rss:                  40 kB
Anonymous:             0 kB
01800000-01900000 r--p 00000000 fe:00 10020694                           /opt/tether/bin/tether
Rss:                  40 kB
62c99400000-62c9a000000 rw-p 00000000 00:00 0 
Rss:                3656 kB
Anonymous:          3656 kB
`

// TestReleasable: only the executable's read-only mappings without private
// pages are released; writable ones, copied-on-write ones, those whose
// private pages were not counted and other files' are kept.
func TestReleasable(t *testing.T) {
	maps, err := parseSmaps([]byte(smaps))
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 7 {
		t.Fatalf("parsed %d mappings, want 7", len(maps))
	}
	got := releasable(maps, "/opt/tether/bin/tether")
	want := []uint64{0x00400000, 0x00d58000}
	if len(got) != len(want) {
		t.Fatalf("releasable = %+v, want the mappings at %x", got, want)
	}
	for i, m := range got {
		if m.start != want[i] {
			t.Errorf("releasable[%d] starts at %x, want %x", i, m.start, want[i])
		}
	}
	if got[0].rss != 8544<<10 {
		t.Errorf("rss = %d, want %d", got[0].rss, 8544<<10)
	}
}

// TestReleaseExecutable: the test binary's pages leave its RSS and it keeps
// running.
func TestReleaseExecutable(t *testing.T) {
	// Other tests leave the runtime's background work (sweeping,
	// scavenging) running, which maps code back in while this one counts.
	debug.FreeOSMemory()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	resident := func() uint64 {
		data, err := os.ReadFile("/proc/self/smaps")
		if err != nil {
			t.Fatal(err)
		}
		maps, err := parseSmaps(data)
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, m := range releasable(maps, exe) {
			n += m.rss
		}
		return n
	}
	// Reading smaps after the release runs code that maps some pages back
	// (and so may a loaded machine's background work): the best of three
	// releases must leave at most three quarters of what was resident; a
	// release that did nothing leaves all of it.
	var before, after, released uint64
	for try := 0; try < 3; try++ {
		b := resident()
		r, err := ReleaseExecutable()
		if err != nil {
			t.Fatal(err)
		}
		a := resident()
		t.Logf("try %d: executable's read-only pages resident: %d kB before, %d kB released, %d kB after", try+1, b>>10, r>>10, a>>10)
		if try == 0 || a*before < after*b { // the best ratio after/before
			before, after, released = b, a, r
		}
	}
	if before == 0 || released == 0 {
		t.Fatalf("nothing to release (%d kB resident before, %d kB released): the test cannot tell", before>>10, released>>10)
	}
	if after > before*3/4 {
		t.Errorf("%d kB resident after the best release, want at most three quarters of the %d kB before", after>>10, before>>10)
	}
}
