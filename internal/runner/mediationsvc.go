package runner

import (
	"time"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/service"
	"github.com/serbero/serbero/services/mediationsvc"
)

func (e *env) mediationsvc() (service.Service, error) {
	rg, err := e.peers.conn(config.TargetMediationsvc, config.TargetRelaygw, e.cfg.Services.Relaygw)
	if err != nil {
		return nil, err
	}
	auth, err := e.peers.conn(config.TargetMediationsvc, config.TargetAuthsvc, e.cfg.Services.Authsvc)
	if err != nil {
		return nil, err
	}
	intake, err := e.peers.conn(config.TargetMediationsvc, config.TargetIntakesvc, e.cfg.Services.Intakesvc)
	if err != nil {
		return nil, err
	}
	return mediationsvc.New(mediationsvc.Deps{
		Authsvc:    authsvcv1.NewAuthServiceClient(auth),
		Config:     mediationConfig(e.cfg),
		Intakesvc:  intakesvcv1.NewIntakeServiceClient(intake),
		Logger:     e.logger(config.TargetMediationsvc),
		Pool:       e.pool,
		Registerer: e.reg,
		Relaygw:    relaygwv1.NewRelayGatewayServiceClient(rg),
		SetHealth:  e.setHealth,
		Stopping:   e.stopping,
	})
}

// mediationConfig maps the [mediation], [reasoning] and [prompts]
// sections to mediationsvc's Config.
func mediationConfig(c *config.Config) mediationsvc.Config {
	return mediationsvc.Config{
		MediationEnabled:     c.Mediation.Enabled,
		MaxRounds:            c.Mediation.MaxRounds,
		PartyResponseTimeout: time.Duration(c.Mediation.PartyResponseTimeoutSeconds) * time.Second,
		Reasoning: mediationsvc.ReasoningConfig{
			Enabled:               c.Reasoning.Enabled,
			Provider:              c.Reasoning.Provider,
			Model:                 c.Reasoning.Model,
			APIBase:               c.Reasoning.APIBase,
			APIKeyEnv:             c.Reasoning.APIKeyEnv,
			APIKey:                c.Reasoning.APIKey,
			RequestTimeoutSeconds: c.Reasoning.RequestTimeoutSeconds,
			FollowupRetryCount:    c.Reasoning.FollowupRetryCount,
		},
		Solvers:           solverPubkeys(c),
		EscalationEnabled: c.Escalation.Enabled,
		Engine: mediationsvc.EngineConfig{
			Tick:           time.Duration(c.Mediationsvc.TickSeconds) * time.Second,
			SessionLease:   time.Duration(c.Mediationsvc.SessionLeaseSeconds) * time.Second,
			TakeTimeout:    time.Duration(c.Mediationsvc.TakeTimeoutSeconds) * time.Second,
			StartRetryBase: time.Duration(c.Mediationsvc.StartRetryBaseSeconds) * time.Second,
			StartRetryMax:  time.Duration(c.Mediationsvc.StartRetryMaxSeconds) * time.Second,
		},
		Prompts: mediationsvc.PromptPaths{
			System:           c.Prompts.SystemInstructionsPath,
			Classification:   c.Prompts.ClassificationPolicyPath,
			EscalationPolicy: c.Prompts.EscalationPolicyPath,
			MediationStyle:   c.Prompts.MediationStylePath,
			MessageTemplates: c.Prompts.MessageTemplatesPath,
		},
	}
}

// solverPubkeys lists the configured solvers' pubkeys, in config order.
func solverPubkeys(c *config.Config) []string {
	out := make([]string, 0, len(c.Solvers))
	for _, s := range c.Solvers {
		out = append(out, s.Pubkey)
	}
	return out
}
