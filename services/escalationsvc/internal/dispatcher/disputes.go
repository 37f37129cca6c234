package dispatcher

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
)

// Sender sends one NIP-17 DM (relaygw's SendDirectMessage).
type Sender interface {
	SendDirectMessage(ctx context.Context, in *relaygwv1.SendDirectMessageRequest, opts ...grpc.CallOption) (*relaygwv1.SendDirectMessageResponse, error)
}

// Disputes looks a dispute up (intakesvc's GetDispute): intakesvc owns the
// disputes table, escalationsvc only asks it.
type Disputes interface {
	GetDispute(ctx context.Context, in *intakesvcv1.GetDisputeRequest, opts ...grpc.CallOption) (*intakesvcv1.GetDisputeResponse, error)
}

// dispute is what the pipeline needs of a dispute.
type dispute struct {
	Resolved bool
	// AssignedSolver is the solver known to hold the dispute (nil: none).
	AssignedSolver *string
}

// errLookup marks a dispute lookup that did not get intakesvc's answer
// (intakesvc unreachable, a deadline, an internal error of intakesvc): the
// handoff is retried, never treated as an orphan nor routed without it.
var errLookup = errors.New("dispute lookup failed")

// lookup asks intakesvc for the dispute. found = false only when intakesvc
// answered NotFound (the reference's orphan dispute reference); every other
// failure is an errLookup.
func (d *Dispatcher) lookup(ctx context.Context, id string) (dispute, bool, error) {
	if id == "" {
		// No dispute has an empty id (intakesvc refuses to look one up).
		return dispute{}, false, nil
	}
	lctx, cancel := context.WithTimeout(ctx, d.opts.LookupTimeout)
	defer cancel()
	resp, err := d.opts.Disputes.GetDispute(lctx, &intakesvcv1.GetDisputeRequest{DisputeId: id})
	switch {
	case status.Code(err) == codes.NotFound:
		return dispute{}, false, nil
	case err != nil:
		return dispute{}, false, fmt.Errorf("%w: intakesvc GetDispute: %w", errLookup, err)
	case resp.GetDispute() == nil:
		return dispute{}, false, fmt.Errorf("%w: intakesvc GetDispute returned no dispute", errLookup)
	}
	out := dispute{Resolved: resp.GetDispute().GetLifecycleState() == intakesvcv1.LifecycleState_LIFECYCLE_STATE_RESOLVED}
	if a := resp.GetDispute().GetAssignedSolver(); a != "" {
		out.AssignedSolver = &a
	}
	return out, true, nil
}
