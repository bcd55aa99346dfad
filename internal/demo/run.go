package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// supervise runs once the daemon started: it prints the banner, runs the
// generator and the summaries, and turns the first stop (Ctrl-C, SIGTERM
// or -duration) into a clean stop: finish, then SIGTERM to the daemon. A
// second stop signal goes to the daemon at once. A generator failure is
// stored in *pubErr and stops the daemon.
func (d *demo) supervise(ctx context.Context, signals <-chan os.Signal, toDaemon chan<- os.Signal, pubErr *error) {
	d.pinAdmin()
	report := newDemoReport(d)
	defer report.close()
	report.banner()

	var wg sync.WaitGroup
	defer wg.Wait()
	genCtx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	repCtx, stopReport := context.WithCancel(ctx)
	defer stopReport()
	genDone, genStopped := make(chan error, 1), make(chan struct{})
	wg.Go(func() { genDone <- d.pub.Run(genCtx); close(genStopped) })
	stopGenerator := func() { stopGen(); <-genStopped }
	wg.Go(func() { report.Run(repCtx) })

	var timeout <-chan time.Time
	if d.duration > 0 {
		timeout = time.After(d.duration)
	}
	finCtx, cancelFinish := context.WithCancel(ctx)
	defer cancelFinish()
	finished := make(chan struct{})
	stopping, forwarded := false, false
	finish := func() {
		stopping = true
		stopReport()
		wg.Go(func() { report.finish(finCtx, stopGenerator); close(finished) })
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timeout:
			if !stopping {
				finish()
			}
		case err := <-genDone:
			if err != nil {
				*pubErr = err
				send(toDaemon, syscall.SIGTERM)
				forwarded, stopping = true, true
			}
		case <-finished:
			finished = nil
			if !forwarded {
				forwarded = true
				send(toDaemon, syscall.SIGTERM)
			}
		case sig := <-signals:
			switch {
			case isHangup(sig):
				send(toDaemon, sig)
			case !stopping:
				fmt.Fprintf(d.io.out, "\n%s: stopping cleanly (Ctrl-C again stops at once)\n", sig)
				finish()
			default:
				cancelFinish()
				stopGen()
				forwarded = true
				send(toDaemon, sig)
			}
		}
	}
}

// send forwards a signal without ever blocking (the channel is buffered;
// the daemon needs no more than a few).
func send(ch chan<- os.Signal, sig os.Signal) {
	select {
	case ch <- sig:
	default:
	}
}

// pinAdmin writes the admin port the daemon picked into the effective
// config when it asked for port 0, so that `status -config` finds it.
func (d *demo) pinAdmin() {
	_, port, err := net.SplitHostPort(d.cfg.Daemon.AdminListen)
	if err != nil || port != "0" {
		return
	}
	text, err := os.ReadFile(d.cfgPath)
	if err == nil {
		addr := d.base[len("http://"):]
		text = []byte(setTOMLKey(string(text), "daemon", "admin_listen", strconv.Quote(addr)))
		err = os.WriteFile(d.cfgPath, text, 0o644)
	}
	if err != nil {
		fmt.Fprintf(d.io.err, "materializer demo: %v\n", err)
	}
}
