package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/cloudjs"
	"github.com/tether-fabric/tether/leaf"
)

func newSvcCmd(d *deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "svc",
		Short: "Named services across the fabric: list and call edge services",
		Long: `Edge services are nats.go micro services (or plain responders on
svc.<service>.<endpoint>) at an edge's local port. An edge exposes the ones
the access policy lists (see 'tether policy'); cloud callers reach them by
name on edges.<edge>.svc.<service>.<endpoint>, where the edge's gateway
enforces who may call what, at which rate, and records every call (see
'tether audit'). 'tether policy apply' hands every edge its gateway
configuration (an edge offline then gets it when it links).`,
		Args: exactArgs(0, "a command"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newSvcLsCmd(d), newSvcCallCmd(d))
	return cmd
}

// asFlag lets a dev command act as another user of the dev store.
func asCreds(cf *connFlags, as string) error {
	if as == "" {
		return nil
	}
	if !cf.dev {
		return usageError{errors.New("--as needs --dev (elsewhere use --creds)")}
	}
	cf.creds = filepath.Join(cf.devDir, "store", "users", as+".creds")
	return nil
}

func newSvcLsCmd(d *deps) *cobra.Command {
	var cf connFlags
	var edge string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List every exposed service across the fleet",
		Long: `List the services the edges expose: edge, name, version, endpoints, running
instances, whether the edge is online, and when the cloud last heard of it.
Programs can ask the same on the CLOUD subject ` + contract.ServiceList + ` (JSON).`,
		Example: `  tether svc ls --dev
  tether svc ls --server tls://hub:4222 --creds cloud.creds --tlsca ca.pem --edge plant-7 --json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			edge, cf.edge = cf.edge, ""
			refused := newRefusals()
			nc, err := cf.connect(refused.handler(d.stderr))
			if err != nil {
				return err
			}
			defer nc.Close()
			req, _ := json.Marshal(contract.ServiceListRequest{Edge: edge})
			resp, refusal, err := refused.request(nc, &nats.Msg{Subject: contract.ServiceList, Data: req}, 10*time.Second)
			if refusal != nil {
				err = fmt.Errorf("refused by the server (this user may not ask %s): %w", contract.ServiceList, refusal)
			}
			if err != nil {
				return fmt.Errorf("ask the hubs for the service table (%s): %w", contract.ServiceList, err)
			}
			var rep contract.ServiceListReply
			if err := json.Unmarshal(resp.Data, &rep); err != nil {
				return fmt.Errorf("service table: %w", err)
			}
			if rep.Error != "" {
				return fmt.Errorf("service table: %s", rep.Error)
			}
			if asJSON {
				enc := json.NewEncoder(d.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep.Services)
			}
			tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EDGE\tSERVICE\tVERSION\tENDPOINTS\tINSTANCES\tEDGE STATE\tLAST SEEN")
			for _, s := range rep.Services {
				state := "offline"
				if s.Online {
					state = "online"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Edge, s.Name, orDash(s.Version), strings.Join(s.Endpoints, ","),
					s.Instances, state, s.LastSeen.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	// connFlags' --edge means a dev edge's port; here it filters.
	cmd.Flags().Lookup("edge").Usage = "only this edge's services"
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newSvcCallCmd(d *deps) *cobra.Command {
	var cf connFlags
	var as string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "call EDGE/SERVICE.ENDPOINT [DATA]",
		Short: "Call an edge service by name",
		Long: `Call SERVICE's ENDPOINT on EDGE as the connected cloud user and print the
answer. An offline edge, an unknown service or a call the policy does not
allow fails at once, saying which (with the micro error code: 503, 404, 403;
429 when over the grant's rate or calls in flight).`,
		Example: `  tether svc call --dev dev-a/echo.echo hello
  tether svc call --dev --as viewer dev-a/sensor.read`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("%s: want EDGE/SERVICE.ENDPOINT [DATA]", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			edge, rest, ok1 := strings.Cut(args[0], "/")
			service, endpoint, ok2 := strings.Cut(rest, ".")
			if !ok1 || !ok2 || edge == "" || service == "" || endpoint == "" || strings.ContainsAny(args[0], " *>") {
				return usageError{fmt.Errorf("target %q: want EDGE/SERVICE.ENDPOINT, e.g. dev-a/echo.echo", args[0])}
			}
			if err := asCreds(&cf, as); err != nil {
				return err
			}
			// A call the caller's role may not make is refused by the hub
			// (a permissions violation, reported asynchronously): fail at
			// once instead of waiting for the timeout.
			subject := contract.CloudServiceSubject(edge, service, endpoint)
			refused := newRefusals()
			nc, err := cf.connect(refused.handler(d.stderr))
			if err != nil {
				return err
			}
			defer nc.Close()
			m := nats.NewMsg(subject)
			if len(args) == 2 {
				m.Data = []byte(args[1])
			}
			resp, refusal, err := refused.request(nc, m, timeout)
			if refusal != nil {
				return fmt.Errorf("call %s: not allowed: refused by the hub (code %d): the access policy does not let this user call %s (or receive its answer): %w", args[0], contract.CodeDenied, subject, refusal)
			}
			if err != nil {
				return fmt.Errorf("call %s: %w", args[0], err)
			}
			if code := resp.Header.Get(contract.HeaderServiceErrorCode); code != "" {
				return fmt.Errorf("call %s: %s (code %s)", args[0], resp.Header.Get(contract.HeaderServiceError), code)
			}
			_, err = fmt.Fprintln(d.stdout, string(resp.Data))
			return err
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&as, "as", "", "with --dev: call as this user of the dev store (e.g. viewer)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	return cmd
}

func newAuditCmd(d *deps) *cobra.Command {
	var cf connFlags
	var edge, service, caller string
	var since time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The audit trail of service calls",
		Long: `Print the audit records of service calls: time, caller (name, account,
user), edge, service, endpoint, status and code, latency at the edge's
gateway, request and response sizes. Records are written by the serving
edge's gateway, buffered on its disk like telemetry and stored exactly once
in the CLOUD stream TELEMETRY (edges.<edge>.telemetry.` + contract.AuditToken + `.>).`,
		Example: `  tether audit --dev
  tether audit --dev --edge dev-a --service echo --caller viewer --since 1h --json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A user who may not read the audit trail (no telemetry
			// grant) is refused at the consumer's creation: say so at once.
			refused := newRefusals()
			nc, err := cf.connect(refused.handler(d.stderr))
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.NewWithDomain(nc, contract.CloudDomain)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancelCause(cmd.Context())
			defer cancel(nil)
			go func() {
				select {
				case err := <-refused:
					cancel(fmt.Errorf("refused by the server (this user may not read the audit trail): %w", err))
				case <-ctx.Done():
				}
			}()
			// A consumer of the user's own (a reader may touch no other),
			// in memory, gone a minute after this command stops reading.
			cc := jetstream.ConsumerConfig{
				FilterSubject:     contract.CloudAuditFilter(edge, service),
				AckPolicy:         jetstream.AckNonePolicy,
				InactiveThreshold: time.Minute,
				MemoryStorage:     true,
				Replicas:          1,
			}
			if since > 0 {
				start := time.Now().Add(-since)
				cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
			}
			cons, err := cloudjs.CreateOwnedConsumer(ctx, js, contract.TelemetryStream, cloudjs.OwnerOf(nc), cc)
			if err != nil {
				if cause := context.Cause(ctx); cause != nil && cmd.Context().Err() == nil {
					err = cause
				}
				return fmt.Errorf("read the audit trail: %w", err)
			}
			defer func() {
				dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = js.DeleteConsumer(dctx, contract.TelemetryStream, cons.CachedInfo().Name)
			}()
			info, err := cons.Info(ctx)
			if err != nil {
				return fmt.Errorf("read the audit trail: %w", err)
			}
			var recs []contract.AuditRecord
			for left := info.NumPending; left > 0; left-- {
				m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
				if err != nil {
					return fmt.Errorf("read the audit trail: %w", err)
				}
				batch, _ := contract.DecodeAuditRecords(m.Data()) // a malformed line ends its message
				for _, r := range batch {
					if caller == "" || r.Caller.Name == caller {
						recs = append(recs, r)
					}
				}
			}
			// Each edge's records arrive in order, but edges forward on
			// their own: the trail reads in the order the calls were served.
			slices.SortStableFunc(recs, func(a, b contract.AuditRecord) int { return a.Time.Compare(b.Time) })
			if asJSON {
				enc := json.NewEncoder(d.stdout)
				if recs == nil {
					recs = []contract.AuditRecord{}
				}
				return enc.Encode(recs)
			}
			tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tEDGE\tCALL\tCALLER\tSTATUS\tLATENCY\tREQ\tRESP\tERROR")
			for _, r := range recs {
				status := r.Status
				if r.Code != 0 {
					status += " " + strconv.Itoa(r.Code)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s.%s\t%s %s\t%s\t%s\t%d\t%d\t%s\n", r.Time.UTC().Format(time.RFC3339Nano), r.Edge, r.Service, r.Endpoint,
					r.Caller.Kind, r.Caller.Name, status, (time.Duration(r.LatencyUS) * time.Microsecond).String(), r.ReqBytes, r.RespBytes, orDash(r.Error))
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	// connFlags' --edge means a dev edge's port; here it filters.
	f.Lookup("edge").Usage = "only calls served by this edge (with --dev too)"
	f.StringVar(&service, "service", "", "only calls of this service")
	f.StringVar(&caller, "caller", "", "only calls by this caller (user or edge name)")
	f.DurationVar(&since, "since", 0, "only calls in this last duration (e.g. 1h)")
	f.BoolVar(&asJSON, "json", false, "print JSON lines")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		edge, cf.edge = cf.edge, ""
		return nil
	}
	return cmd
}

// printGatewayStatus prints the edge gateway's part of 'tether leaf status'.
func printGatewayStatus(w io.Writer, g *leaf.GatewayStatus) {
	if g == nil {
		return
	}
	fmt.Fprintf(w, "gateway (config %s): %d calls: %d ok, %d denied, %d rate limited, %d no such service, %d errors; %d in flight\n",
		orDash(g.Config), g.Calls, g.OK, g.Denied, g.Limited, g.NoService, g.Errors, g.InFlight)
	if g.LastError != "" {
		fmt.Fprintf(w, "gateway last error: %s\n", g.LastError)
	}
	if len(g.Services) == 0 {
		fmt.Fprintf(w, "services exposed: none running (exposed: %s)\n", orDash(strings.Join(g.Exposed, ",")))
		return
	}
	for _, s := range g.Services {
		fmt.Fprintf(w, "service %s %s: endpoints %s, %d instance(s)\n", s.Name, orDash(s.Version), strings.Join(s.Endpoints, ","), s.Instances)
	}
}
