package chat

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWindow(t *testing.T) {
	t.Parallel()
	count := func(w *window, times []int64) int {
		n := 0
		for _, at := range times {
			if w.allow(at) {
				n++
			}
		}
		return n
	}
	same := func(n int, at int64) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = at
		}
		return out
	}
	spread := func(n int, from, step int64) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = from - int64(i)*step // newest first, as a backlog comes
		}
		return out
	}
	tests := []struct {
		name  string
		times []int64
		want  int
	}{
		{"FloodInOneSecond", same(70, 1000), 60},
		{"BacklogOverHoursNewestFirst", spread(300, 100_000, 10), 300},
		{"ThirtyAMinuteSustained", spread(600, 100_000, 2), 600},
		// 1 a second for 400 s: about 60 every two minutes pass.
		{"OneASecondIsCut", spread(400, 100_000, 1), 220},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWindow(rateMax, rateSpan)
			require.Equal(t, tt.want, count(w, tt.times))
			// Whatever passed: no span of rateSpan holds more than rateMax.
			for i, a := range w.ts {
				n := 0
				for _, b := range w.ts[i:] {
					if b < a+int64(rateSpan/time.Second) {
						n++
					}
				}
				require.LessOrEqual(t, n, rateMax)
			}
		})
	}
	t.Run("Forget", func(t *testing.T) {
		w := newWindow(2, time.Minute)
		require.True(t, w.allow(10))
		require.True(t, w.allow(10))
		require.False(t, w.allow(10))
		w.forget(10)
		require.True(t, w.allow(10))
	})
}
