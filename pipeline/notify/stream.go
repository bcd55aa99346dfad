package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// recheckEvery is how often Publish checks the stream's settings again,
// so what was reported at start follows an operator's fix (or a change).
const recheckEvery = 10 * time.Minute

// Error codes of the JetStream API that Publish treats specially.
const (
	// errCodeNoPeers: the cluster has fewer servers than the stream's
	// replicas ("no suitable peers for placement"; a server that is only
	// down still counts).
	errCodeNoPeers jetstream.ErrorCode = 10005
	// errCodeReplicasNotSupported: more than one replica asked of a
	// server that is not part of a cluster.
	errCodeReplicasNotSupported jetstream.ErrorCode = 10074
)

// EnsureStream creates the stream if it is missing (subjects {prefix}.>,
// file storage, DuplicateWindow, MaxAge, Replicas), or checks the existing
// one: a missing {prefix}.> is added; a stream where no notice can be
// stored (sealed, a mirror, no acks) is refused with ErrStreamMismatch;
// other settings that differ from the options (fewer replicas, a shorter
// duplicate window, memory storage, a retention that removes consumed
// notices) are logged as warnings and shown in
// materializer_notify_stream_mismatch, and the stream is used as it is.
// Publish calls it once by itself and every ten minutes after; call it at
// start-up to fail fast on a mismatch.
func (p *Publisher) EnsureStream(ctx context.Context) error {
	p.ensureMu.Lock()
	defer p.ensureMu.Unlock()
	if err := p.usable(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.AckTimeout)
	defer cancel()
	if err := p.ensureStream(ctx); err != nil {
		return err
	}
	p.ensured, p.checkedAt = true, p.opts.Now()
	return nil
}

// ensure runs EnsureStream before the first publish, after the stream went
// missing, and every recheckEvery. A recheck that cannot reach the stream
// does not hold notices back: the stream was fine a moment ago.
func (p *Publisher) ensure(ctx context.Context) error {
	p.ensureMu.Lock()
	done, at := p.ensured, p.checkedAt
	p.ensureMu.Unlock()
	if done && p.opts.Now().Sub(at) < recheckEvery {
		return nil
	}
	err := p.EnsureStream(ctx)
	if done && err != nil && !errors.Is(err, ErrPermanent) {
		p.ensureMu.Lock()
		p.checkedAt = p.opts.Now()
		p.ensureMu.Unlock()
		return nil
	}
	return err
}

func (p *Publisher) forget() {
	p.ensureMu.Lock()
	p.ensured = false
	p.ensureMu.Unlock()
}

func (p *Publisher) ensureStream(ctx context.Context) error {
	s, err := p.js.Stream(ctx, p.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		want := p.streamConfig()
		s, err = p.js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created by another daemon meanwhile
			s, err = p.js.Stream(ctx, p.opts.Stream)
		} else if err == nil {
			p.log.Info().Str("stream", p.opts.Stream).Str("subjects", p.subjects()).Int("replicas", want.Replicas).
				Stringer("duplicate_window", p.opts.DuplicateWindow).Msg("created JetStream stream")
			p.report(want, nil)
			return nil
		}
	}
	if err != nil {
		return p.streamError(err)
	}
	cfg := s.CachedInfo().Config
	findings, refuse := inspectStream(cfg, p.opts)
	if refuse == nil {
		if refuse = p.coverSubjects(ctx, &cfg); refuse != nil {
			findings = append(findings, finding{setting: "subjects"})
		}
	}
	p.report(cfg, findings)
	return refuse
}

// coverSubjects adds {prefix}.> to a stream that exists for other subjects
// (another prefix, or the prefix changed by a reload) rather than fail
// every notice; ErrStreamMismatch if that fails.
func (p *Publisher) coverSubjects(ctx context.Context, cfg *jetstream.StreamConfig) error {
	for _, s := range cfg.Subjects {
		if subjectCovers(s, p.subjects()) {
			return nil
		}
	}
	err := fmt.Errorf("%w: stream %s exists with subjects %q, which do not capture %q: "+
		"add that subject to the stream, or change notify.subject_prefix / notify.stream",
		ErrStreamMismatch, cfg.Name, cfg.Subjects, p.subjects())
	cfg.Subjects = append(cfg.Subjects, p.subjects())
	if _, uerr := p.js.UpdateStream(ctx, *cfg); uerr != nil {
		return fmt.Errorf("%w (adding the subject failed: %v)", err, uerr)
	}
	p.log.Info().Str("stream", cfg.Name).Strs("subjects", cfg.Subjects).Msg("added the notice subject to the existing JetStream stream")
	return nil
}

// report shows the stream's settings in the metrics and logs the findings
// when they differ from the last check's (a recheck repeats nothing).
func (p *Publisher) report(cfg jetstream.StreamConfig, findings []finding) {
	p.metrics.streamReplicas.Set(float64(max(cfg.Replicas, 1)))
	found := map[string]bool{}
	var text strings.Builder
	for _, f := range findings {
		found[f.setting] = true
		text.WriteString(f.setting + ":" + f.msg + "\n")
	}
	for _, s := range streamSettings {
		p.metrics.streamMismatch.WithLabelValues(s).Set(map[bool]float64{true: 1}[found[s]])
	}
	if text.String() == p.lastFindings {
		return
	}
	p.lastFindings = text.String()
	if cfg.Replicas > p.opts.Replicas {
		p.log.Info().Str("stream", cfg.Name).Int("replicas", cfg.Replicas).Int("stream_replicas", p.opts.Replicas).
			Msg("the stream has more replicas than notify.stream_replicas; it is used as it is")
	}
	for _, f := range findings {
		if f.msg != "" {
			p.log.Warn().Str("stream", cfg.Name).Str("setting", f.setting).Msg(f.msg)
		}
	}
}

func (p *Publisher) streamError(err error) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("%w: stream %s: %w", ErrUnavailable, p.opts.Stream, err)
	}
	switch apiErr.ErrorCode {
	case errCodeNoPeers:
		return permanent(fmt.Errorf("%w: stream %s: notify.stream_replicas = %d needs a NATS cluster of at least %d servers: %w",
			ErrConfig, p.opts.Stream, p.opts.Replicas, p.opts.Replicas, err))
	case errCodeReplicasNotSupported:
		return permanent(fmt.Errorf("%w: stream %s: notify.stream_replicas = %d needs a NATS cluster, the server is standalone: %w",
			ErrConfig, p.opts.Stream, p.opts.Replicas, err))
	}
	switch {
	case apiErr.Code >= 400 && apiErr.Code < 500:
		return permanent(fmt.Errorf("%w: stream %s: %w", ErrConfig, p.opts.Stream, err))
	}
	return fmt.Errorf("%w: stream %s: %w", ErrUnavailable, p.opts.Stream, err)
}

func (p *Publisher) subjects() string { return p.opts.SubjectPrefix + ".>" }

func (p *Publisher) streamConfig() jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:        p.opts.Stream,
		Description: "materializer delivery notices, one per stored file",
		Subjects:    []string{p.subjects()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  p.opts.DuplicateWindow,
		Replicas:    p.opts.Replicas,
	}
	if p.opts.MaxAge > 0 {
		cfg.MaxAge = p.opts.MaxAge
	}
	return cfg
}
