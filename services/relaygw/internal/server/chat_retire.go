package server

import (
	"context"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
)

// RetireChatChannels stops watching chat channels (idempotent, durable).
func (s *Server) RetireChatChannels(ctx context.Context, req *relaygwv1.RetireChatChannelsRequest) (*relaygwv1.RetireChatChannelsResponse, error) {
	n, err := s.chat.Retire(ctx, req.GetPartyTradePubkeys())
	if err != nil {
		return nil, err
	}
	return &relaygwv1.RetireChatChannelsResponse{Retired: int32(n)}, nil
}
