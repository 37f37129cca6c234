package runner

import (
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
		Config:     e.cfg,
		Logger:     e.logger(config.TargetIntakesvc),
		Pool:       e.pool,
		Registerer: e.reg,
		Relaygw:    relaygwv1.NewRelayGatewayServiceClient(rg),
		Stopping:   e.stopping,
	})
}
