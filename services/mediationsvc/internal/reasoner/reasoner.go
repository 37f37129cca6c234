// Package reasoner is mediation's decision core, the one entry point the
// mediation engine calls: classify (the provider call, then the policy's
// decision), summarize (the call, then the summary check), the rationale
// store writes with their provenance, the prompt bundle pinned by hash, and
// the provider's health, checked at start and cached. It holds no session
// state and sends nothing. See docs/mediation.md#reasoning.
package reasoner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
	"github.com/serbero/serbero/services/mediationsvc/internal/policy"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// DefaultHealthTTL is how long a health result is reused.
const DefaultHealthTTL = 30 * time.Second

// ErrBundleMissing is returned by BundleByHash when the pinned bundle is
// neither the loaded one nor stored: the policy_bundle_missing case.
var ErrBundleMissing = errors.New("pinned prompt bundle missing")

// Options configure a Core.
type Options struct {
	// Provider is the reasoning provider (providers.Build).
	Provider reasoning.Provider
	// ProviderName and Model are [reasoning].provider and .model, recorded
	// with every rationale and metric.
	ProviderName, Model string
	// Bundle is the bundle loaded at start.
	Bundle bundle.Bundle
	// Store is mediationsvc's store.
	Store *store.Store
	// Metrics records calls, health and decisions (nil: none).
	Metrics *reasoning.Metrics
	// Logger is the component's logger.
	Logger *slog.Logger
	// Clock gives the time of rationales and the health cache (nil: real).
	Clock clockwork.Clock
	// HealthTTL is how long a health result is reused (0: 30 s).
	HealthTTL time.Duration
	// OnHealth is told every health result (for gRPC health); may be nil.
	OnHealth func(healthy bool)
}

// Core is the decision core. It is safe for concurrent use.
type Core struct {
	o        Options
	provider reasoning.Provider

	healthMu   sync.Mutex
	healthAt   time.Time
	healthErr  error
	healthSeen bool
}

// New returns a Core. The provider is instrumented here: callers pass the
// bare one.
func New(o Options) (*Core, error) {
	if o.Provider == nil || o.Store == nil || o.Logger == nil {
		return nil, errors.New("reasoner: Provider, Store and Logger are required")
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.HealthTTL <= 0 {
		o.HealthTTL = DefaultHealthTTL
	}
	return &Core{o: o, provider: reasoning.Instrument(o.Provider, o.Metrics, o.ProviderName)}, nil
}

// ProviderName is [reasoning].provider (for reasoning_call_failed).
func (c *Core) ProviderName() string { return c.o.ProviderName }

// Model is [reasoning].model (for reasoning_call_failed).
func (c *Core) Model() string { return c.o.Model }

// Bundle is the bundle loaded at start: the one new sessions pin.
func (c *Core) Bundle() bundle.Bundle { return c.o.Bundle }

// SaveBundle stores the loaded bundle by its hash (at start).
func (c *Core) SaveBundle(ctx context.Context) error {
	b := c.o.Bundle
	return c.o.Store.SaveBundle(ctx, store.PromptBundle{
		PolicyHash: b.PolicyHash, PromptBundleID: b.ID, System: b.System, Classification: b.Classification,
		Escalation: b.Escalation, MediationStyle: b.MediationStyle, MessageTemplates: b.MessageTemplates,
	}, c.o.Clock.Now().Unix())
}

// BundleByHash returns the bundle a session pinned: the loaded one, or one
// stored by an earlier run. A bundle found nowhere (or whose stored texts
// no longer hash to it) is ErrBundleMissing.
func (c *Core) BundleByHash(ctx context.Context, policyHash string) (bundle.Bundle, error) {
	if policyHash == c.o.Bundle.PolicyHash {
		return c.o.Bundle, nil
	}
	sb, err := c.o.Store.BundleByHash(ctx, policyHash)
	if errors.Is(err, store.ErrNotFound) {
		return bundle.Bundle{}, fmt.Errorf("bundle %s: %w", policyHash, ErrBundleMissing)
	}
	if err != nil {
		return bundle.Bundle{}, err
	}
	b := bundle.New(sb.System, sb.Classification, sb.Escalation, sb.MediationStyle, sb.MessageTemplates)
	b.ID = sb.PromptBundleID
	if b.PolicyHash != policyHash {
		return bundle.Bundle{}, fmt.Errorf("bundle %s: stored texts hash to %s: %w", policyHash, b.PolicyHash, ErrBundleMissing)
	}
	return b, nil
}

// Health returns the provider's health, checking it at most once per TTL
// (not a live ping per dispute). A nil error means healthy.
func (c *Core) Health(ctx context.Context) error {
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	if c.healthSeen && c.o.Clock.Since(c.healthAt) < c.o.HealthTTL {
		return c.healthErr
	}
	return c.checkLocked(ctx)
}

// CheckHealth checks the provider now, whatever the cache holds (the
// start-up check).
func (c *Core) CheckHealth(ctx context.Context) error {
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	return c.checkLocked(ctx)
}

func (c *Core) checkLocked(ctx context.Context) error {
	err := c.provider.HealthCheck(ctx)
	c.healthAt, c.healthErr, c.healthSeen = c.o.Clock.Now(), err, true
	c.o.Metrics.SetHealthy(c.o.ProviderName, err == nil)
	if c.o.OnHealth != nil {
		c.o.OnHealth(err == nil)
	}
	return err
}

// ClassifyInput is one classification.
type ClassifyInput struct {
	// DisputeID is the dispute (required).
	DisputeID string
	// SessionID is the session; "" on the opening call (the dispute id is
	// then sent as session_id).
	SessionID string
	// InitiatorRole is buyer or seller.
	InitiatorRole string
	// Bundle is the pinned bundle; zero means the loaded one.
	Bundle bundle.Bundle
	// Transcript is the session's messages, ascending (empty at open).
	Transcript []reasoning.TranscriptLine
	// RoundCount is the session's round count.
	RoundCount int64
	// Round is policy.Initial() at open, policy.MidSession(n) after.
	Round policy.Round
}

// Classification is a classification and the policy's decision on it.
type Classification struct {
	// Response is the model's parsed answer (Rationale included).
	Response reasoning.ClassificationResponse
	// Decision is what mediation may do.
	Decision policy.Decision
	// Bundle is the bundle the call used.
	Bundle bundle.Bundle
}

// Classify calls the provider and applies the policy. A failed call is a
// *reasoning.Error (reasoning.CategoryOf gives the reasoning_call_failed
// category) and no decision: the caller escalates with
// FailedDecision or retries, as its path requires.
func (c *Core) Classify(ctx context.Context, in ClassifyInput) (Classification, error) {
	if in.DisputeID == "" {
		return Classification{}, errors.New("classify: dispute id is required")
	}
	b := in.Bundle
	if b.PolicyHash == "" {
		b = c.o.Bundle
	}
	sessionID := in.SessionID
	if sessionID == "" {
		sessionID = in.DisputeID
	}
	resp, err := c.provider.Classify(ctx, reasoning.ClassificationRequest{
		SessionID: sessionID, DisputeID: in.DisputeID, InitiatorRole: in.InitiatorRole, Bundle: b,
		Transcript: in.Transcript, Context: reasoning.Context{RoundCount: in.RoundCount},
	})
	if err != nil {
		c.o.Logger.Warn("reasoning classify failed", "dispute_id", in.DisputeID, "session_id", in.SessionID,
			"error_category", string(reasoning.CategoryOf(err)), "error", err)
		return Classification{}, err
	}
	d := policy.Decide(resp, in.Round)
	c.o.Metrics.Decision(string(d.Outcome), string(d.Trigger))
	c.o.Logger.Info("classification produced", "dispute_id", in.DisputeID, "session_id", in.SessionID,
		"classification", string(resp.Classification), "confidence", resp.Confidence,
		"rationale_id", resp.Rationale.ID(), "rationale", resp.Rationale,
		"decision", string(d.Outcome), "trigger", string(d.Trigger), "rule", d.Rule)
	return Classification{Response: resp, Decision: d, Bundle: b}, nil
}

// FailedDecision is the decision after a failed classification:
// escalate reasoning_unavailable.
func FailedDecision() policy.Decision {
	return policy.Decision{Outcome: policy.OutcomeEscalate, Trigger: policy.TriggerReasoningUnavailable, Rule: "provider_error"}
}

// SummarizeInput is one summary.
type SummarizeInput struct {
	// DisputeID and SessionID identify the session (both required).
	DisputeID, SessionID string
	// Bundle is the pinned bundle; zero means the loaded one.
	Bundle bundle.Bundle
	// Transcript is the session's messages, ascending.
	Transcript []reasoning.TranscriptLine
	// Classification and Confidence led to the summary.
	Classification reasoning.Label
	// Confidence is the classification's confidence.
	Confidence float64
}

// Summary is a summary and the policy's check of it.
type Summary struct {
	// Response is the parsed summary (Rationale included).
	Response reasoning.SummaryResponse
	// Rejection is non-nil when the summary must not be delivered: escalate
	// with its trigger and reason.
	Rejection *policy.SummaryCheck
	// Bundle is the bundle the call used.
	Bundle bundle.Bundle
}

// Summarize calls the provider and checks the summary. A failed call is a
// *reasoning.Error (the summary path escalates reasoning_unavailable).
func (c *Core) Summarize(ctx context.Context, in SummarizeInput) (Summary, error) {
	if in.DisputeID == "" || in.SessionID == "" {
		return Summary{}, errors.New("summarize: dispute id and session id are required")
	}
	b := in.Bundle
	if b.PolicyHash == "" {
		b = c.o.Bundle
	}
	resp, err := c.provider.Summarize(ctx, reasoning.SummaryRequest{
		SessionID: in.SessionID, DisputeID: in.DisputeID, Bundle: b, Transcript: in.Transcript,
		Classification: in.Classification, Confidence: in.Confidence,
	})
	if err != nil {
		c.o.Logger.Warn("reasoning summarize failed", "dispute_id", in.DisputeID, "session_id", in.SessionID,
			"error_category", string(reasoning.CategoryOf(err)), "error", err)
		return Summary{}, err
	}
	check := policy.CheckSummary(resp)
	outcome, trigger := "summary_accepted", ""
	if check != nil {
		outcome, trigger = string(policy.OutcomeEscalate), string(check.Trigger)
	}
	c.o.Metrics.Decision(outcome, trigger)
	c.o.Logger.Info("summary produced", "dispute_id", in.DisputeID, "session_id", in.SessionID,
		"summary_bytes", len(resp.SummaryText), "rationale_id", resp.Rationale.ID(), "rationale", resp.Rationale,
		"rejected", check != nil, "trigger", trigger)
	return Summary{Response: resp, Rejection: check, Bundle: b}, nil
}

// Scope says where a rationale belongs.
type Scope struct {
	// DisputeID is the dispute (required).
	DisputeID string
	// SessionID is the session; "" for a dispute-scoped rationale (the
	// opening classification, bound later with BindRationale).
	SessionID string
	// Operation is store.OperationClassify or store.OperationSummarize.
	Operation string
	// Bundle is the bundle the call used (Classification.Bundle,
	// Summary.Bundle).
	Bundle bundle.Bundle
	// Key is an optional idempotency key (e.g. derived from the audit
	// event it goes with); "" derives one from the other fields.
	Key string
}

// RecordRationale stores the rationale (on db: a pool or the caller's
// transaction) with its provenance: provider, model, bundle id and hash,
// dispute and session. The returned occurrence's RationaleID is what
// events, handoffs and logs carry.
func (c *Core) RecordRationale(ctx context.Context, db store.DB, r reasoning.Rationale, s Scope) (store.RationaleOccurrence, error) {
	b := s.Bundle
	if b.PolicyHash == "" {
		b = c.o.Bundle
	}
	return c.o.Store.RecordRationale(ctx, db, r.Reveal(), store.RationaleOccurrence{
		DisputeID: s.DisputeID, SessionID: s.SessionID, Operation: s.Operation,
		Provider: c.o.ProviderName, Model: c.o.Model, PromptBundleID: b.ID, PolicyHash: b.PolicyHash,
		GeneratedAt: c.o.Clock.Now().Unix(), Key: s.Key,
	})
}

// BindRationale binds a dispute-scoped occurrence to the session it
// opened (idempotent).
func (c *Core) BindRationale(ctx context.Context, db store.DB, occ store.RationaleOccurrence, sessionID string) error {
	return c.o.Store.BindRationale(ctx, db, occ.ID, occ.DisputeID, sessionID)
}
