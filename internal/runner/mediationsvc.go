package runner

import (
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
		Config:     e.cfg,
		Intakesvc:  intakesvcv1.NewIntakeServiceClient(intake),
		Logger:     e.logger(config.TargetMediationsvc),
		Pool:       e.pool,
		Registerer: e.reg,
		Relaygw:    relaygwv1.NewRelayGatewayServiceClient(rg),
		Stopping:   e.stopping,
	})
}
