package runner

import (
	"time"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/service"
	"github.com/serbero/serbero/services/intakesvc"
)

func (e *env) intakesvc() (service.Service, error) {
	rg, err := e.peers.conn(config.TargetIntakesvc, config.TargetRelaygw, e.cfg.Services.Relaygw)
	if err != nil {
		return nil, err
	}
	return intakesvc.New(intakesvc.Deps{
		Config:     intakesvcConfig(e.cfg),
		Logger:     e.logger(config.TargetIntakesvc),
		Pool:       e.pool,
		Registerer: e.reg,
		Relaygw:    relaygwv1.NewRelayGatewayServiceClient(rg),
	})
}

// intakesvcConfig maps the configuration file to intakesvc's Config: the
// one place that knows which keys intakesvc reads ([mostro].pubkey,
// [[solvers]], [timeouts], [intakesvc]).
func intakesvcConfig(c *config.Config) intakesvc.Config {
	out := intakesvc.DefaultConfig()
	out.MostroPubkey = c.Mostro.Pubkey
	out.Solvers = make([]string, len(c.Solvers))
	for i, s := range c.Solvers {
		out.Solvers[i] = s.Pubkey
	}
	out.RenotifyAfter = c.Timeouts.Renotification()
	out.RenotifyEvery = c.Timeouts.RenotificationCheckInterval()
	out.Retention = time.Duration(c.Intakesvc.RetentionDays) * 24 * time.Hour
	out.RetentionInterval = time.Duration(c.Intakesvc.RetentionIntervalSeconds) * time.Second
	return out
}
