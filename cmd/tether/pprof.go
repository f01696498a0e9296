package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/tether-fabric/tether/internal/netaddr"
)

// servePprof serves Go's profiles (/debug/pprof/) on addr, a loopback
// address, until ctx ends. It is the hidden --debug-pprof flag of 'tether
// leaf' and 'tether hub', for finding where an edge's memory and CPU go;
// profiles name internals, so it never listens beyond the host.
func servePprof(ctx context.Context, addr string, log *slog.Logger) error {
	host, _, err := netaddr.Split(addr)
	if err != nil {
		return fmt.Errorf("--debug-pprof: %w", err)
	}
	if !netaddr.IsLoopback(host) {
		return fmt.Errorf("--debug-pprof: %q is not a loopback address (want e.g. 127.0.0.1:6060)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--debug-pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving Go profiles", "pprof", "http://"+ln.Addr().String()+"/debug/pprof/")
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server stopped", "err", err)
		}
	}()
	return nil
}
