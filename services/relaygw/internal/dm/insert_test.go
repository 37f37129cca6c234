package dm

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/apperr"
	mdm "github.com/serbero/serbero/pkg/mostro/dm"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/relaygw/internal/reason"
	"github.com/serbero/serbero/services/relaygw/internal/store"
)

func record(t *testing.T, sender keys.Keys, key string) store.DMRecord {
	t.Helper()
	recipient := keys.Generate().PublicKey()
	wrap, err := mdm.Wrap(sender, recipient, "body of "+key, mdm.Options{})
	require.NoError(t, err)
	return store.DMRecord{Key: key, Recipient: recipient, RequestMAC: "mac-" + key, Event: wrap}
}

// One record Postgres refuses (here a NUL byte in the key, which the Send
// path refuses before it gets this far) must not fail the other records of
// its group-committed batch.
func TestBatchIsolatesTheBadRecord(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	st := store.New(db.Pool)
	in := &inserter{store: st}
	sender := keys.Generate()

	var batch []*insertReq
	for i := range 8 {
		key := fmt.Sprintf("good-%d", i)
		if i == 3 {
			key = "bad\x00key"
		}
		batch = append(batch, &insertReq{rec: record(t, sender, key), done: make(chan struct{})})
	}
	in.write(batch)

	for i, r := range batch {
		<-r.done
		if i == 3 {
			require.Error(t, r.err)
			require.Equal(t, apperr.KindInternal, apperr.KindOf(r.err), "refused by Postgres: not retryable as Unavailable")
			continue
		}
		require.NoError(t, r.err, "record %d", i)
		require.True(t, r.inserted, "record %d", i)
		got, ok, err := st.GetDM(context.Background(), r.rec.Key)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, r.rec.Event.ID, got.Event.ID)
	}
}

// When the database does not answer, every record of the batch fails as
// retryable (STORE_UNAVAILABLE), and nothing is tried one by one.
func TestBatchFailsWholeWhenTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	st := store.New(db.Pool)
	db.Pool.Close()
	in := &inserter{store: st}
	sender := keys.Generate()
	batch := []*insertReq{
		{rec: record(t, sender, "a"), done: make(chan struct{})},
		{rec: record(t, sender, "b"), done: make(chan struct{})},
	}
	in.write(batch)
	for _, r := range batch {
		<-r.done
		require.Error(t, r.err)
		require.Equal(t, apperr.KindUnavailable, apperr.KindOf(r.err))
		require.Equal(t, reason.StoreUnavailable, reason.Of(r.err))
	}
}
