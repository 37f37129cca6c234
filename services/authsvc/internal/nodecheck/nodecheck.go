// Package nodecheck is authsvc's check of the Mostro node: relaygw's cached
// kind 38385 info event must exist and advertise a protocol Serbero speaks
// (see docs/authorization.md#the-check).
package nodecheck

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/textcut"
	"github.com/serbero/serbero/services/authsvc/internal/engine"
	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
)

// Relaygw checks the node through relaygw's GetMostroInfo.
type Relaygw struct {
	// Client is relaygw.
	Client relaygwv1.RelayGatewayServiceClient
}

// CheckNode implements engine.NodeChecker: NotFound or FailedPrecondition
// from relaygw (no info event yet) and an unsupported protocol are node
// problems; any other error means the check could not run.
func (c Relaygw) CheckNode(ctx context.Context) (revalidation.NodeInfo, error) {
	resp, err := c.Client.GetMostroInfo(ctx, &relaygwv1.GetMostroInfoRequest{})
	if err != nil {
		switch status.Code(err) {
		case codes.NotFound, codes.FailedPrecondition:
			msg := textcut.Clean(status.Convert(err).Message(), 200)
			return revalidation.NodeInfo{}, &engine.NodeProblem{Msg: "no kind 38385 info event from the Mostro node (relaygw: " + msg + ")"}
		default:
			return revalidation.NodeInfo{}, fmt.Errorf("get mostro info from relaygw: %w", err)
		}
	}
	info := resp.GetInfo()
	if info == nil {
		return revalidation.NodeInfo{}, &engine.NodeProblem{Msg: "relaygw returned no Mostro node info"}
	}
	v := info.GetProtocolVersion()
	if v != 1 && v != 2 {
		return revalidation.NodeInfo{}, &engine.NodeProblem{Msg: fmt.Sprintf("the Mostro node advertises unsupported protocol version %d", v)}
	}
	return revalidation.NodeInfo{ProtocolVersion: int(v), MostroVersion: textcut.Clean(info.GetMostroVersion(), 32)}, nil
}
