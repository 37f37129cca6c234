// Package store is relaygw's Postgres access (tables relaygw_* of
// migrations 00004 and 00010); SQL only, every decision comes in as an
// argument. Appends that readers follow by cursor (dispute events,
// chat lines) are serialised with a transaction-level advisory lock, so a
// cursor becomes visible only after every smaller one: a reader that has
// seen cursor N never later finds a committed row below N.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nbd-wtf/go-nostr"
)

// Store is relaygw's database.
type Store struct {
	pool *pgxpool.Pool
}

// New wraps a pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Advisory lock keys serialising the cursor-ordered appends.
const (
	lockDisputeEvents = 0x52475744 // "RGWD"
	lockChatLines     = 0x52475743 // "RGWC"
)

// --- subscription cursors (pool.Cursors) ---

// Load returns the cursor of a subscription on a relay.
func (s *Store) Load(ctx context.Context, key, relayURL string) (int64, bool, error) {
	var ts int64
	err := s.pool.QueryRow(ctx, `SELECT last_created_at FROM relaygw_cursors WHERE sub_key = $1 AND relay_url = $2`, key, relayURL).Scan(&ts)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("load cursor %s: %w", key, err)
	}
	return ts, true, nil
}

// Advance moves a cursor forward (never back).
func (s *Store) Advance(ctx context.Context, key, relayURL string, ts int64) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO relaygw_cursors (sub_key, relay_url, last_created_at) VALUES ($1, $2, $3)
ON CONFLICT (sub_key, relay_url) DO UPDATE
  SET last_created_at = GREATEST(relaygw_cursors.last_created_at, EXCLUDED.last_created_at), updated_at = now()
  WHERE relaygw_cursors.last_created_at < EXCLUDED.last_created_at`, key, relayURL, ts)
	if err != nil {
		return fmt.Errorf("advance cursor %s: %w", key, err)
	}
	return nil
}

// --- dispute events ---

// DisputeEvent is one stored, verified kind 38386 event.
type DisputeEvent struct {
	Cursor     int64
	Event      nostr.Event
	RelayURL   string
	ReceivedAt time.Time
}

// StoredDisputeEvent is one event newly stored by InsertDisputeEvents.
type StoredDisputeEvent struct {
	Cursor    int64
	DisputeID string
	EventID   string
}

// InsertDisputeEvents stores verified events once each, in one transaction
// (in the given order), and returns those that were not stored before.
func (s *Store) InsertDisputeEvents(ctx context.Context, evs []*nostr.Event, relayURL string) ([]StoredDisputeEvent, error) {
	n := len(evs)
	ids, pubkeys, contents, sigs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	kinds, createdAts := make([]int64, n), make([]int64, n)
	tags := make([]string, n)
	dTags := make(map[string]string, n)
	for i, ev := range evs {
		b, err := json.Marshal(ev.Tags)
		if err != nil {
			return nil, fmt.Errorf("encode tags of %s: %w", ev.ID, err)
		}
		ids[i], pubkeys[i], contents[i], sigs[i] = ev.ID, ev.PubKey, ev.Content, ev.Sig
		kinds[i], createdAts[i], tags[i] = int64(ev.Kind), int64(ev.CreatedAt), string(b)
		dTags[ev.ID] = ev.Tags.GetD()
	}
	var out []StoredDisputeEvent
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Serialise writers so cursors become visible in cursor order.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockDisputeEvents); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
INSERT INTO relaygw_dispute_events (event_id, pubkey, kind, created_at, tags, content, sig, relay_url)
SELECT t.event_id, t.pubkey, t.kind, t.created_at, t.tags::jsonb, t.content, t.sig, $8
FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::text[], $6::text[], $7::text[])
     WITH ORDINALITY AS t(event_id, pubkey, kind, created_at, tags, content, sig, ord)
ORDER BY t.ord
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id, cursor`, ids, pubkeys, kinds, createdAts, tags, contents, sigs, relayURL)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (StoredDisputeEvent, error) {
			var st StoredDisputeEvent
			err := r.Scan(&st.EventID, &st.Cursor)
			st.DisputeID = dTags[st.EventID]
			return st, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store dispute events (%d): %w", n, err)
	}
	return out, nil
}

// DisputeEventsAfter returns up to limit stored events with a cursor
// greater than after, in cursor order.
func (s *Store) DisputeEventsAfter(ctx context.Context, after int64, limit int) ([]DisputeEvent, error) {
	rows, err := s.pool.Query(ctx, `
SELECT cursor, event_id, pubkey, kind, created_at, tags, content, sig, relay_url, received_at
FROM relaygw_dispute_events WHERE cursor > $1 ORDER BY cursor LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read dispute events: %w", err)
	}
	defer rows.Close()
	var out []DisputeEvent
	for rows.Next() {
		var d DisputeEvent
		var tags []byte
		var createdAt int64
		if err := rows.Scan(&d.Cursor, &d.Event.ID, &d.Event.PubKey, &d.Event.Kind, &createdAt, &tags, &d.Event.Content, &d.Event.Sig, &d.RelayURL, &d.ReceivedAt); err != nil {
			return nil, fmt.Errorf("read dispute events: %w", err)
		}
		d.Event.CreatedAt = nostr.Timestamp(createdAt)
		if err := json.Unmarshal(tags, &d.Event.Tags); err != nil {
			return nil, fmt.Errorf("decode tags of %s: %w", d.Event.ID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read dispute events: %w", err)
	}
	return out, nil
}

// --- Mostro info ---

// MostroInfo is the node's newest verified kind 38385 event, parsed.
type MostroInfo struct {
	Pubkey          string
	EventID         string
	CreatedAt       int64
	ProtocolVersion int
	PoW             int
	PoWFirstContact int
	MostroVersion   string
	Event           nostr.Event
	FetchedAt       time.Time
}

// UpsertMostroInfo keeps the newer of the stored and the given info
// (higher created_at, then lower id); stored reports whether it was kept.
func (s *Store) UpsertMostroInfo(ctx context.Context, m MostroInfo) (stored bool, err error) {
	raw, err := json.Marshal(m.Event)
	if err != nil {
		return false, fmt.Errorf("encode info event: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO relaygw_mostro_info (pubkey, event_id, created_at, protocol_version, pow, pow_first_contact, mostro_version, event_json, fetched_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
ON CONFLICT (pubkey) DO UPDATE SET
  event_id = EXCLUDED.event_id, created_at = EXCLUDED.created_at, protocol_version = EXCLUDED.protocol_version,
  pow = EXCLUDED.pow, pow_first_contact = EXCLUDED.pow_first_contact, mostro_version = EXCLUDED.mostro_version,
  event_json = EXCLUDED.event_json, fetched_at = now()
WHERE relaygw_mostro_info.created_at < EXCLUDED.created_at
   OR (relaygw_mostro_info.created_at = EXCLUDED.created_at AND relaygw_mostro_info.event_id > EXCLUDED.event_id)
   OR relaygw_mostro_info.event_id = EXCLUDED.event_id`,
		m.Pubkey, m.EventID, m.CreatedAt, m.ProtocolVersion, m.PoW, m.PoWFirstContact, m.MostroVersion, raw)
	if err != nil {
		return false, fmt.Errorf("store mostro info: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// GetMostroInfo returns the stored info of a node, ok false when none.
func (s *Store) GetMostroInfo(ctx context.Context, pubkey string) (MostroInfo, bool, error) {
	var m MostroInfo
	var raw []byte
	err := s.pool.QueryRow(ctx, `
SELECT pubkey, event_id, created_at, protocol_version, pow, pow_first_contact, mostro_version, event_json, fetched_at
FROM relaygw_mostro_info WHERE pubkey = $1`, pubkey).Scan(&m.Pubkey, &m.EventID, &m.CreatedAt, &m.ProtocolVersion, &m.PoW, &m.PoWFirstContact, &m.MostroVersion, &raw, &m.FetchedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return MostroInfo{}, false, nil
	}
	if err != nil {
		return MostroInfo{}, false, fmt.Errorf("read mostro info: %w", err)
	}
	if err := json.Unmarshal(raw, &m.Event); err != nil {
		return MostroInfo{}, false, fmt.Errorf("decode mostro info event: %w", err)
	}
	return m, true, nil
}

// --- DM outbox ---

// DMRecord is one idempotency key's gift wrap.
type DMRecord struct {
	Key         string
	Recipient   string
	RequestMAC  string
	Event       nostr.Event
	Attempts    int
	DeliveredAt *time.Time
}

// InsertDMs records the gift wraps of many keys in one statement;
// inserted[i] is false when records[i]'s key already had one (or appears
// earlier in records): the caller then reads the stored record.
func (s *Store) InsertDMs(ctx context.Context, records []DMRecord) (inserted []bool, err error) {
	n := len(records)
	keys, recipients, macs, ids := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	raws := make([][]byte, 0, n)
	first := make(map[string]int, n)
	for i, r := range records {
		if _, dup := first[r.Key]; dup {
			continue
		}
		first[r.Key] = i
		raw, err := r.Event.MarshalJSON() // easyjson, no reflection
		if err != nil {
			return nil, fmt.Errorf("encode gift wrap: %w", err)
		}
		keys, recipients, macs = append(keys, r.Key), append(recipients, r.Recipient), append(macs, r.RequestMAC)
		ids, raws = append(ids, r.Event.ID), append(raws, raw)
	}
	rows, err := s.pool.Query(ctx, `
INSERT INTO relaygw_dm_outbox (idempotency_key, recipient, request_mac, event_id, event_json)
SELECT k, r, m, e, j FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) AS t(k, r, m, e, j)
ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key`, keys, recipients, macs, ids, raws)
	if err != nil {
		return nil, fmt.Errorf("store dms: %w", err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store dms: %w", err)
	}
	inserted = make([]bool, n)
	for _, k := range stored {
		inserted[first[k]] = true
	}
	return inserted, nil
}

// GetDM reads a key's record, ok false when unknown.
func (s *Store) GetDM(ctx context.Context, key string) (DMRecord, bool, error) {
	var r DMRecord
	var raw []byte
	err := s.pool.QueryRow(ctx, `
SELECT idempotency_key, recipient, request_mac, event_json, attempts, delivered_at
FROM relaygw_dm_outbox WHERE idempotency_key = $1`, key).Scan(&r.Key, &r.Recipient, &r.RequestMAC, &raw, &r.Attempts, &r.DeliveredAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return DMRecord{}, false, nil
	}
	if err != nil {
		return DMRecord{}, false, fmt.Errorf("read dm: %w", err)
	}
	if err := json.Unmarshal(raw, &r.Event); err != nil {
		return DMRecord{}, false, fmt.Errorf("decode gift wrap: %w", err)
	}
	return r, true, nil
}

// MarkDMAttempt counts a publish attempt and, when delivered, records the
// first delivery time.
func (s *Store) MarkDMAttempt(ctx context.Context, key string, delivered bool) error {
	_, err := s.pool.Exec(ctx, `
UPDATE relaygw_dm_outbox SET attempts = attempts + 1,
  delivered_at = CASE WHEN $2 AND delivered_at IS NULL THEN now() ELSE delivered_at END
WHERE idempotency_key = $1`, key, delivered)
	if err != nil {
		return fmt.Errorf("record dm attempt: %w", err)
	}
	return nil
}

// DMAttempt is one publish attempt to record.
type DMAttempt struct {
	Key       string
	Attempts  int
	Delivered bool
}

// MarkDMAttempts records many attempts in one statement.
func (s *Store) MarkDMAttempts(ctx context.Context, as []DMAttempt) error {
	keys := make([]string, len(as))
	ns := make([]int32, len(as))
	ds := make([]bool, len(as))
	for i, a := range as {
		keys[i], ns[i], ds[i] = a.Key, int32(a.Attempts), a.Delivered
	}
	_, err := s.pool.Exec(ctx, `
UPDATE relaygw_dm_outbox o SET attempts = o.attempts + v.n,
  delivered_at = CASE WHEN v.d AND o.delivered_at IS NULL THEN now() ELSE o.delivered_at END
FROM unnest($1::text[], $2::int[], $3::bool[]) AS v(k, n, d)
WHERE o.idempotency_key = v.k`, keys, ns, ds)
	if err != nil {
		return fmt.Errorf("record dm attempts: %w", err)
	}
	return nil
}
