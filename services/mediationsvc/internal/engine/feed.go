package engine

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	"github.com/serbero/serbero/pkg/retry"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// feedConsumer is the engine's consumer name in intakesvc's change feed.
const feedConsumer = "mediationsvc"

// followFeed follows intakesvc's change feed from the engine's stored
// position: every change is handled (start a new dispute, react to a
// takeover or a resolution) before the position moves past it.
func (e *Engine) followFeed(ctx context.Context) {
	backoff := 200 * time.Millisecond
	fromZero := false
	for ctx.Err() == nil {
		after, err := e.o.Store.FeedCursor(ctx)
		if fromZero {
			after, fromZero = 0, false
		}
		if err == nil {
			err = e.follow(ctx, after)
		}
		if ctx.Err() != nil {
			return
		}
		if expired(err) {
			e.log.Warn("the engine's feed position is older than intakesvc keeps; resuming from the oldest change kept",
				"after_cursor", after)
			fromZero = true
			continue
		}
		e.log.Warn("dispute change feed ended; reconnecting", "error", err, "retry_in", backoff.String())
		if !retry.Sleep(ctx, e.o.Clock, backoff) {
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func expired(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == intakesvcv1.WatchErrorReason_WATCH_ERROR_REASON_CURSOR_EXPIRED.String() {
			return true
		}
	}
	return false
}

func (e *Engine) follow(ctx context.Context, after int64) error {
	stream, err := e.o.Intake.WatchDisputes(ctx, &intakesvcv1.WatchDisputesRequest{AfterCursor: after, Consumer: feedConsumer})
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		for attempt := 1; ; attempt++ {
			err := e.onDispute(ctx, msg.GetDispute())
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e.log.Warn("handling a dispute change failed; retrying", "dispute_id", msg.GetDispute().GetDisputeId(),
				"cursor", msg.GetCursor(), "attempt", attempt, "error", err)
			if !retry.Sleep(ctx, e.o.Clock, min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second)) {
				return ctx.Err()
			}
		}
		if err := e.o.Store.AdvanceFeedCursor(ctx, msg.GetCursor()); err != nil {
			return err
		}
	}
}

// lifecycle maps intakesvc's enum to the reference's names.
func lifecycle(s intakesvcv1.LifecycleState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "LIFECYCLE_STATE_"))
}

// onDispute reacts to the newest snapshot of a dispute.
func (e *Engine) onDispute(ctx context.Context, d *intakesvcv1.Dispute) error {
	if d == nil || d.GetDisputeId() == "" {
		return nil
	}
	snap := store.DisputeSnapshot{
		DisputeID: d.GetDisputeId(), InitiatorRole: d.GetInitiatorRole(), Lifecycle: lifecycle(d.GetLifecycleState()),
		Status: d.GetDisputeStatus(), NewestEventID: d.GetNewestEventId(), DetectedAt: d.GetDetectedAt().GetSeconds(),
		EventTimestamp: d.GetEventTimestamp().GetSeconds(),
	}
	row, err := e.o.Store.UpsertDispute(ctx, snap)
	if err != nil {
		return err
	}
	switch {
	case snap.Lifecycle == "resolved":
		return e.resolved(ctx, d)
	case snap.Status == "in-progress":
		return e.inProgress(ctx, d)
	case row.Eligible():
		e.kickStart(snap.DisputeID, "detected")
	}
	return nil
}

var errSkip = errors.New("skip")
