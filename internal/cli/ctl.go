package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/grpcclient"
)

// Budgets of a ctl command: reaching a service (dial and connection) must
// succeed within connectTimeout, the whole command within callTimeout.
const (
	connectTimeout = 3 * time.Second
	callTimeout    = 30 * time.Second
	defaultAddr    = "127.0.0.1:50051"
	tokenEnv       = "SERBERO_AUTH_TOKEN"
)

const ctlIntro = `Operator commands over the services' gRPC APIs.

Each service is reached at --addr, else its SERBERO_<SERVICE>_ADDR (e.g.
SERBERO_INTAKESVC_ADDR), else ` + defaultAddr + `. The service token comes from
--token-file, else SERBERO_AUTH_TOKEN, else the file SERBERO_AUTH_TOKEN_FILE
names. In a cluster, run it in a pod: every pod has the token and its peers'
addresses (kubectl exec deploy/serbero-escalationsvc -- serbero ctl handoffs list).`

// ctlCmd is one node of the ctl command tree: a group of subcommands, or
// a leaf that runs.
type ctlCmd struct {
	name    string
	summary string
	// synopsis is what follows the command's name in its usage line
	// (positional arguments and own flags).
	synopsis string
	// nargs is the number of positional arguments a leaf takes.
	nargs int
	// setup registers a leaf's own flags and returns its run function.
	setup func(fs *flag.FlagSet) func(ctx context.Context, c *ctl, args []string) error
	subs  []*ctlCmd
}

// ctlGlobals are the flags every ctl command accepts, before or after its
// name.
type ctlGlobals struct {
	addr      string
	asJSON    bool
	output    string
	tokenFile string
}

// register binds the global flags on fs, keeping the values already parsed
// at an outer level.
func (g *ctlGlobals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.addr, "addr", g.addr, "`HOST:PORT` of every service (default: SERBERO_<SERVICE>_ADDR, else "+defaultAddr+")")
	fs.StringVar(&g.tokenFile, "token-file", g.tokenFile, "`PATH` of a file holding the service token (default: "+tokenEnv+", else "+tokenEnv+"_FILE)")
	fs.StringVar(&g.output, "o", g.output, "output `FORMAT`: table, json or yaml (also --output)")
	fs.StringVar(&g.output, "output", g.output, "output `FORMAT`: table, json or yaml")
	fs.BoolVar(&g.asJSON, "json", g.asJSON, "same as -o json")
}

// peer is one service the command talks to.
type peer struct {
	addr string
	conn *grpc.ClientConn
	svc  config.Target
}

// ctl holds what every ctl command needs.
type ctl struct {
	connectTimeout time.Duration
	format         string
	getenv         func(string) string
	globals        ctlGlobals
	mu             sync.Mutex
	peers          map[string]*peer
	stderr         io.Writer
	stdout         io.Writer
	token          string
}

func ctlCommand(ctx context.Context, args []string, io IO) error {
	g := ctlGlobals{output: formatTable}
	return runCtlCmd(ctx, ctlTree(), []string{"serbero", "ctl"}, args, &g, io)
}

// runCtlCmd parses one level of the command line and runs the leaf it
// names. Help (-h, --help, or "help") prints to stdout and succeeds; a
// mistake prints the usage to stderr and is a usage error (exit 2).
func runCtlCmd(ctx context.Context, cmd *ctlCmd, path, args []string, g *ctlGlobals, io IO) error {
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	g.register(fs)
	var run func(context.Context, *ctl, []string) error
	if cmd.setup != nil {
		run = cmd.setup(fs)
	}
	usage := func() string { return ctlUsage(cmd, path, fs) }
	var flagOut bytes.Buffer
	fs.SetOutput(&flagOut)
	fs.Usage = func() {}

	if cmd.subs != nil {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			_, err = fmt.Fprint(io.Stdout, usage())
			return err
		}
		if err != nil {
			fmt.Fprint(io.Stderr, usage())
			return &usageError{msg: err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			fmt.Fprint(io.Stderr, usage())
			return &usageError{msg: fmt.Sprintf("%s needs a command: %s", strings.Join(path, " "), subNames(cmd))}
		}
		if rest[0] == "help" {
			_, err = fmt.Fprint(io.Stdout, usage())
			return err
		}
		for _, sub := range cmd.subs {
			if sub.name == rest[0] {
				return runCtlCmd(ctx, sub, append(path, sub.name), rest[1:], g, io)
			}
		}
		fmt.Fprint(io.Stderr, usage())
		return &usageError{msg: fmt.Sprintf("unknown command %q for %q (want %s)", rest[0], strings.Join(path, " "), subNames(cmd))}
	}

	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		_, err = fmt.Fprint(io.Stdout, usage())
		return err
	}
	if err != nil {
		fmt.Fprint(io.Stderr, usage())
		return &usageError{msg: err.Error()}
	}
	if len(pos) != cmd.nargs {
		fmt.Fprint(io.Stderr, usage())
		if cmd.nargs == 0 {
			return &usageError{msg: fmt.Sprintf("%s takes no arguments, got %s", strings.Join(path, " "), strings.Join(pos, " "))}
		}
		return &usageError{msg: fmt.Sprintf("%s needs %s", strings.Join(path, " "), cmd.synopsis)}
	}
	c, err := newCtl(*g, io)
	if err != nil {
		return err
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return run(ctx, c, pos)
}

// parseInterspersed parses fs's flags anywhere among the positional
// arguments (as kubectl does: `disputes get ID -o json`); "--" ends the
// flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func subNames(cmd *ctlCmd) string {
	names := make([]string, 0, len(cmd.subs))
	for _, s := range cmd.subs {
		names = append(names, s.name)
	}
	return strings.Join(names, ", ")
}

// ctlUsage is the help text of one level: its synopsis, its subcommands
// (all the leaves below it) and its flags.
func ctlUsage(cmd *ctlCmd, path []string, fs *flag.FlagSet) string {
	var b strings.Builder
	name := strings.Join(path, " ")
	if cmd.subs != nil {
		fmt.Fprintf(&b, "usage: %s <command> [flags]\n\n", name)
	} else {
		fmt.Fprintf(&b, "usage: %s %s[flags]\n\n", name, spaced(cmd.synopsis))
	}
	if len(path) == 2 {
		fmt.Fprintf(&b, "%s\n\n", ctlIntro)
	} else if cmd.summary != "" {
		fmt.Fprintf(&b, "%s\n\n", cmd.summary)
	}
	if cmd.subs != nil {
		b.WriteString("commands:\n")
		tw := newTabWriter(&b)
		var walk func(c *ctlCmd, prefix string)
		walk = func(c *ctlCmd, prefix string) {
			if c.subs == nil {
				fmt.Fprintf(tw, "  %s%s\t%s\n", prefix, spacedTrim(c.name+" "+c.synopsis), c.summary)
				return
			}
			for _, s := range c.subs {
				p := prefix
				if c != cmd {
					p += c.name + " "
				}
				walk(s, p)
			}
		}
		walk(cmd, "")
		_ = tw.Flush()
		b.WriteString("\n")
	}
	b.WriteString("flags (before or after the command):\n")
	var fb bytes.Buffer
	fs.SetOutput(&fb)
	fs.PrintDefaults()
	b.Write(fb.Bytes())
	if cmd.subs != nil {
		fmt.Fprintf(&b, "\nRun \"%s <command> -h\" for a command's own flags.\n", name)
	}
	return b.String()
}

func spaced(s string) string {
	if s == "" {
		return ""
	}
	return s + " "
}

func spacedTrim(s string) string { return strings.TrimSpace(s) }

// newCtl checks the global flags and reads the token.
func newCtl(g ctlGlobals, io IO) (*ctl, error) {
	format := g.output
	if g.asJSON {
		format = formatJSON
	}
	if !validFormat(format) {
		return nil, &usageError{msg: fmt.Sprintf("unknown output format %q: use -o table, -o json or -o yaml", format)}
	}
	getenv := io.Getenv
	if g.tokenFile != "" {
		getenv = func(k string) string {
			switch k {
			case tokenEnv + "_FILE":
				return g.tokenFile
			case tokenEnv:
				return ""
			}
			return io.Getenv(k)
		}
	}
	token, err := config.EnvSecret(getenv, tokenEnv)
	if err != nil {
		return nil, fmt.Errorf("%w (fix the path, or set %s to the token itself)", err, tokenEnv)
	}
	if !token.IsSet() {
		return nil, fmt.Errorf("no service token: set %s to the services' [server].auth_token (or %s_FILE to a file holding it, or pass --token-file PATH); "+
			"in a cluster every Serbero pod has it: kubectl exec deploy/serbero-escalationsvc -- serbero ctl …", tokenEnv, tokenEnv)
	}
	return &ctl{
		connectTimeout: connectTimeout, format: format, getenv: io.Getenv, globals: g,
		peers: map[string]*peer{}, stderr: io.Stderr, stdout: io.Stdout, token: token.Reveal(),
	}, nil
}

// addrEnv is the variable that names svc's address (the one the chart sets
// in every pod for the services it calls).
func addrEnv(svc config.Target) string { return "SERBERO_" + strings.ToUpper(string(svc)) + "_ADDR" }

// addr is where svc is reached: --addr, else SERBERO_SERVICES_<SVC> (the
// generic name of [services].<svc>), else SERBERO_<SVC>_ADDR, else the
// local default.
func (c *ctl) addr(svc config.Target) string {
	if c.globals.addr != "" {
		return c.globals.addr
	}
	for _, name := range []string{config.EnvName("services." + string(svc)), addrEnv(svc)} {
		if v := strings.TrimSpace(c.getenv(name)); v != "" {
			return v
		}
	}
	return defaultAddr
}

// conn returns a ready connection to svc, or within connectTimeout an
// error that names the address and what to check.
func (c *ctl) conn(ctx context.Context, svc config.Target) (*peer, error) {
	addr := c.addr(svc)
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.peers[addr]; ok {
		return &peer{addr: addr, conn: p.conn, svc: svc}, nil
	}
	var (
		dialMu  sync.Mutex
		dialErr error
	)
	dialer := func(ctx context.Context, target string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", target)
		if err != nil {
			dialMu.Lock()
			dialErr = err
			dialMu.Unlock()
		}
		return conn, err
	}
	conn, err := grpcclient.Dial(addr, grpcclient.Options{Token: c.token, Extra: []grpc.DialOption{grpc.WithContextDialer(dialer)}})
	if err != nil {
		return nil, fmt.Errorf("%s address %q: %w (set --addr or %s to HOST:PORT)", svc, addr, err, addrEnv(svc))
	}
	wctx, cancel := context.WithTimeout(ctx, c.connectTimeout)
	defer cancel()
	conn.Connect()
	for {
		st := conn.GetState()
		if st == connectivity.Ready {
			break
		}
		failed := st == connectivity.TransientFailure || st == connectivity.Shutdown
		if failed || !conn.WaitForStateChange(wctx, st) {
			_ = conn.Close()
			dialMu.Lock()
			why := "no answer"
			if dialErr != nil {
				why = dialErr.Error()
			} else if failed {
				why = "the address does not resolve or refuses the connection"
			}
			dialMu.Unlock()
			return nil, fmt.Errorf("cannot reach %s at %s within %s: %s; check that %s is running and the address (--addr, or %s)",
				svc, addr, c.connectTimeout, why, svc, addrEnv(svc))
		}
	}
	p := &peer{addr: addr, conn: conn, svc: svc}
	c.peers[addr] = p
	return p, nil
}

func (c *ctl) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.peers {
		_ = p.conn.Close()
	}
}

// fail turns an RPC error into one that says what to do.
func (p *peer) fail(what string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch st.Code() {
	case codes.Unauthenticated:
		return fmt.Errorf("%s: %s at %s refused the service token: set %s (or --token-file) to the services' [server].auth_token",
			what, p.svc, p.addr, tokenEnv)
	case codes.Unimplemented:
		return fmt.Errorf("%s: %s does not serve %s's API (is it another service?): point %s or --addr at %s",
			what, p.addr, p.svc, addrEnv(p.svc), p.svc)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %s at %s did not answer within %s", what, p.svc, p.addr, callTimeout)
	case codes.Unavailable:
		return fmt.Errorf("%s: %s at %s is unavailable: %s", what, p.svc, p.addr, st.Message())
	case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
		return fmt.Errorf("%s: %s", what, st.Message())
	default:
		return fmt.Errorf("%s: %s at %s: %s (%s)", what, p.svc, p.addr, st.Message(), st.Code())
	}
}

// emit prints a command's result: the table view in the table format,
// else v as one JSON or YAML document.
func (c *ctl) emit(v any, tableView func(w io.Writer) error) error {
	if c.format == formatTable {
		return tableView(c.stdout)
	}
	return writeDocument(c.stdout, c.format, v)
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// ctlTree is every ctl command.
func ctlTree() *ctlCmd {
	return &ctlCmd{name: "ctl", subs: []*ctlCmd{
		{name: "disputes", summary: "Disputes as intakesvc records them (phases 1-2), with their mediation and handoffs.", subs: []*ctlCmd{
			{name: "list", synopsis: "[--state STATE]... [--limit N]", summary: "disputes, newest first", setup: disputesList},
			{name: "get", synopsis: "DISPUTE_ID", nargs: 1, summary: "one dispute: transitions, notifications, mediation sessions, handoffs, audit trail", setup: disputesGet},
			{name: "quarantine", synopsis: "[--limit N]", summary: "dispute events set aside because they can never be applied", setup: disputesQuarantine},
		}},
		{name: "sessions", summary: "Mediation sessions (phase 3, mediationsvc).", subs: []*ctlCmd{
			{name: "list", synopsis: "[--dispute ID] [--state STATE]... [--limit N]", summary: "mediation sessions, newest first", setup: sessionsList},
			{name: "get", synopsis: "SESSION_ID", nargs: 1, summary: "one session: state, rounds, transcript, classifications, rationale ids", setup: sessionsGet},
		}},
		{name: "handoffs", summary: "Escalation handoffs (phase 4, escalationsvc).", subs: []*ctlCmd{
			{name: "list", synopsis: "[--dispute ID] [--status STATUS]... [--limit N]", summary: "escalation handoffs, oldest first", setup: handoffsList},
			{name: "get", synopsis: "HANDOFF_ID", nargs: 1, summary: "one handoff and its dispatch", setup: handoffsGet},
			{name: "requeue", synopsis: "HANDOFF_ID", nargs: 1, summary: "return a parked or failed handoff to the queue", setup: handoffsRequeue},
		}},
		{name: "auth", summary: "Serbero's authorization as a solver on the Mostro node (authsvc).", subs: []*ctlCmd{
			{name: "state", summary: "is Serbero authorized as a solver, and why", setup: authState},
			{name: "reset", summary: "start a fresh revalidation cycle after termination", setup: authReset},
		}},
		{name: "relays", summary: "relay connections (relaygw)", setup: relays},
		{name: "mostro", summary: "the Mostro node's info: protocol, proof of work (relaygw)", setup: mostroInfo},
		{name: "identity", summary: "Serbero's public key (relaygw)", setup: identity},
	}}
}
