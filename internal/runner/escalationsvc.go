package runner

import (
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/service"
	"github.com/serbero/serbero/services/escalationsvc"
)

func (e *env) escalationsvc() (service.Service, error) {
	rg, err := e.peers.conn(config.TargetEscalationsvc, config.TargetRelaygw, e.cfg.Services.Relaygw)
	if err != nil {
		return nil, err
	}
	return escalationsvc.New(escalationsvc.Deps{
		Config:     e.cfg,
		Logger:     e.logger(config.TargetEscalationsvc),
		Pool:       e.pool,
		Registerer: e.reg,
		Relaygw:    relaygwv1.NewRelayGatewayServiceClient(rg),
		Stopping:   e.stopping,
	})
}
