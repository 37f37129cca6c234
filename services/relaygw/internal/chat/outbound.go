package chat

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/serbero/serbero/pkg/apperr"
	mchat "github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
	"github.com/serbero/serbero/services/relaygw/internal/reason"
	"github.com/serbero/serbero/services/relaygw/internal/store"
)

// SendResult is the outcome of Send.
type SendResult struct {
	InnerID        string
	InnerCreatedAt int64
	V2ID           string
	V1ID           string
	Delivered      bool
	Duplicate      bool
	Results        []pool.Result
}

// Send sends one line to a party, at most once per idempotency key.
func (m *Manager) Send(ctx context.Context, party, text, key string) (SendResult, error) {
	party, err := normalizeParty(party)
	if err != nil {
		return SendResult{}, err
	}
	if strings.TrimSpace(text) == "" {
		return SendResult{}, reason.With(apperr.InvalidArgument("text must not be empty"), reason.InvalidBody)
	}
	if err := reason.CheckKey(key); err != nil {
		return SendResult{}, err
	}
	mac := m.o.Identity.Fingerprint("chat", party, text)
	log := m.o.Logger.With("idempotency_key", key, "party_trade_pubkey", party)
	if rec, ok, err := m.o.Store.GetChatSend(ctx, key); err != nil {
		return SendResult{}, reason.With(apperr.Wrap(apperr.KindUnavailable, err, "database unavailable"), reason.StoreUnavailable)
	} else if ok {
		return m.again(ctx, log, rec, party, mac)
	}
	ck, err := mchat.Derive(m.o.Identity.Keys(), party)
	if err != nil {
		return SendResult{}, reason.With(apperr.InvalidArgument("party_trade_pubkey cannot form a chat channel with Serbero's key"), reason.InvalidRecipient)
	}
	now := m.o.Now()
	outer, inner, err := mchat.BuildV2(ck, m.o.Identity.Keys(), text, now)
	if err != nil {
		return SendResult{}, fmt.Errorf("build chat line: %w", err)
	}
	rec := store.ChatSend{Key: key, Party: party, RequestMAC: mac, InnerID: inner.ID, InnerCreatedAt: int64(inner.CreatedAt), V2: outer}
	if m.o.SendLegacy {
		v1, err := mchat.WrapV1(ck, inner, now)
		if err != nil {
			return SendResult{}, fmt.Errorf("build legacy chat line: %w", err)
		}
		rec.V1 = &v1
	}
	inserted, err := m.o.Store.InsertChatSend(ctx, rec)
	if err != nil {
		return SendResult{}, reason.With(apperr.Wrap(apperr.KindUnavailable, err, "database unavailable"), reason.StoreUnavailable)
	}
	if !inserted {
		got, ok, err := m.o.Store.GetChatSend(ctx, key)
		if err != nil || !ok {
			return SendResult{}, reason.With(apperr.Wrap(apperr.KindUnavailable, err, "database unavailable"), reason.StoreUnavailable)
		}
		return m.again(ctx, log, got, party, mac)
	}
	res := m.publish(ctx, log, rec)
	return res, nil
}

func (m *Manager) again(ctx context.Context, log *slog.Logger, rec store.ChatSend, party, mac string) (SendResult, error) {
	if rec.Party != party || rec.RequestMAC != mac {
		return SendResult{}, reason.With(apperr.InvalidArgument("idempotency_key was already used for a different party or text"), reason.IdempotencyConflict)
	}
	if rec.DeliveredAt != nil {
		r := SendResult{InnerID: rec.InnerID, InnerCreatedAt: rec.InnerCreatedAt, V2ID: rec.V2.ID, Delivered: true, Duplicate: true}
		if rec.V1 != nil {
			r.V1ID = rec.V1.ID
		}
		return r, nil
	}
	r := m.publish(ctx, log, rec)
	r.Duplicate = true
	return r, nil
}

func (m *Manager) publish(ctx context.Context, log *slog.Logger, rec store.ChatSend) SendResult {
	r := SendResult{InnerID: rec.InnerID, InnerCreatedAt: rec.InnerCreatedAt, V2ID: rec.V2.ID}
	r.Results = m.o.Pool.Publish(ctx, rec.V2)
	if rec.V1 != nil {
		r.V1ID = rec.V1.ID
		r.Results = append(r.Results, m.o.Pool.Publish(ctx, *rec.V1)...)
	}
	r.Delivered = pool.AnyAccepted(r.Results)
	if err := m.o.Store.MarkChatAttempt(ctx, rec.Key, r.Delivered); err != nil {
		log.Warn("chat line sent but its delivery could not be recorded", "inner_event_id", rec.InnerID, "error", err)
	}
	log.Info("chat line sent", "inner_event_id", rec.InnerID, "v2_event_id", r.V2ID, "v1_event_id", r.V1ID, "delivered", r.Delivered)
	return r
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
