package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

func setup(t *testing.T) (*pgdbtest.DB, *store.Store) {
	t.Helper()
	db := pgdbtest.NewDB(t)
	_, err := db.Pool.Exec(t.Context(), `
INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at)
VALUES ('d-1', 'e1', 'm', 'buyer', 100, 101), ('d-2', 'e2', 'm', 'seller', 200, 201);
INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, policy_hash, started_at, last_transition_at)
VALUES ('s-1', 'd-1', 'awaiting_response', 'phase3-default', 'h', 110, 110),
       ('s-2', 'd-2', 'awaiting_response', 'phase3-default', 'h', 210, 210);`)
	require.NoError(t, err)
	return db, store.New(db.Pool)
}

func occ(dispute, session string) store.RationaleOccurrence {
	return store.RationaleOccurrence{
		DisputeID: dispute, SessionID: session, Operation: store.OperationClassify,
		Provider: "openai", Model: "gpt-4o-mini", PromptBundleID: "phase3-default", PolicyHash: "h", GeneratedAt: 1000,
	}
}

func count(t *testing.T, db *pgdbtest.DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&n))
	return n
}

func TestRationaleIDVectors(t *testing.T) {
	t.Parallel()
	require.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", store.RationaleID("abc"))
	require.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", store.RationaleID(""))
}

func TestRecordRationale(t *testing.T) {
	t.Parallel()
	db, s := setup(t)
	ctx := t.Context()

	first, err := s.RecordRationale(ctx, nil, "abc", occ("d-1", "s-1"))
	require.NoError(t, err)
	require.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", first.RationaleID)
	require.Equal(t, "s-1", first.SessionID)
	require.Equal(t, "openai", first.Provider)

	// The identical write again is a no-op (idempotent).
	again, err := s.RecordRationale(ctx, nil, "abc", occ("d-1", "s-1"))
	require.NoError(t, err)
	require.Equal(t, first.ID, again.ID)

	// The same text in another session is a second occurrence, not a
	// provenance conflict; the text is stored once.
	other := occ("d-2", "s-2")
	other.Model = "claude"
	second, err := s.RecordRationale(ctx, nil, "abc", other)
	require.NoError(t, err)
	require.NotEqual(t, first.ID, second.ID)
	require.Equal(t, first.RationaleID, second.RationaleID)
	require.Equal(t, "claude", second.Model)

	// Empty rationales, twice, in two disputes: fine too.
	e1, err := s.RecordRationale(ctx, nil, "", occ("d-1", ""))
	require.NoError(t, err)
	require.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", e1.RationaleID)
	e2, err := s.RecordRationale(ctx, nil, "", occ("d-2", ""))
	require.NoError(t, err)
	require.NotEqual(t, e1.ID, e2.ID)

	require.Equal(t, 2, count(t, db, "reasoning_rationales"))
	require.Equal(t, 4, count(t, db, "reasoning_rationale_occurrences"))
	text, err := s.RationaleText(ctx, first.RationaleID)
	require.NoError(t, err)
	require.Equal(t, "abc", text)

	// An explicit key: the second write under it returns the first row.
	k := occ("d-1", "s-1")
	k.Key, k.GeneratedAt = "event:42", 2000
	a, err := s.RecordRationale(ctx, nil, "xyz", k)
	require.NoError(t, err)
	k.GeneratedAt = 3000
	b, err := s.RecordRationale(ctx, nil, "xyz", k)
	require.NoError(t, err)
	require.Equal(t, a, b)

	// Inside the caller's transaction: rolled back with it.
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = s.RecordRationale(ctx, tx, "rolled back", occ("d-1", "s-1"))
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	_, err = s.RationaleText(ctx, store.RationaleID("rolled back"))
	require.ErrorIs(t, err, store.ErrNotFound)

	_, err = s.RecordRationale(ctx, nil, "x", store.RationaleOccurrence{Operation: store.OperationClassify})
	require.ErrorContains(t, err, "dispute id is required")
	bad := occ("d-1", "")
	bad.Operation = "guess"
	_, err = s.RecordRationale(ctx, nil, "x", bad)
	require.ErrorContains(t, err, "unknown operation")

	list, err := s.RationaleOccurrences(ctx, "d-1")
	require.NoError(t, err)
	require.Len(t, list, 3)
}

func TestBindRationale(t *testing.T) {
	t.Parallel()
	db, s := setup(t)
	ctx := t.Context()
	o, err := s.RecordRationale(ctx, nil, "opening", occ("d-1", ""))
	require.NoError(t, err)
	require.Empty(t, o.SessionID, "dispute-scoped")

	require.NoError(t, s.BindRationale(ctx, nil, o.ID, "d-1", "s-1"))
	require.NoError(t, s.BindRationale(ctx, nil, o.ID, "d-1", "s-1"), "idempotent")
	require.ErrorIs(t, s.BindRationale(ctx, nil, o.ID, "d-1", "s-2"), store.ErrRationaleBound)
	require.ErrorIs(t, s.BindRationale(ctx, nil, o.ID, "d-2", "s-2"), store.ErrRationaleBound, "another dispute's occurrence")
	require.ErrorIs(t, s.BindRationale(ctx, nil, 999999, "d-1", "s-1"), store.ErrNotFound)
	var session string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT session_id FROM reasoning_rationale_occurrences WHERE id = $1`, o.ID).Scan(&session))
	require.Equal(t, "s-1", session)

	// Re-recording the opening write after the bind returns the bound row.
	again, err := s.RecordRationale(ctx, nil, "opening", occ("d-1", ""))
	require.NoError(t, err)
	require.Equal(t, o.ID, again.ID)
	require.Equal(t, "s-1", again.SessionID)
}

func TestBundles(t *testing.T) {
	t.Parallel()
	db, s := setup(t)
	ctx := t.Context()
	hash := "e208ac72a7e9e763ac19015546d716cc6301a582afd1ee5698d83245a78f3d1d"
	b := store.PromptBundle{PolicyHash: hash, PromptBundleID: "phase3-default", System: "s", Classification: "c", Escalation: "e", MediationStyle: "m", MessageTemplates: "t"}
	require.NoError(t, s.SaveBundle(ctx, b, 100))
	require.NoError(t, s.SaveBundle(ctx, b, 200), "idempotent")
	got, err := s.BundleByHash(ctx, hash)
	require.NoError(t, err)
	require.Equal(t, b, got)
	var first, last int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT first_loaded_at, last_loaded_at FROM reasoning_prompt_bundles`).Scan(&first, &last))
	require.Equal(t, [2]int64{100, 200}, [2]int64{first, last})
	_, err = s.BundleByHash(ctx, "0000000000000000000000000000000000000000000000000000000000000000")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Error(t, s.SaveBundle(ctx, store.PromptBundle{PolicyHash: "not-a-hash"}, 1), "the schema checks the hash form")
}
