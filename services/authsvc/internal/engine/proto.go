package engine

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
)

var protoStates = map[revalidation.Status]authsvcv1.AuthorizationState{
	revalidation.StatusUnknown:      authsvcv1.AuthorizationState_AUTHORIZATION_STATE_UNKNOWN,
	revalidation.StatusAuthorized:   authsvcv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED,
	revalidation.StatusUnauthorized: authsvcv1.AuthorizationState_AUTHORIZATION_STATE_UNAUTHORIZED,
	revalidation.StatusTerminated:   authsvcv1.AuthorizationState_AUTHORIZATION_STATE_TERMINATED,
}

// ToProto converts a state to its API form.
func ToProto(st revalidation.State) *authsvcv1.AuthState {
	kind := st.Evidence.Kind
	if kind == 0 {
		kind = revalidation.EvidenceNone
	}
	return &authsvcv1.AuthState{
		State:                 protoStates[st.Status],
		Since:                 tsp(st.Since),
		Attempt:               int32(st.Attempt),
		NextAttemptAt:         tsp(st.NextAttemptAt),
		LastError:             st.LastError,
		CumulativeWaitSeconds: int64(st.CumulativeWait / time.Second),
		ProbeId:               st.Probe.ID,
		Version:               st.Version,
		LastAttemptAt:         tsp(st.LastAttemptAt),
		ProbeDeadline:         tsp(st.Probe.Deadline),
		ProbeDisputeId:        st.Probe.DisputeID,
		Evidence: &authsvcv1.Evidence{
			Kind:       authsvcv1.EvidenceKind(kind),
			Summary:    st.Evidence.Summary,
			ObservedAt: tsp(st.Evidence.ObservedAt),
			DisputeId:  st.Evidence.DisputeID,
		},
	}
}

func tsp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
