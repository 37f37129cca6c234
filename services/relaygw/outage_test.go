package relaygw_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/relaygwclient"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// setConnections cuts (or restores) every connection to the test's
// database, as a database restart does from relaygw's side.
func setConnections(t *testing.T, db *pgdbtest.DB, allow bool) {
	t.Helper()
	c := context.Background()
	admin, err := pgx.Connect(c, pgdbtest.AdminURL())
	require.NoError(t, err)
	defer admin.Close(c)
	_, err = admin.Exec(c, "ALTER DATABASE "+pgx.Identifier{db.Name}.Sanitize()+" ALLOW_CONNECTIONS "+map[bool]string{true: "true", false: "false"}[allow])
	require.NoError(t, err)
	if !allow {
		_, err = admin.Exec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", db.Name)
		require.NoError(t, err)
	}
}

// While the database is down, relaygw keeps running: it refuses DMs with
// UNAVAILABLE (callers retry), keeps dispute events on the relay (its
// cursor did not move) and resumes everything when the database is back:
// nothing is lost.
func TestSurvivesADatabaseOutage(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	h := relaygwtest.Start(t, relaygwtest.Options{DB: db})
	solver := fakesolver.Start(t, h.Relay.URL())
	col, _ := streamDisputes(t, h, 0)
	before := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", nostr.Now()-2))
	require.Equal(t, before.ID, col.next(t).GetEventId())

	setConnections(t, db, false)
	t.Cleanup(func() { setConnections(t, db, true) })
	during := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", nostr.Now()-1))
	// The subscription's failures alternate between storing the event and
	// loading its cursor again on re-subscribe: either names the outage.
	require.Eventually(t, func() bool {
		st, err := h.Client.GetRelayStatus(ctx(t), &relaygwv1.GetRelayStatusRequest{})
		if err != nil {
			return false
		}
		last := st.GetRelays()[0].GetLastError()
		return strings.Contains(last, "store dispute event") || strings.Contains(last, "load cursor")
	}, wait, 20*time.Millisecond, "the database failure is visible")
	_, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{RecipientPubkey: solver.Pubkey(), Body: "later", IdempotencyKey: "outage"})
	require.Equal(t, codes.Unavailable, code(err))
	require.Equal(t, relaygwv1.SendErrorReason_SEND_ERROR_REASON_STORE_UNAVAILABLE, relaygwclient.ReasonOf(err), "retryable")
	col.none(t, 200*time.Millisecond)

	setConnections(t, db, true)
	require.Equal(t, during.ID, col.next(t).GetEventId())
	after := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", nostr.Now()))
	require.Equal(t, after.ID, col.next(t).GetEventId())
	col.none(t, 200*time.Millisecond)
	require.Eventually(t, func() bool {
		r, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{RecipientPubkey: solver.Pubkey(), Body: "later", IdempotencyKey: "outage"})
		return err == nil && r.GetDelivered()
	}, wait, 50*time.Millisecond)
	require.Equal(t, "later", solver.WaitFor(1, wait)[0].Body)
}
