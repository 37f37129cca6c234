package mediationsvc

import (
	"context"

	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoner"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/providers"
)

// HealthReasoning is the gRPC health name of the reasoning provider:
// SERVING while its last health check passed, NOT_SERVING otherwise
// (including whenever phase 3 is off).
const HealthReasoning = "serbero.mediationsvc.reasoning"

// The start-up log messages (the reference's, kept exact).
const (
	msgReasoningOff  = "Phase 3 mediation enabled but [reasoning].enabled = false; skipping bring-up (phases 1, 2 and 4 are unaffected)"
	msgBundleFailed  = "Phase 3 prompt bundle failed to load; mediation will stay disabled this run"
	msgBundleLoaded  = "Phase 3 prompt bundle loaded"
	msgBundleStore   = "Phase 3 prompt bundle could not be stored by hash; mediation will stay disabled this run"
	msgBuildFailed   = "Phase 3 reasoning provider could not be built; mediation will stay disabled this run"
	msgHealthFailed  = "Phase 3 reasoning health check failed; mediation disabled for this run (Phase 1/2 detection and notification continue unaffected)"
	msgHealthOK      = "reasoning provider health check ok"
	msgFullyUp       = "Phase 3 mediation is fully configured; engine task will be spawned"
	reasoningLogName = "reasoning"
)

// bringUp starts phase 3: bundle, provider, health. It returns nil (phase
// 3 off, logged at error) on any failure; nothing here stops the process.
func (s *Service) bringUp(ctx context.Context) *reasoner.Core {
	cfg := s.deps.Config
	if !cfg.MediationEnabled {
		s.log.Debug("phase 3 off: [mediation].enabled = false")
		return nil
	}
	if !cfg.Reasoning.Enabled {
		s.log.Warn(msgReasoningOff)
		return nil
	}
	b, err := bundle.Load(cfg.Prompts.paths())
	if err != nil {
		s.log.Error(msgBundleFailed, "error", err)
		return nil
	}
	s.log.Info(msgBundleLoaded, "prompt_bundle_id", b.ID, "policy_hash", b.PolicyHash)

	r := cfg.Reasoning
	log := s.log.With("component", reasoningLogName, "provider", r.Provider, "model", r.Model)
	p, err := providers.Build(providers.Settings{
		Name: r.Provider, Model: r.Model, APIBase: r.APIBase, APIKey: r.APIKey,
		RequestTimeoutSeconds: r.RequestTimeoutSeconds, FollowupRetryCount: r.FollowupRetryCount,
		HTTPClient: s.deps.HTTPClient, Clock: s.deps.Clock, Logger: log, Observer: s.metrics.Observer(r.Provider),
	})
	if err != nil {
		s.log.Error(msgBuildFailed, "provider", r.Provider, "error", err)
		return nil
	}
	core, err := reasoner.New(reasoner.Options{
		Provider: p, ProviderName: r.Provider, Model: r.Model, Bundle: b, Store: s.store,
		Metrics: s.metrics, Logger: log, Clock: s.deps.Clock, HealthTTL: r.HealthTTL, OnHealth: s.setHealth,
	})
	if err != nil {
		s.log.Error(msgBuildFailed, "provider", r.Provider, "error", err)
		return nil
	}
	if err := core.CheckHealth(ctx); err != nil {
		s.log.Error(msgHealthFailed, "provider", r.Provider, "model", r.Model, "error", err)
		s.turnOff()
		return nil
	}
	s.log.Info(msgHealthOK, "provider", r.Provider, "model", r.Model)
	if err := core.SaveBundle(ctx); err != nil {
		s.log.Error(msgBundleStore, "policy_hash", b.PolicyHash, "error", err)
		s.turnOff()
		return nil
	}
	s.log.Info(msgFullyUp, "prompt_bundle_id", b.ID, "policy_hash", b.PolicyHash)
	return core
}

// setHealth publishes the reasoning health status (NOT_SERVING for good
// once phase 3 is off for the run).
func (s *Service) setHealth(serving bool) {
	if s.deps.SetHealth == nil {
		return
	}
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if s.off {
		serving = false
	}
	s.deps.SetHealth(HealthReasoning, serving)
}

// turnOff keeps the reasoning status NOT_SERVING for the rest of the run.
func (s *Service) turnOff() {
	s.healthMu.Lock()
	s.off = true
	s.healthMu.Unlock()
	s.setHealth(false)
}
