package notify

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureStream creates the stream if it is missing (subjects {prefix}.>,
// file storage, DuplicateWindow, MaxAge, Replicas) or checks that the
// existing one captures {prefix}.>: ErrStreamMismatch if not. A stream
// that de-duplicates for less than an hour, or keeps messages in memory,
// is used with a warning. Publish calls it once by itself; call it at
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
	p.ensured = true
	return nil
}

func (p *Publisher) ensure(ctx context.Context) error {
	p.ensureMu.Lock()
	done := p.ensured
	p.ensureMu.Unlock()
	if done {
		return nil
	}
	return p.EnsureStream(ctx)
}

func (p *Publisher) forget() {
	p.ensureMu.Lock()
	p.ensured = false
	p.ensureMu.Unlock()
}

func (p *Publisher) ensureStream(ctx context.Context) error {
	s, err := p.js.Stream(ctx, p.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = p.js.CreateStream(ctx, p.streamConfig())
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created by another daemon meanwhile
			s, err = p.js.Stream(ctx, p.opts.Stream)
		} else if err == nil {
			p.log.Info().Str("stream", p.opts.Stream).Str("subjects", p.subjects()).
				Dur("duplicate_window", p.opts.DuplicateWindow).Msg("created JetStream stream")
			return nil
		}
	}
	if err != nil {
		return p.streamError(err)
	}
	cfg := s.CachedInfo().Config
	err = p.checkStream(cfg)
	if !errors.Is(err, ErrStreamMismatch) {
		return err
	}
	// The stream exists for other subjects (another prefix, or the prefix
	// changed by a reload): add ours rather than fail every notice.
	cfg.Subjects = append(cfg.Subjects, p.subjects())
	if _, uerr := p.js.UpdateStream(ctx, cfg); uerr != nil {
		return fmt.Errorf("%w (adding the subject failed: %v)", err, uerr)
	}
	p.log.Info().Str("stream", cfg.Name).Strs("subjects", cfg.Subjects).Msg("added the notice subject to the existing JetStream stream")
	return nil
}

func (p *Publisher) streamError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code >= 400 && apiErr.Code < 500 {
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

func (p *Publisher) checkStream(cfg jetstream.StreamConfig) error {
	covered := false
	for _, s := range cfg.Subjects {
		covered = covered || subjectCovers(s, p.subjects())
	}
	if !covered {
		return fmt.Errorf("%w: stream %s exists with subjects %q, which do not capture %q: "+
			"add that subject to the stream, or change notify.subject_prefix / notify.stream",
			ErrStreamMismatch, cfg.Name, cfg.Subjects, p.subjects())
	}
	if cfg.Duplicates < MinDuplicateWindow {
		p.log.Warn().Str("stream", cfg.Name).Stringer("duplicate_window", cfg.Duplicates).
			Msg("stream de-duplicates for less than an hour: a notice repeated after a long outage may be stored twice")
	}
	if cfg.Storage != jetstream.FileStorage {
		p.log.Warn().Str("stream", cfg.Name).Msg("stream keeps notices in memory: a NATS restart loses them")
	}
	return nil
}
