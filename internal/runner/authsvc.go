package runner

import (
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
		Config:     e.cfg,
		Logger:     e.logger(config.TargetAuthsvc),
		Pool:       e.pool,
		Registerer: e.reg,
		Relaygw:    relaygwv1.NewRelayGatewayServiceClient(rg),
		Stopping:   e.stopping,
	})
}
