package runner

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"

	"google.golang.org/grpc"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/grpcclient"
)

// selfTarget is the dial target of a peer served by this very process: the
// connection dials the process's own gRPC listener once Run has bound it.
const selfTarget = "passthrough:///self"

// Peer is one service this process talks to over gRPC.
type Peer struct {
	// Service is the peer.
	Service config.Target
	// Address is the configured address, or "self" when this process
	// serves the peer (the connection then dials this process's own
	// listener, whatever port it gets).
	Address string
	// InProcess reports Address == "self".
	InProcess bool
	// Users are the services of this process that call it, sorted.
	Users []config.Target
}

// peers dials other services once each (lazily: grpc connects on the first
// call), and knows who uses which.
type peers struct {
	mu      sync.Mutex
	conns   map[string]*grpc.ClientConn
	used    map[config.Target]*Peer
	target  config.Target
	token   string
	closers *closers

	selfOnce  sync.Once
	selfReady chan struct{}
	selfAddr  string
}

func newPeers(target config.Target, token string, c *closers) *peers {
	return &peers{conns: map[string]*grpc.ClientConn{}, used: map[config.Target]*Peer{}, target: target, token: token,
		closers: c, selfReady: make(chan struct{})}
}

// conn returns the connection user uses to call peer: at its configured
// address, or this process's own listener when this process runs it.
func (p *peers) conn(user, peer config.Target, configured string) (*grpc.ClientConn, error) {
	addr, key := configured, configured
	if configured == "" {
		if !p.target.Includes(peer) {
			return nil, fmt.Errorf("configuration error: [services].%s is required for target %s (%s)", peer, p.target, config.EnvName("services."+string(peer)))
		}
		addr, key = selfTarget, "self"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.used[peer]
	if u == nil {
		u = &Peer{Service: peer, Address: key, InProcess: key == "self"}
		p.used[peer] = u
	}
	if !slices.Contains(u.Users, user) {
		u.Users = append(u.Users, user)
		slices.Sort(u.Users)
	}
	if c, ok := p.conns[key]; ok {
		return c, nil
	}
	opts := grpcclient.Options{Token: p.token}
	if key == "self" {
		opts.Extra = append(opts.Extra, grpc.WithContextDialer(p.dialSelf))
	}
	c, err := grpcclient.Dial(addr, opts)
	if err != nil {
		return nil, err
	}
	p.conns[key] = c
	p.closers.push("grpc client "+key, c.Close)
	return c, nil
}

// bind tells in-process connections where this process listens.
func (p *peers) bind(addr string) {
	p.selfOnce.Do(func() {
		p.selfAddr = addr
		close(p.selfReady)
	})
}

func (p *peers) dialSelf(ctx context.Context, _ string) (net.Conn, error) {
	select {
	case <-p.selfReady:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.selfAddr)
}

// list returns the peers in use, by service order.
func (p *peers) list() []Peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Peer
	for _, t := range config.Services {
		if u := p.used[t]; u != nil {
			c := *u
			c.Users = slices.Clone(u.Users)
			out = append(out, c)
		}
	}
	return out
}

// dialable turns a listen address into one a client can dial (":50051" or
// "0.0.0.0:50051" become "127.0.0.1:50051").
func dialable(a string) string {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
