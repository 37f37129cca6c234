package runner

import (
	"time"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/service"
	"github.com/serbero/serbero/services/relaygw"
)

func (e *env) relaygw() (service.Service, error) {
	return relaygw.New(relaygw.Deps{
		Config:     relaygwConfig(e.cfg),
		Logger:     e.logger(config.TargetRelaygw),
		Pool:       e.pool,
		PrivateKey: e.loaded.PrivateKey,
		Registerer: e.reg,
		Stopping:   e.stopping,
		Dev:        e.dev,
	})
}

// relaygwConfig maps the configuration file onto relaygw's Config: the one
// place where relaygw's keys are read.
func relaygwConfig(c *config.Config) relaygw.Config {
	seconds := func(n int64) time.Duration { return time.Duration(n) * time.Second }
	r := c.Relaygw
	out := relaygw.DefaultConfig()
	out.MostroPubkey = c.Mostro.Pubkey
	out.Relays = c.RelayURLs()
	out.DevRelayListen = r.DevRelayListen
	out.GiftWrapLookback = seconds(r.GiftWrapLookbackSeconds)
	out.PublishTimeout = seconds(r.PublishTimeoutSeconds)
	out.ReconnectMaxBackoff = seconds(r.ReconnectMaxBackoffSeconds)
	out.ResubscribeMargin = seconds(r.ResubscribeMarginSeconds)
	out.DisputeBackfill = seconds(r.DisputeBackfillSeconds)
	out.SendLegacyChat = c.Chat.SendLegacyForm
	out.Retention.Keep = time.Duration(r.RetentionDays) * 24 * time.Hour
	out.Retention.Interval = seconds(r.RetentionIntervalSeconds)
	return out
}
