package leaf

import "testing"

func TestFitBudgets(t *testing.T) {
	const MiB = 1 << 20
	for _, tc := range []struct {
		name         string
		want         int64
		room         uint64
		buffer, cmds int64
		err          bool
	}{
		{name: "roomy disk keeps the configured budget", want: 1 << 30, room: 100 << 30, buffer: 1 << 30, cmds: 64 * MiB},
		{name: "small disk: 3/4 of it for both streams", want: 1 << 30, room: 8 * MiB, buffer: 5 * MiB, cmds: 1 * MiB},
		{name: "budget below the limit is kept", want: 2 * MiB, room: 8 * MiB, buffer: 2 * MiB, cmds: 1 * MiB},
		{name: "too small for a buffer", want: 1 << 30, room: 1 * MiB, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := fitBudgets(tc.want, tc.room)
			if tc.err {
				if err == nil {
					t.Fatalf("fitBudgets(%d, %d) = %+v, want an error", tc.want, tc.room, b)
				}
				return
			}
			if err != nil || b.buffer != tc.buffer || b.commands != tc.cmds {
				t.Fatalf("fitBudgets(%d, %d) = %+v, %v; want buffer %d, commands %d", tc.want, tc.room, b, err, tc.buffer, tc.cmds)
			}
		})
	}
}
