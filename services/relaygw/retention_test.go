package relaygw_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/services/relaygw"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// The running service prunes its tables on its own: an idempotency record
// older than the retention period is gone (its key would send again), a
// recent one still answers duplicate.
func TestServicePrunesOldIdempotencyRecords(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{Config: func(c *relaygw.Config) {
		c.Retention.Keep = 8 * 24 * time.Hour
		c.Retention.Interval = 50 * time.Millisecond
	}})
	rcpt := keys.Generate().PublicKey()
	for _, key := range []string{"old", "recent"} {
		_, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{RecipientPubkey: rcpt, Body: "hi", IdempotencyKey: key})
		require.NoError(t, err)
	}
	_, err := h.DB.Pool.Exec(ctx(t), `UPDATE relaygw_dm_outbox SET created_at = now() - interval '9 days' WHERE idempotency_key = 'old'`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var n int
		err := h.DB.Pool.QueryRow(ctx(t), `SELECT count(*) FROM relaygw_dm_outbox WHERE idempotency_key = 'old'`).Scan(&n)
		return err == nil && n == 0
	}, wait, 20*time.Millisecond)
	require.Equal(t, 1.0, h.Metric(t, "serbero_relaygw_retention_rows_deleted_total", "table", "relaygw_dm_outbox"))
	again, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{RecipientPubkey: rcpt, Body: "hi", IdempotencyKey: "recent"})
	require.NoError(t, err)
	require.True(t, again.GetDuplicate(), "the recent record is kept")
}
