package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PromptBundle is one stored prompt bundle (a row of
// reasoning_prompt_bundles). The store keeps the texts; the bundle
// package checks that they still hash to PolicyHash.
type PromptBundle struct {
	// PolicyHash keys the bundle.
	PolicyHash string
	// PromptBundleID is the bundle id.
	PromptBundleID string
	// The five texts.
	System, Classification, Escalation, MediationStyle, MessageTemplates string
}

// SaveBundle stores b if its hash is new, else records that it was loaded
// again. Idempotent.
func (s *Store) SaveBundle(ctx context.Context, b PromptBundle, now int64) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO reasoning_prompt_bundles (policy_hash, prompt_bundle_id, system_text, classification_text, escalation_text,
                                      mediation_style_text, message_templates_text, first_loaded_at, last_loaded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
ON CONFLICT (policy_hash) DO UPDATE SET last_loaded_at = GREATEST(reasoning_prompt_bundles.last_loaded_at, EXCLUDED.last_loaded_at)`,
		b.PolicyHash, b.PromptBundleID, b.System, b.Classification, b.Escalation, b.MediationStyle, b.MessageTemplates, now)
	if err != nil {
		return fmt.Errorf("save prompt bundle: %w", err)
	}
	return nil
}

// BundleByHash returns the stored bundle with that policy_hash, or
// ErrNotFound.
func (s *Store) BundleByHash(ctx context.Context, policyHash string) (PromptBundle, error) {
	var b PromptBundle
	err := s.pool.QueryRow(ctx, `
SELECT policy_hash, prompt_bundle_id, system_text, classification_text, escalation_text, mediation_style_text, message_templates_text
FROM reasoning_prompt_bundles WHERE policy_hash = $1`, policyHash).Scan(
		&b.PolicyHash, &b.PromptBundleID, &b.System, &b.Classification, &b.Escalation, &b.MediationStyle, &b.MessageTemplates)
	if errors.Is(err, pgx.ErrNoRows) {
		return PromptBundle{}, ErrNotFound
	}
	if err != nil {
		return PromptBundle{}, fmt.Errorf("prompt bundle by hash: %w", err)
	}
	return b, nil
}
