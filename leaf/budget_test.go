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

func TestRefitBuffer(t *testing.T) {
	const (
		KiB = 1 << 10
		MiB = 1 << 20
		GiB = 1 << 30
	)
	for _, tc := range []struct {
		name string
		in   bufferFit
		want refit
	}{
		{name: "roomy disk keeps the configured budget",
			in:   bufferFit{configured: GiB, commands: 64 * MiB, current: GiB, held: 100 * MiB, room: 100 * GiB},
			want: refit{budget: GiB}},
		{name: "filled disk cuts the budget to 3/4 of room",
			in:   bufferFit{configured: GiB, commands: 64 * MiB, current: GiB, held: 10 * MiB, room: 400 * MiB},
			want: refit{budget: 236 * MiB, change: true}},
		{name: "cut stops at what the buffer holds",
			in:   bufferFit{configured: GiB, commands: 2 * MiB, current: 10 * MiB, held: 6 * MiB, room: 8 * MiB},
			want: refit{budget: 6 * MiB, change: true, heldBack: true}},
		{name: "buffer holds its whole budget: unchanged",
			in:   bufferFit{configured: GiB, commands: 2 * MiB, current: 10 * MiB, held: 10 * MiB, room: 12 * MiB},
			want: refit{budget: 10 * MiB, heldBack: true}},
		{name: "held back budget follows the backlog down",
			in:   bufferFit{configured: GiB, commands: 2 * MiB, current: 6 * MiB, held: 3 * MiB, room: 5 * MiB},
			want: refit{budget: 3 * MiB, change: true, heldBack: true}},
		{name: "room returns: raised back",
			in:   bufferFit{configured: GiB, commands: 2 * MiB, current: 3 * MiB, held: 0, room: 16 * MiB},
			want: refit{budget: 10 * MiB, change: true}},
		{name: "raised never above configured",
			in:   bufferFit{configured: 8 * MiB, commands: 64 * MiB, current: 4 * MiB, held: 0, room: 100 * GiB},
			want: refit{budget: 8 * MiB, change: true}},
		{name: "last small step back to configured is taken",
			in:   bufferFit{configured: 100 * MiB, commands: 64 * MiB, current: 100*MiB - 10*KiB, room: 100 * GiB},
			want: refit{budget: 100 * MiB, change: true}},
		{name: "change under 1% and under 1 MiB is left alone",
			in:   bufferFit{configured: GiB, commands: 64 * MiB, current: 100 * MiB, room: (164*MiB - 512*KiB) / 3 * 4},
			want: refit{budget: 100*MiB - 512*KiB}},
		{name: "change over 1% of a small budget is taken",
			in:   bufferFit{configured: GiB, commands: 2 * MiB, current: 5 * MiB, room: 8 * MiB},
			want: refit{budget: 4 * MiB, change: true}},
		{name: "change over 1 MiB is taken",
			in:   bufferFit{configured: 10 * GiB, commands: 64 * MiB, current: 2 * GiB, room: 2812 * MiB},
			want: refit{budget: 2*GiB - 3*MiB, change: true}},
		{name: "below the minimum, empty buffer: every new message refused",
			in:   bufferFit{configured: GiB, commands: 2 * MiB, current: 10 * MiB, held: 0, room: MiB},
			want: refit{budget: 1, change: true, tooSmall: true}},
		{name: "below the minimum with a backlog: held at it",
			in:   bufferFit{configured: GiB, commands: 2 * MiB, current: 10 * MiB, held: 3 * MiB, room: 3 * MiB},
			want: refit{budget: 3 * MiB, change: true, heldBack: true, tooSmall: true}},
		{name: "drop_oldest cuts below what the buffer holds",
			in:   bufferFit{configured: GiB, commands: 2 * MiB, current: 10 * MiB, held: 8 * MiB, room: 8 * MiB, dropOldest: true},
			want: refit{budget: 4 * MiB, change: true}},
		{name: "drop_oldest below the minimum keeps 1 MiB",
			in:   bufferFit{configured: GiB, commands: 2 * MiB, current: 10 * MiB, held: 8 * MiB, room: MiB, dropOldest: true},
			want: refit{budget: MiB, change: true, tooSmall: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := refitBuffer(tc.in); got != tc.want {
				t.Errorf("refitBuffer(%+v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}
