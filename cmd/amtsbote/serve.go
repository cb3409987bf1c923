package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/amtsbote/amtsbote/internal/buildstamp"
	"github.com/amtsbote/amtsbote/internal/fileperm"
	"github.com/amtsbote/amtsbote/internal/procs"

	"github.com/amtsbote/amtsbote/config"
	"github.com/amtsbote/amtsbote/gateway"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("AMTSBOTE_CONFIG"), "YAML configuration file (optional)")
	listen := fs.String("listen", "", "HTTP address, overrides the configuration (e.g. 127.0.0.1:8080)")
	dataDir := fs.String("data", "", "data folder, overrides the configuration")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	cfg, err := config.Load(*cfgPath, os.Environ())
	if err != nil {
		fmt.Fprintln(stderr, "amtsbote:", err)
		return 2
	}
	// Unlike a file others may read (warned about below), one others may write is
	// refused: whoever can log in could set her own admin_token or office token,
	// or point the trust store at a folder of her own, and the next start or
	// restart would take it. Until an audit (2026-12-06) a configuration of mode
	// 0666 started without a word when it held no token yet.
	if *cfgPath != "" {
		if err := fileperm.WritableByOthers(*cfgPath); err != nil {
			fmt.Fprintln(stderr, "amtsbote: configuration:", err)
			return 2
		}
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	// The file holds every client's token: world-readable, any local user could
	// call /v1/admin or read an office's packages. Said at each start, not refused,
	// so that an upgrade does not stop a running installation.
	if w := config.ExposedSecretsWarning(*cfgPath, &cfg); w != "" {
		log.Warn(w)
	}
	// SIGHUP is caught before the gateway starts, not after its "serving on" lines:
	// a reload asked for once the gateway says it serves must not be lost (in that
	// gap a SIGHUP ended the process, or under nohup was ignored without a word);
	// one that comes during the start is served once it is done.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// One Go processor more than CPUs, so that a commit's flush does not idle a
	// CPU (internal/procs).
	log.Debug("go processors", "gomaxprocs", procs.SpareForFlushes(), "cpus", procs.CPUs())
	g, err := gateway.Start(ctx, cfg, log)
	if err != nil {
		// The cause goes to stderr as a plain line too: a log handler at level error
		// or json format must not be the only place an operator can find it.
		log.Error("start failed", "err", err)
		fmt.Fprintln(stderr, "amtsbote: cannot start:", err)
		return 1
	}
	fmt.Fprintf(stdout, "amtsbote %s serving on %s\n", buildstamp.Read(), g.URL())
	if u := g.XTAURL(); u != "" {
		fmt.Fprintf(stdout, "  xta:                %s\n", u)
	}
	if g.PKI != nil {
		fmt.Fprintf(stdout, "  data folder:        %s\n", g.Config.DataDir)
		fmt.Fprintf(stdout, "  gateway cert:       %s\n", g.PKI.GatewayCert)
		fmt.Fprintf(stdout, "  demo portal key:    %s (cert %s)\n", g.PKI.PortalKey, g.PKI.PortalCert)
		fmt.Fprintf(stdout, "  trust store:        %s\n", g.PKI.TrustDir)
		fmt.Fprintf(stdout, "  dev credentials:    %s\n", g.CredsFile)
		fmt.Fprintf(stdout, "  web mailbox:        %s%s/ (user %q, password in the dev credentials)\n", g.URL(), gateway.MailboxPath, gateway.DemoMailboxUser)
		fmt.Fprintf(stdout, "  try: amtsbote submit -url %s -data %s\n", g.URL(), shellQuote(g.Config.DataDir))
	}
	for {
		select {
		case <-hup:
			_ = g.ReloadLogged("SIGHUP")
			continue
		case err := <-g.Done():
			log.Error("http server stopped", "err", err)
			_ = g.Shutdown(context.Background())
			return 1
		case <-ctx.Done():
		}
		break
	}
	log.Info("shutting down; draining requests and deliveries")
	sctx, cancel := context.WithTimeout(context.Background(), g.Config.HTTP.ShutdownTimeout)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}
