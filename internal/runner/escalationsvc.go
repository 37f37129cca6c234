package runner

import (
	"time"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/service"
	"github.com/serbero/serbero/services/escalationsvc"
)

// escalationsvcConfig maps the [escalation] section and [[solvers]] to
// escalationsvc's Config.
func escalationsvcConfig(c *config.Config) escalationsvc.Config {
	return escalationsvc.Config{
		Enabled:              c.Escalation.Enabled,
		DispatchInterval:     time.Duration(c.Escalation.DispatchIntervalSeconds) * time.Second,
		ClaimTimeout:         time.Duration(c.Escalation.ClaimTimeoutSeconds) * time.Second,
		FallbackToAllSolvers: c.Escalation.FallbackToAllSolvers,
		Solvers:              c.Solvers,
	}
}

func (e *env) escalationsvc() (service.Service, error) {
	rg, err := e.peers.conn(config.TargetEscalationsvc, config.TargetRelaygw, e.cfg.Services.Relaygw)
	if err != nil {
		return nil, err
	}
	intake, err := e.peers.conn(config.TargetEscalationsvc, config.TargetIntakesvc, e.cfg.Services.Intakesvc)
	if err != nil {
		return nil, err
	}
	return escalationsvc.New(escalationsvc.Deps{
		Config:     escalationsvcConfig(e.cfg),
		Logger:     e.logger(config.TargetEscalationsvc),
		Pool:       e.pool,
		Registerer: e.reg,
		Relaygw:    relaygwv1.NewRelayGatewayServiceClient(rg),
		Intakesvc:  intakesvcv1.NewIntakeServiceClient(intake),
	})
}
