package demo

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"materializer/conf"
)

// supervise runs while the pipeline runs (done closes when it returned):
// it prints the banner, runs the generator and the summaries, and turns the
// first stop (Ctrl-C, SIGTERM or -duration) into a clean stop: finish,
// then stop the pipeline. A second stop signal stops the pipeline at once.
// A generator failure stops the pipeline and is returned.
func (d *demo) supervise(done <-chan struct{}, stopPipe func()) error {
	d.pinAdmin()
	report := newReport(d)
	defer report.close()
	report.banner()

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	genCtx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	repCtx, stopReport := context.WithCancel(ctx)
	defer stopReport()
	genDone, genStopped := make(chan error, 1), make(chan struct{})
	wg.Go(func() { genDone <- d.pub.Run(genCtx); close(genStopped) })
	stopGenerator := func() { stopGen(); <-genStopped }
	wg.Go(func() { report.Run(repCtx) })

	var timeout <-chan time.Time
	if d.Duration > 0 {
		timeout = time.After(d.Duration)
	}
	finCtx, cancelFinish := context.WithCancel(ctx)
	defer cancelFinish()
	finished := make(chan struct{})
	stopping := false
	finish := func() {
		stopping = true
		stopReport()
		wg.Go(func() { report.finish(finCtx, stopGenerator); close(finished) })
	}
	for {
		select {
		case <-done:
			cancelFinish()
			return nil
		case <-timeout:
			if !stopping {
				finish()
			}
		case err := <-genDone:
			if err != nil {
				stopPipe()
				return err
			}
		case <-finished:
			finished = nil
			stopPipe()
		case sig := <-d.Signals:
			switch {
			case sig == syscall.SIGHUP:
				d.reload()
			case !stopping:
				fmt.Fprintf(d.Out, "\n%s: stopping cleanly (Ctrl-C again stops at once)\n", sig)
				finish()
			default:
				cancelFinish()
				stopGen()
				stopPipe()
			}
		}
	}
}

// reload applies the effective config file again (SIGHUP), as `run` does.
func (d *demo) reload() {
	cfg, err := conf.Load(d.cfgPath, conf.ForRun)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = d.pipe.Reload(ctx, cfg)
		cancel()
	}
	if err != nil {
		fmt.Fprintf(d.Err, "materializer demo: reload: %v\n", err)
		return
	}
	fmt.Fprintf(d.Out, "configuration reloaded from %s\n", d.show(d.cfgPath))
}

// pinAdmin writes the admin port the pipeline's admin API picked into the
// effective config when it asked for port 0, so that `status -config`
// finds it.
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
		fmt.Fprintf(d.Err, "materializer demo: %v\n", err)
	}
}
