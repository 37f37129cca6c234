package runner

import (
	"time"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/service"
	"github.com/serbero/serbero/services/authsvc"
)

func (e *env) authsvc() (service.Service, error) {
	rg, err := e.peers.conn(config.TargetAuthsvc, config.TargetRelaygw, e.cfg.Services.Relaygw)
	if err != nil {
		return nil, err
	}
	return authsvc.New(authsvc.Deps{
		Config:     authsvcConfig(e.cfg),
		Logger:     e.logger(config.TargetAuthsvc),
		Pool:       e.pool,
		Registerer: e.reg,
		Relaygw:    relaygwv1.NewRelayGatewayServiceClient(rg),
	})
}

// authsvcConfig maps config.toml to authsvc's configuration: the
// [mediation].solver_auth_retry_* keys (see docs/authorization.md#the-numbers).
func authsvcConfig(c *config.Config) authsvc.Config {
	secs := func(n int64) time.Duration { return time.Duration(n) * time.Second }
	m := c.Mediation
	return authsvc.Config{
		RetryInitial:     secs(m.SolverAuthRetryInitialSeconds),
		RetryMaxInterval: secs(m.SolverAuthRetryMaxIntervalSeconds),
		RetryMaxTotal:    secs(m.SolverAuthRetryMaxTotalSeconds),
		RetryMaxAttempts: int(m.SolverAuthRetryMaxAttempts),
	}
}
