package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// An event met again bumps its row; the listing pages newest first.
func TestQuarantineRecordsOnceAndPages(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	first, err := s.Quarantine(ctx, store.Quarantined{EventID: "e1", Cursor: 7, DisputeID: "d1", Class: "limit", Reason: "index row size"})
	require.NoError(t, err)
	require.EqualValues(t, 1, first.SeenCount)
	again, err := s.Quarantine(ctx, store.Quarantined{EventID: "e1", Cursor: 9, DisputeID: "d1", Class: "limit", Reason: "index row size"})
	require.NoError(t, err)
	require.EqualValues(t, 2, again.SeenCount)
	require.EqualValues(t, 9, again.Cursor)
	require.Equal(t, first.FirstSeen, again.FirstSeen)
	require.False(t, again.LastSeen.Before(first.LastSeen))
	noD, err := s.Quarantine(ctx, store.Quarantined{EventID: "e0", Cursor: 3, Class: "data", Reason: "x"})
	require.NoError(t, err)
	require.Empty(t, noD.DisputeID)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM intake_quarantine WHERE dispute_id IS NULL`))
	for i := range 3 {
		_, err := s.Quarantine(ctx, store.Quarantined{EventID: fmt.Sprintf("e%d", 10+i), Cursor: int64(10 + i), Class: "data", Reason: "x"})
		require.NoError(t, err)
	}
	var ids []string
	var after *store.QuarantineKey
	for {
		page, next, err := s.ListQuarantine(ctx, 2, after)
		require.NoError(t, err)
		for _, q := range page {
			ids = append(ids, q.EventID)
		}
		if next == nil {
			break
		}
		after = next
	}
	require.Equal(t, []string{"e12", "e11", "e10", "e0", "e1"}, ids, "most recently seen first")
}
