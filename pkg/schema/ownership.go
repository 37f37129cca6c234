package schema

import (
	"slices"
	"strings"
)

// Owner is who may name a database object in SQL: a service (only its
// internal/store) or a contract package of pkg (see
// docs/architecture.md#who-owns-which-table).
type Owner string

// The owners.
const (
	OwnerRelaygw       Owner = "relaygw"
	OwnerIntakesvc     Owner = "intakesvc"
	OwnerAuthsvc       Owner = "authsvc"
	OwnerMediationsvc  Owner = "mediationsvc"
	OwnerEscalationsvc Owner = "escalationsvc"
	// OwnerHandoff is the contract package of the handoff queue.
	OwnerHandoff Owner = "pkg/handoff"
	// OwnerAudit is the contract package of the audit trail.
	OwnerAudit Owner = "pkg/audit"
	// OwnerNotiflog is the contract package of the solver-notification log.
	OwnerNotiflog Owner = "pkg/notiflog"
	// OwnerMigrations is pkg/pgdb, which applies and reads the migrations.
	OwnerMigrations Owner = "pkg/pgdb"
)

// IsContract reports whether o is a contract package (shared by design:
// several services use the table, only through the package's API).
func (o Owner) IsContract() bool {
	return o == OwnerHandoff || o == OwnerAudit || o == OwnerNotiflog
}

// Object is one table or sequence and its owner.
type Object struct {
	// Name is the object's name.
	Name string
	// Owner is the one owner.
	Owner Owner
	// Via says who else uses it and through what (empty: nobody else).
	Via string
}

// Prefixes maps the name prefix of each service's tables to the service:
// a table that is not grandfathered must start with its owner's prefix.
// Reference tables keep the reference daemon's names (grandfathered).
func Prefixes() map[string]Owner {
	return map[string]Owner{
		"relaygw_":    OwnerRelaygw,
		"intake_":     OwnerIntakesvc,
		"authsvc_":    OwnerAuthsvc,
		"mediation_":  OwnerMediationsvc,
		"reasoning_":  OwnerMediationsvc,
		"escalation_": OwnerEscalationsvc,
	}
}

// Grandfathered are the objects whose names do not follow the prefix rule
// (the reference daemon's tables, and the few named before the rule), and
// the contract tables, whose owner is a package. Every other object gets
// its owner from its prefix.
func Grandfathered() []Object {
	return []Object{
		{Name: "disputes", Owner: OwnerIntakesvc, Via: "escalationsvc and mediationsvc read it over intakesvc's gRPC API (GetDispute, WatchDisputes)"},
		{Name: "dispute_state_transitions", Owner: OwnerIntakesvc},
		{Name: "dispute_changes", Owner: OwnerIntakesvc, Via: "the WatchDisputes stream"},
		{Name: "notifications", Owner: OwnerNotiflog, Via: "written by intakesvc, mediationsvc and escalationsvc, read by intakesvc (GetDispute), through pkg/notiflog"},
		{Name: "mediation_events", Owner: OwnerAudit, Via: "written by mediationsvc, escalationsvc, authsvc and pkg/handoff, read by mediationsvc and escalationsvc, through pkg/audit"},
		{Name: "handoffs", Owner: OwnerHandoff, Via: "enqueued by mediationsvc, consumed by escalationsvc, through pkg/handoff"},
		{Name: "serbero_schema_migrations", Owner: OwnerMigrations, Via: "goose's version table"},
	}
}

// OwnerOf returns the owner of a table or sequence, by the grandfathered
// list, else by prefix. A sequence backing a column of a table (e.g.
// notifications_id_seq) belongs to the table's owner: pass it as is.
func OwnerOf(name string) (Owner, bool) {
	for _, o := range Grandfathered() {
		if o.Name == name {
			return o.Owner, true
		}
	}
	var best string
	for p := range Prefixes() {
		if strings.HasPrefix(name, p) && len(p) > len(best) {
			best = p
		}
	}
	if best != "" {
		return Prefixes()[best], true
	}
	return "", false
}

// Owners lists every owner, services first.
func Owners() []Owner {
	return []Owner{OwnerRelaygw, OwnerIntakesvc, OwnerAuthsvc, OwnerMediationsvc, OwnerEscalationsvc,
		OwnerHandoff, OwnerAudit, OwnerNotiflog, OwnerMigrations}
}

// IsGrandfathered reports whether name is exempt from the prefix rule.
func IsGrandfathered(name string) bool {
	return slices.ContainsFunc(Grandfathered(), func(o Object) bool { return o.Name == name })
}
