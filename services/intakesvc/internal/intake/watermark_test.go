package intake

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWatermark(t *testing.T) {
	t.Parallel()
	w := newWatermark(10)
	for _, c := range []int64{11, 12, 15, 20} {
		w.add(c)
	}
	require.EqualValues(t, 10, w.mark())
	w.done(12)
	require.EqualValues(t, 10, w.mark(), "11 is not applied yet")
	w.done(15)
	w.done(11)
	require.EqualValues(t, 15, w.mark(), "11, 12, 15 applied; 20 pending")
	select {
	case <-w.changed:
	default:
		t.Fatal("a moved watermark signals")
	}
	w.done(20)
	require.EqualValues(t, 20, w.mark())
	w.add(21)
	require.EqualValues(t, 20, w.mark())
}

func TestShardIsStable(t *testing.T) {
	t.Parallel()
	for _, d := range []string{"a", "dispute-001", "7f0c"} {
		first := shard(d, 4)
		require.Equal(t, first, shard(d, 4), "same dispute, same shard")
		require.Less(t, first, 4)
	}
}
