package runner

import (
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/service"
	"github.com/serbero/serbero/services/relaygw"
)

func (e *env) relaygw() (service.Service, error) {
	return relaygw.New(relaygw.Deps{
		Config:     e.cfg,
		Logger:     e.logger(config.TargetRelaygw),
		Pool:       e.pool,
		PrivateKey: e.loaded.PrivateKey,
		Registerer: e.reg,
		Stopping:   e.stopping,
		Dev:        e.dev,
	})
}
