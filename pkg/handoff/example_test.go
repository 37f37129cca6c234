package handoff_test

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/serbero/serbero/pkg/handoff"
)

// The producer (mediationsvc's escalation::recommend) enqueues in the
// transaction that records its escalation_recommended row, with the same
// occurred_at; the handoff exists, and escalationsvc hears of it, only if
// that transaction commits.
func ExampleEnqueue() {
	ctx := context.Background()
	var pool *pgxpool.Pool // the service's pool
	now := time.Now().Unix()
	_ = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// ... flip the session to escalation_recommended and insert the
		// escalation_recommended audit row (occurred_at = now) ...
		_, err := handoff.Enqueue(ctx, tx, handoff.Package{
			DisputeID:      "d-1",
			SessionID:      "s-1", // empty for a dispute-scoped escalation
			Trigger:        "conflicting_claims",
			EvidenceRefs:   []string{"inner-event-id"},
			PromptBundleID: "phase3-default",
			PolicyHash:     "hash-1",
			RationaleRefs:  []string{"9f86d081884c"},
			AssembledAt:    now,
		}, handoff.Meta{OccurredAt: now})
		return err
	})
}

// A consumer claims due handoffs and settles each with exactly one
// transition, committed with whatever it records.
func ExampleClaim() {
	ctx := context.Background()
	var pool *pgxpool.Pool
	claimed, _ := handoff.Claim(ctx, pool, handoff.MaxClaimBatch, "replica-1", time.Minute)
	for _, h := range claimed {
		_ = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			// ... record the dispatch in tx ...
			return handoff.Complete(ctx, tx, h.Lease(), handoff.OutcomeDispatched)
		})
	}
}
