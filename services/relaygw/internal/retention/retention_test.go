package retention_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	mdm "github.com/serbero/serbero/pkg/mostro/dm"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/relaygw/internal/retention"
	"github.com/serbero/serbero/services/relaygw/internal/store"
)

const keep = 90 * 24 * time.Hour

type world struct {
	t     *testing.T
	db    *pgdbtest.DB
	st    *store.Store
	clock *clockwork.FakeClock
	node  keys.Keys
	seq   int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db := pgdbtest.NewDB(t)
	return &world{t: t, db: db, st: store.New(db.Pool), clock: clockwork.NewFakeClockAt(time.Now()), node: keys.Generate()}
}

func (w *world) job(reg prometheus.Registerer, batch int, pool *pgxpool.Pool) *retention.Job {
	w.t.Helper()
	st := w.st
	if pool != nil {
		st = store.New(pool)
	}
	j, err := retention.New(retention.Options{
		Store: st, Keep: keep, Interval: time.Hour, BatchSize: batch, Relays: []string{"wss://kept.example"},
		Logger: slog.New(slog.DiscardHandler), Registerer: reg, Clock: w.clock,
	})
	require.NoError(w.t, err)
	return j
}

func (w *world) exec(sql string, args ...any) {
	w.t.Helper()
	_, err := w.db.Pool.Exec(context.Background(), sql, args...)
	require.NoError(w.t, err)
}

func (w *world) count(table string) int {
	w.t.Helper()
	var n int
	require.NoError(w.t, w.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// disputes stores n dispute events created age ago and received age ago;
// it returns their cursors in order.
func (w *world) disputes(n int, age time.Duration) []int64 {
	w.t.Helper()
	evs := make([]*nostr.Event, n)
	for i := range evs {
		w.seq++
		ev := &nostr.Event{Kind: 38386, CreatedAt: nostr.Timestamp(w.clock.Now().Add(-age).Unix()), Tags: nostr.Tags{{"d", fmt.Sprintf("dispute-%d", w.seq)}, {"s", "initiated"}}}
		require.NoError(w.t, w.node.Sign(ev))
		evs[i] = ev
	}
	stored, err := w.st.InsertDisputeEvents(context.Background(), evs, "wss://kept.example")
	require.NoError(w.t, err)
	require.Len(w.t, stored, n)
	out := make([]int64, n)
	ids := make([]string, n)
	for i, s := range stored {
		out[i], ids[i] = s.Cursor, s.EventID
	}
	w.exec(`UPDATE relaygw_dispute_events SET received_at = now() - $2::interval WHERE event_id = ANY($1)`, ids, fmt.Sprintf("%d seconds", int64(age/time.Second)))
	return out
}

func (w *world) dms(n int, age time.Duration, prefix string) {
	w.t.Helper()
	sender := keys.Generate()
	recs := make([]store.DMRecord, n)
	for i := range recs {
		rcpt := keys.Generate().PublicKey()
		wrap, err := mdm.Wrap(sender, rcpt, "x", mdm.Options{})
		require.NoError(w.t, err)
		recs[i] = store.DMRecord{Key: fmt.Sprintf("%s-%d", prefix, i), Recipient: rcpt, RequestMAC: "m", Event: wrap}
	}
	_, err := w.st.InsertDMs(context.Background(), recs)
	require.NoError(w.t, err)
	w.exec(`UPDATE relaygw_dm_outbox SET created_at = now() - $2::interval WHERE idempotency_key LIKE $1`, prefix+"-%", fmt.Sprintf("%d seconds", int64(age/time.Second)))
}

func (w *world) chatLines(n int, age time.Duration, party string) {
	w.t.Helper()
	ctx := context.Background()
	_, err := w.st.RegisterChatChannel(ctx, store.ChatChannel{Party: party, V1Shared: "a", V2Conv: "b", V2Sign: "c"})
	require.NoError(w.t, err)
	for i := range n {
		inner := nostr.Event{Kind: 1, CreatedAt: nostr.Timestamp(w.clock.Now().Add(-age).Unix()), Content: fmt.Sprint(i)}
		require.NoError(w.t, keys.Generate().Sign(&inner))
		_, ok, err := w.st.InsertChatLine(ctx, store.ChatLine{Party: party, InnerID: inner.ID, InnerCreatedAt: int64(inner.CreatedAt), OuterID: inner.ID, Form: 2, Content: inner.Content})
		require.NoError(w.t, err)
		require.True(w.t, ok)
	}
	w.exec(`UPDATE relaygw_chat_lines SET received_at = now() - $2::interval WHERE party_trade_pubkey = $1`, party, fmt.Sprintf("%d seconds", int64(age/time.Second)))
}

func TestRunOnceKeepsWhatIsStillNeeded(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	old := keep + 24*time.Hour
	w.disputes(5, old)
	w.disputes(3, time.Hour)
	w.dms(4, old, "old")
	w.dms(2, time.Minute, "new")
	w.chatLines(3, old, keys.Generate().PublicKey())
	w.chatLines(2, time.Hour, keys.Generate().PublicKey())
	require.NoError(t, w.st.Advance(ctx, "mostro-disputes", "wss://gone.example", 100))
	require.NoError(t, w.st.Advance(ctx, "mostro-disputes", "wss://kept.example", 100))
	w.exec(`UPDATE relaygw_cursors SET updated_at = now() - interval '100 days'`)
	// An event received long ago but created recently (a relay delivered
	// it late) is still within dedup's reach: kept.
	late := w.disputes(1, time.Hour)
	w.exec(`UPDATE relaygw_dispute_events SET received_at = now() - interval '100 days' WHERE cursor = $1`, late[0])

	reg := prometheus.NewRegistry()
	res, err := w.job(reg, 2, nil).RunOnce(ctx)
	require.NoError(t, err)
	require.False(t, res.Skipped)
	require.Equal(t, map[string]int64{
		retention.TableDisputeEvents: 5, retention.TableDMOutbox: 4, retention.TableChatLines: 3,
		retention.TableChatOutbox: 0, retention.TableCursors: 1, retention.TableStreamConsumers: 0,
	}, res.Deleted)
	require.Equal(t, 4, w.count("relaygw_dispute_events"))
	require.Equal(t, 2, w.count("relaygw_dm_outbox"))
	require.Equal(t, 2, w.count("relaygw_chat_lines"))
	require.Equal(t, 2, w.count("relaygw_chat_channels"), "channels are retired by their owner, never by age")
	var relays []string
	rows, err := w.db.Pool.Query(ctx, `SELECT relay_url FROM relaygw_cursors`)
	require.NoError(t, err)
	for rows.Next() {
		var u string
		require.NoError(t, rows.Scan(&u))
		relays = append(relays, u)
	}
	require.Equal(t, []string{"wss://kept.example"}, relays, "a configured relay's cursor is kept however old")

	require.Equal(t, 5.0, metric(t, reg, "serbero_relaygw_retention_rows_deleted_total", retention.TableDisputeEvents))
	require.Equal(t, 4.0, metric(t, reg, "serbero_relaygw_retention_rows_deleted_total", retention.TableDMOutbox))

	again, err := w.job(nil, 2, nil).RunOnce(ctx)
	require.NoError(t, err)
	for table, n := range again.Deleted {
		require.Zero(t, n, table)
	}
}

func metric(t *testing.T, reg *prometheus.Registry, name, table string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "table" && l.GetValue() == table {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{table=%q}", name, table)
	return 0
}

// A consumer seen within the retention period protects every event it has
// not resumed past; a consumer not seen for longer protects nothing.
func TestConsumersProtectWhatTheyHaveNotPassed(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	cursors := w.disputes(6, keep+24*time.Hour)
	consumers := retention.NewConsumers(w.st, slog.New(slog.DiscardHandler))
	consumers.ResumedDisputes(ctx, "intakesvc", cursors[1]) // has processed the first two
	consumers.ResumedDisputes(ctx, "gone", 0)
	w.exec(`UPDATE relaygw_stream_consumers SET seen_at = now() - interval '91 days' WHERE consumer = 'gone'`)

	res, err := w.job(nil, 100, nil).RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), res.Deleted[retention.TableDisputeEvents], "only what intakesvc has passed")
	require.Equal(t, int64(1), res.Deleted[retention.TableStreamConsumers], "the stale consumer is forgotten")
	require.Equal(t, 4, w.count("relaygw_dispute_events"))

	consumers.ResumedDisputes(ctx, "intakesvc", cursors[5])
	res, err = w.job(nil, 100, nil).RunOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(4), res.Deleted[retention.TableDisputeEvents])
}

// Several replicas run the job at the same moment: every old row is
// deleted exactly once, none fails, and the replicas that found the lock
// taken skip the run.
func TestReplicasRunSafelyTogether(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.disputes(200, keep+time.Hour)
	w.dms(60, keep+time.Hour, "old")
	const replicas = 4
	results := make([]retention.Result, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		pool, err := pgxpool.New(context.Background(), w.db.URL)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		j := w.job(nil, 7, pool)
		wg.Go(func() { results[i], errs[i] = j.RunOnce(context.Background()) })
	}
	wg.Wait()
	var events, dms int64
	for i := range replicas {
		require.NoError(t, errs[i])
		events += results[i].Deleted[retention.TableDisputeEvents]
		dms += results[i].Deleted[retention.TableDMOutbox]
	}
	require.Zero(t, w.count("relaygw_dispute_events")+w.count("relaygw_dm_outbox"), "a skipped replica leaves nothing behind that a completed one did not take")
	require.Equal(t, int64(200), events)
	require.Equal(t, int64(60), dms)
}

// Run prunes at start and then every interval of its clock.
func TestRunPrunesEveryInterval(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.dms(3, keep+time.Hour, "first")
	done := make(chan struct{})
	j := w.job(nil, 10, nil)
	go func() {
		defer close(done)
		j.Run(ctx)
	}()
	require.Eventually(t, func() bool { return w.count("relaygw_dm_outbox") == 0 }, 10*time.Second, 10*time.Millisecond, "the first run is at start")
	require.NoError(t, w.clock.BlockUntilContext(ctx, 1))
	w.dms(2, keep+time.Hour, "second")
	w.clock.Advance(time.Hour)
	require.Eventually(t, func() bool { return w.count("relaygw_dm_outbox") == 0 }, 10*time.Second, 10*time.Millisecond, "the next run is one interval later")
	cancel()
	<-done
}
