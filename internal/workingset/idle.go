package workingset

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// gcCycles is the runtime metric counting completed GC cycles.
const gcCycles = "/gc/cycles/total:gc-cycles"

// IdleTrim is what one trim released, for the log.
type IdleTrim struct {
	// Executable is how many bytes of the executable's pages were resident
	// before they were released.
	Executable uint64
	// Err is why the executable's pages were not released, if they were not.
	Err error
}

// TrimWhenIdle trims the process's resident memory every interval while the
// process is idle, until ctx ends: it runs a garbage collection and returns
// the free heap to the operating system (debug.FreeOSMemory), then releases
// the executable's pages the process mapped since (ReleaseExecutable). It
// calls done, if not nil, after each trim.
//
// Idle means the runtime completed at most one GC cycle during the last
// interval: an idle Go process collects only every 2 minutes (the forced
// periodic GC) or when its few allocations add up to the heap goal, while
// a busy one collects several times a second; a busy process is never
// trimmed, so the trim costs its throughput nothing. Left alone, an idle
// process keeps its garbage until the next collection and every page of
// code it ran now and then: its RSS creeps up for minutes. A trim costs
// one collection of a small heap and the page faults that map back what
// the process runs next. interval <= 0 turns trimming off.
func TrimWhenIdle(ctx context.Context, interval time.Duration, done func(IdleTrim)) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	sample := []metrics.Sample{{Name: gcCycles}}
	cycles := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	last := cycles()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := cycles()
		idle := now-last <= 1
		if idle {
			debug.FreeOSMemory()
			var tr IdleTrim
			tr.Executable, tr.Err = ReleaseExecutable()
			if done != nil {
				done(tr)
			}
			now = cycles() // FreeOSMemory's own collection does not count
		}
		last = now
	}
}
