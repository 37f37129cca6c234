package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	escalationsvcv1 "github.com/serbero/serbero/gen/go/serbero/escalationsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	mediationsvcv1 "github.com/serbero/serbero/gen/go/serbero/mediationsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/grpcclient"
)

const ctlUsage = `usage: serbero ctl [--addr HOST:PORT] [--token-file PATH] [--json] <command>

Operator commands over the services' gRPC APIs (the service token comes from
--token-file, SERBERO_AUTH_TOKEN or SERBERO_AUTH_TOKEN_FILE; the address from
--addr, else the service's SERBERO_<SERVICE>_ADDR, else 127.0.0.1:50051):

  disputes list [--state STATE]... [--limit N]   disputes, newest first
  disputes get ID                                one dispute: transitions, notifications, audit trail
  disputes quarantine [--limit N]                dispute events set aside because they can never be applied
  handoffs list [--status STATUS]... [--limit N] escalation handoffs
  handoffs get ID                                one handoff and its dispatch
  handoffs requeue ID                            return a parked or failed handoff to the queue
  auth state                                     is Serbero authorized as a solver, and why
  auth reset                                     start a fresh revalidation cycle after termination
  relays                                         relay connections
  mostro                                         the Mostro node's info (protocol, proof of work)
  identity                                       Serbero's public key`

// ctl holds what every ctl command needs.
type ctl struct {
	addrFlag string
	asJSON   bool
	conns    map[string]*grpc.ClientConn
	getenv   func(string) string
	out      io.Writer
	token    string
}

func ctlCommand(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	addr := fs.String("addr", "", "service address (default: the service's SERBERO_<SERVICE>_ADDR, else 127.0.0.1:50051)")
	tokenFile := fs.String("token-file", "", "file holding the service token (default SERBERO_AUTH_TOKEN[_FILE])")
	asJSON := fs.Bool("json", false, "print responses as JSON")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), ctlUsage) }
	if err := parseFlagsAndArgs(fs, args, io.Stderr); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return &usageError{msg: "ctl needs a command"}
	}

	getenv := io.Getenv
	if *tokenFile != "" {
		getenv = func(k string) string {
			if k == "SERBERO_AUTH_TOKEN_FILE" {
				return *tokenFile
			}
			if k == "SERBERO_AUTH_TOKEN" {
				return ""
			}
			return io.Getenv(k)
		}
	}
	token, err := config.EnvSecret(getenv, "SERBERO_AUTH_TOKEN")
	if err != nil {
		return err
	}
	c := &ctl{addrFlag: *addr, asJSON: *asJSON, conns: map[string]*grpc.ClientConn{}, getenv: io.Getenv, out: io.Stdout, token: token.Reveal()}
	defer c.close()

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd, args := rest[0], rest[1:]
	switch cmd {
	case "disputes":
		return c.disputes(ctx, args, io.Stderr)
	case "handoffs":
		return c.handoffs(ctx, args, io.Stderr)
	case "auth":
		return c.auth(ctx, args)
	case "relays":
		return c.relays(ctx)
	case "mostro":
		conn, err := c.conn(config.TargetRelaygw)
		if err != nil {
			return err
		}
		resp, err := relaygwv1.NewRelayGatewayServiceClient(conn).GetMostroInfo(ctx, &relaygwv1.GetMostroInfoRequest{})
		if err != nil {
			return err
		}
		return c.print(resp)
	case "identity":
		conn, err := c.conn(config.TargetRelaygw)
		if err != nil {
			return err
		}
		resp, err := relaygwv1.NewRelayGatewayServiceClient(conn).GetIdentity(ctx, &relaygwv1.GetIdentityRequest{})
		if err != nil {
			return err
		}
		return c.print(resp)
	default:
		fs.Usage()
		return &usageError{msg: fmt.Sprintf("unknown ctl command %q", cmd)}
	}
}

// conn dials the service (once per address).
func (c *ctl) conn(svc config.Target) (*grpc.ClientConn, error) {
	addr := c.addrFlag
	if addr == "" {
		addr = strings.TrimSpace(c.getenv(config.EnvName("services." + string(svc))))
	}
	if addr == "" {
		addr = "127.0.0.1:50051"
	}
	if conn, ok := c.conns[addr]; ok {
		return conn, nil
	}
	conn, err := grpcclient.Dial(addr, grpcclient.Options{Token: c.token})
	if err != nil {
		return nil, err
	}
	c.conns[addr] = conn
	return conn, nil
}

func (c *ctl) close() {
	for _, conn := range c.conns {
		conn.Close()
	}
}

// print writes one response as indented JSON.
func (c *ctl) print(m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: false}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.out, string(b))
	return err
}

func (c *ctl) table(header string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func (c *ctl) disputes(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{msg: "disputes needs list, get or quarantine"}
	}
	conn, err := c.conn(config.TargetIntakesvc)
	if err != nil {
		return err
	}
	client := intakesvcv1.NewIntakeServiceClient(conn)
	switch args[0] {
	case "list":
		fs := flag.NewFlagSet("disputes list", flag.ContinueOnError)
		var states multi
		fs.Var(&states, "state", "only this lifecycle state (new, notified, taken, waiting, escalated, resolved); repeatable")
		limit := fs.Int("limit", 50, "at most this many")
		if err := parseFlags(fs, args[1:], stderr); err != nil {
			return err
		}
		req := &intakesvcv1.ListDisputesRequest{PageSize: int32(*limit)}
		for _, s := range states {
			v, ok := intakesvcv1.LifecycleState_value["LIFECYCLE_STATE_"+strings.ToUpper(s)]
			if !ok {
				return &usageError{msg: fmt.Sprintf("unknown state %q", s)}
			}
			req.States = append(req.States, intakesvcv1.LifecycleState(v))
		}
		resp, err := client.ListDisputes(ctx, req)
		if err != nil {
			return err
		}
		if c.asJSON {
			return c.print(resp)
		}
		var rows [][]string
		for _, d := range resp.GetDisputes() {
			rows = append(rows, []string{d.GetDisputeId(), stateName(d.GetLifecycleState().String(), "LIFECYCLE_STATE_"),
				d.GetInitiatorRole(), d.GetDisputeStatus(), ts(d.GetDetectedAt()), ts(d.GetLastNotifiedAt()), d.GetAssignedSolver()})
		}
		return c.table("DISPUTE\tSTATE\tINITIATOR\tSTATUS\tDETECTED\tLAST NOTIFIED\tASSIGNED", rows)
	case "get":
		if len(args) != 2 {
			return &usageError{msg: "disputes get needs a dispute id"}
		}
		resp, err := client.GetDispute(ctx, &intakesvcv1.GetDisputeRequest{DisputeId: args[1]})
		if err != nil {
			return err
		}
		if err := c.print(resp); err != nil {
			return err
		}
		// The audit trail lives with mediationsvc; show it when reachable.
		mconn, err := c.conn(config.TargetMediationsvc)
		if err != nil {
			return err
		}
		audit, err := mediationsvcv1.NewMediationServiceClient(mconn).ListAuditEvents(ctx, &mediationsvcv1.ListAuditEventsRequest{DisputeId: args[1]})
		if err != nil {
			fmt.Fprintf(stderr, "audit trail unavailable: %v\n", err)
			return nil
		}
		return c.print(audit)
	case "quarantine":
		fs := flag.NewFlagSet("disputes quarantine", flag.ContinueOnError)
		limit := fs.Int("limit", 50, "at most this many")
		if err := parseFlags(fs, args[1:], stderr); err != nil {
			return err
		}
		resp, err := client.ListQuarantinedEvents(ctx, &intakesvcv1.ListQuarantinedEventsRequest{PageSize: int32(*limit)})
		if err != nil {
			return err
		}
		if c.asJSON {
			return c.print(resp)
		}
		var rows [][]string
		for _, q := range resp.GetEvents() {
			rows = append(rows, []string{q.GetEventId(), strconv.FormatInt(q.GetCursor(), 10), short(q.GetDisputeId(), 40),
				q.GetClass(), strconv.FormatInt(q.GetSeenCount(), 10), ts(q.GetFirstSeenAt()), ts(q.GetLastSeenAt()), short(q.GetReason(), 80)})
		}
		return c.table("EVENT\tCURSOR\tDISPUTE\tCLASS\tSEEN\tFIRST SEEN\tLAST SEEN\tREASON", rows)
	default:
		return &usageError{msg: fmt.Sprintf("unknown disputes command %q", args[0])}
	}
}

// short cuts s to at most n characters for a table cell (at a character
// boundary, never inside one), on one line.
func short(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func (c *ctl) handoffs(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{msg: "handoffs needs list, get or requeue"}
	}
	conn, err := c.conn(config.TargetEscalationsvc)
	if err != nil {
		return err
	}
	client := escalationsvcv1.NewEscalationServiceClient(conn)
	id := func() (int64, error) {
		if len(args) != 2 {
			return 0, &usageError{msg: "handoffs " + args[0] + " needs a handoff id"}
		}
		n, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return 0, &usageError{msg: fmt.Sprintf("bad handoff id %q", args[1])}
		}
		return n, nil
	}
	switch args[0] {
	case "list":
		fs := flag.NewFlagSet("handoffs list", flag.ContinueOnError)
		var statuses multi
		fs.Var(&statuses, "status", "only this status (pending, claimed, done, parked, failed); repeatable")
		limit := fs.Int("limit", 50, "at most this many")
		if err := parseFlags(fs, args[1:], stderr); err != nil {
			return err
		}
		req := &escalationsvcv1.ListHandoffsRequest{PageSize: int32(*limit)}
		for _, s := range statuses {
			v, ok := escalationsvcv1.HandoffStatus_value["HANDOFF_STATUS_"+strings.ToUpper(s)]
			if !ok {
				return &usageError{msg: fmt.Sprintf("unknown status %q", s)}
			}
			req.Statuses = append(req.Statuses, escalationsvcv1.HandoffStatus(v))
		}
		resp, err := client.ListHandoffs(ctx, req)
		if err != nil {
			return err
		}
		if c.asJSON {
			return c.print(resp)
		}
		var rows [][]string
		for _, h := range resp.GetHandoffs() {
			rows = append(rows, []string{strconv.FormatInt(h.GetId(), 10), h.GetDisputeId(), h.GetTrigger(),
				stateName(h.GetStatus().String(), "HANDOFF_STATUS_"), strconv.Itoa(int(h.GetAttempts())), h.GetOutcome(), ts(h.GetCreatedAt()), h.GetLastError()})
		}
		return c.table("ID\tDISPUTE\tTRIGGER\tSTATUS\tATTEMPTS\tOUTCOME\tCREATED\tLAST ERROR", rows)
	case "get":
		n, err := id()
		if err != nil {
			return err
		}
		resp, err := client.GetHandoff(ctx, &escalationsvcv1.GetHandoffRequest{Id: n})
		if err != nil {
			return err
		}
		return c.print(resp)
	case "requeue":
		n, err := id()
		if err != nil {
			return err
		}
		resp, err := client.RequeueHandoff(ctx, &escalationsvcv1.RequeueHandoffRequest{Id: n})
		if err != nil {
			return err
		}
		return c.print(resp)
	default:
		return &usageError{msg: fmt.Sprintf("unknown handoffs command %q", args[0])}
	}
}

func (c *ctl) auth(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return &usageError{msg: "auth needs state or reset"}
	}
	conn, err := c.conn(config.TargetAuthsvc)
	if err != nil {
		return err
	}
	client := authsvcv1.NewAuthServiceClient(conn)
	switch args[0] {
	case "state":
		resp, err := client.CurrentState(ctx, &authsvcv1.CurrentStateRequest{})
		if err != nil {
			return err
		}
		return c.print(resp)
	case "reset":
		resp, err := client.ResetTerminated(ctx, &authsvcv1.ResetTerminatedRequest{})
		if err != nil {
			return err
		}
		return c.print(resp)
	default:
		return &usageError{msg: fmt.Sprintf("unknown auth command %q", args[0])}
	}
}

func (c *ctl) relays(ctx context.Context) error {
	conn, err := c.conn(config.TargetRelaygw)
	if err != nil {
		return err
	}
	resp, err := relaygwv1.NewRelayGatewayServiceClient(conn).GetRelayStatus(ctx, &relaygwv1.GetRelayStatusRequest{})
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.print(resp)
	}
	var rows [][]string
	for _, r := range resp.GetRelays() {
		rows = append(rows, []string{r.GetUrl(), strconv.FormatBool(r.GetConnected()), ts(r.GetConnectedSince()),
			ts(r.GetLastEventAt()), strconv.FormatInt(r.GetFailures(), 10), r.GetLastError()})
	}
	return c.table("RELAY\tCONNECTED\tSINCE\tLAST EVENT\tFAILURES\tLAST ERROR", rows)
}

func stateName(enum, prefix string) string { return strings.ToLower(strings.TrimPrefix(enum, prefix)) }

func ts(t *timestamppb.Timestamp) string {
	if t == nil || (t.GetSeconds() == 0 && t.GetNanos() == 0) {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}
