package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// service is what `run` and `load` share as systemd services: the main
// component (the pipeline, the loader) and the admin server each run on a
// goroutine; systemd hears READY=1 once the component is ready, STATUS= on
// every change and WATCHDOG=1 while it is healthy; SIGHUP reloads; a stop
// signal gives the component daemon.drain_timeout to stop, which a second
// stop signal cuts short.
type service struct {
	name         string // the main component, in logs and errors
	log          zerolog.Logger
	sd           *sdNotifier
	admin        *adminServer
	drainTimeout time.Duration
	stopStatus   string // STATUS= while stopping

	runMain  func(context.Context) error
	isReady  func() bool
	health   func() error
	onHangup func()
	// onReady logs a change of readiness and returns its STATUS= text.
	onReady func(ready bool) string

	readySent atomic.Bool
	stopping  atomic.Bool
}

// serviceSignals subscribes to the stop signals (SIGTERM, SIGINT) and to
// SIGHUP (reload). Subscribe before anything starts, so that an early stop
// is not lost.
func serviceSignals() (<-chan os.Signal, func()) {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	return signals, func() { signal.Stop(signals) }
}

// notify sends systemd notify states, logging (not failing) on error.
func (s *service) notify(states ...string) {
	if err := s.sd.Send(states...); err != nil {
		s.log.Warn().Err(err).Strs("states", states).Msg("sd_notify failed")
	}
}

// task is a goroutine whose end and error can be awaited more than once.
type task struct {
	done chan struct{}
	err  error
}

func goTask(f func() error) *task {
	t := &task{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.err = f()
	}()
	return t
}

// serve runs the main component, the admin server and the supervisor until
// a stop signal or a component failure, then stops in two phases: the main
// component gets daemon.drain_timeout to stop, then the admin server stops.
// It returns after every goroutine exited, except when the stop overran its
// budget: then it returns at once and the process exits regardless.
func (s *service) serve(signals <-chan os.Signal) error {
	mctx, stopMain := context.WithCancel(context.Background())
	defer stopMain()
	actx, stopAdmin := context.WithCancel(context.Background())
	defer stopAdmin()
	main := goTask(func() error { return s.runMain(mctx) })
	admin := goTask(func() error { return s.admin.Run(actx) })
	super := goTask(func() error { s.supervise(actx); return nil })

	cause := s.waitForStop(signals, main, admin)
	start := time.Now()
	s.stopping.Store(true)
	s.admin.SetDraining()
	s.notify("STOPPING=1", "STATUS="+s.stopStatus)
	stopMain()
	if err := s.drain(signals, main); err != nil {
		stopAdmin()
		<-admin.done
		return err
	}
	if cause == nil && main.err != nil {
		cause = fmt.Errorf("%s: %w", s.name, main.err)
	}
	s.log.Info().Str("took", time.Since(start).Round(time.Millisecond).String()).Msg(s.name + " drained")
	stopAdmin()
	<-admin.done
	<-super.done
	return cause
}

// waitForStop handles SIGHUP until a stop signal (nil) or until the main
// component or the admin server ends on its own (the error).
func (s *service) waitForStop(signals <-chan os.Signal, main, admin *task) error {
	for {
		select {
		case sig := <-signals:
			if isHangup(sig) {
				s.onHangup()
				continue
			}
			s.log.Info().Str("signal", sig.String()).Str("budget", s.drainTimeout.String()).Msg("stopping")
			return nil
		case <-main.done:
			s.log.Error().Err(safeErr(main.err)).Msg(s.name + " stopped on its own")
			return stoppedError(s.name, main.err)
		case <-admin.done:
			s.log.Error().Err(admin.err).Msg("admin server stopped on its own")
			return stoppedError("admin server", admin.err)
		}
	}
}

func stoppedError(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%s stopped unexpectedly", what)
	}
	return err
}

// drain waits for the main component to stop within the budget; a second
// stop signal gives up waiting.
func (s *service) drain(signals <-chan os.Signal, main *task) error {
	timer := time.NewTimer(s.drainTimeout)
	defer timer.Stop()
	for {
		select {
		case <-main.done:
			return nil
		case <-timer.C:
			return fmt.Errorf("the %s did not stop within daemon.drain_timeout (%s)", s.name, s.drainTimeout)
		case sig := <-signals:
			if !isHangup(sig) {
				return fmt.Errorf("second signal (%s) while stopping: not waiting for the %s", sig, s.name)
			}
		}
	}
}

// supervise reports readiness to systemd (READY=1 the first time, STATUS=
// on every change) and feeds the watchdog while the main component is
// healthy.
func (s *service) supervise(ctx context.Context) {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	var watchdog <-chan time.Time
	if iv := s.sd.WatchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		watchdog = t.C
	}
	ready := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			if r := s.isReady(); r != ready && !s.stopping.Load() {
				ready = r
				s.readyChanged(r)
			}
		case <-watchdog:
			if err := s.health(); err != nil {
				s.log.Error().Err(err).Msg("unhealthy: not feeding the systemd watchdog")
				continue
			}
			s.notify("WATCHDOG=1")
		}
	}
}

func (s *service) readyChanged(ready bool) {
	status := "STATUS=" + s.onReady(ready)
	if ready {
		s.log.Info().Msg("ready")
		if s.readySent.CompareAndSwap(false, true) {
			s.notify("READY=1", status)
			return
		}
	}
	s.notify(status)
}
