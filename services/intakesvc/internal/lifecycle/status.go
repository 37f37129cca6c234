package lifecycle

// Status is a Mostro dispute status, the s tag of a kind 38386 event.
type Status string

// The Mostro dispute statuses Serbero routes on (docs/intake.md#the-lifecycle).
const (
	StatusInitiated             Status = "initiated"
	StatusInProgress            Status = "in-progress"
	StatusSellerRefunded        Status = "seller-refunded"
	StatusSettled               Status = "settled"
	StatusReleased              Status = "released"
	StatusCooperativelyCanceled Status = "cooperatively-canceled"
)

// Route is what a status asks of the lifecycle.
type Route int

// The routes.
const (
	// RouteUnknown: an unrecognised status; log a warning and keep the state.
	RouteUnknown Route = iota
	// RouteNew: the dispute was opened (initiated).
	RouteNew
	// RouteTaken: a solver took the dispute (in-progress).
	RouteTaken
	// RouteResolved: a terminal status.
	RouteResolved
)

// String names the route for logs.
func (r Route) String() string {
	switch r {
	case RouteNew:
		return "new"
	case RouteTaken:
		return "taken"
	case RouteResolved:
		return "resolved"
	default:
		return "unknown"
	}
}

// RouteOf maps an s value (exact, lowercase) to its route.
func RouteOf(s Status) Route {
	switch s {
	case StatusInitiated:
		return RouteNew
	case StatusInProgress:
		return RouteTaken
	case StatusSellerRefunded, StatusSettled, StatusReleased, StatusCooperativelyCanceled:
		return RouteResolved
	default:
		return RouteUnknown
	}
}

// Known reports whether s is one of the statuses above.
func (s Status) Known() bool { return RouteOf(s) != RouteUnknown }
