package pipeline

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"materializer/checkpoint"
	"materializer/conf"
	"materializer/pipeline/blobstore"
	"materializer/pipeline/compact"
	"materializer/pipeline/engine"
	"materializer/pipeline/flatten"
	"materializer/pipeline/nakadi"
	"materializer/pipeline/notify"
)

// eventTypes compiles the configured event types for the engine and creates
// their consumers (whose Durable the engine calls).
func (p *Pipeline) eventTypes() ([]engine.EventType, error) {
	var out []engine.EventType
	cfg := p.Config()
	for i := range cfg.EventTypes {
		et := &cfg.EventTypes[i]
		pet, consumer, err := p.compile(et)
		if err != nil {
			return nil, err
		}
		p.consumers[et.Name] = consumer
		out = append(out, pet)
	}
	return out, nil
}

// compile compiles one event type and creates its consumer.
func (p *Pipeline) compile(et *conf.EventType) (engine.EventType, *nakadi.Consumer, error) {
	pet, err := CompileEventType(et, p.csv)
	if err != nil {
		return pet, nil, err
	}
	cfg := NakadiConfig(p.Config().Nakadi, et.Name)
	cfg.FractionalSeconds, cfg.RetryFatal, cfg.Now, cfg.Logger = p.opts.FractionalSeconds, true, p.now, p.log
	cfg.Transport = p.transport
	cfg.Registerer = prometheus.WrapRegistererWith(prometheus.Labels{"subscription_event_type": et.Name}, p.reg)
	consumer, err := nakadi.New(cfg)
	if err != nil {
		return pet, nil, err
	}
	pet.Durable = consumer.Durable
	return pet, consumer, nil
}

// CompileEventType turns a validated config event type into the engine's.
func CompileEventType(et *conf.EventType, csv flatten.CSV) (engine.EventType, error) {
	path := func(s string) flatten.Path {
		p, _ := flatten.ParsePath(s) // validated by conf
		return p
	}
	ordering, err := compact.ParseOrdering(et.Ordering)
	if err != nil {
		return engine.EventType{}, err
	}
	m, err := flatten.Compile(et.TableSpecs(), csv)
	if err != nil {
		return engine.EventType{}, fmt.Errorf("event type %s: %w", et.Name, err)
	}
	out := engine.EventType{
		Name: et.Name, Ordering: ordering, EIDPath: path(et.EIDPath), OccurredPath: path(et.OccurredAtPath),
		Window:  compact.Window{Gap: et.SessionGap.Duration(), Max: et.SessionMax.Duration(), Retention: et.KeyRetention.Duration()},
		Mapping: m, Fingerprint: engine.Fingerprint(et.PartitionKey, et.OrderingKey, et.Ordering),
	}
	for _, k := range et.PartitionKey {
		out.PartitionKey = append(out.PartitionKey, path(k))
	}
	if ordering != compact.Arrival {
		out.OrderingKey = path(et.OrderingKey)
	}
	return out, nil
}

// CheckpointEventType is what a checkpoint manifest records of an event
// type's config: its state fingerprint and its tables' columns.
func CheckpointEventType(pet engine.EventType) checkpoint.EventType {
	et := checkpoint.EventType{Name: pet.Name, Fingerprint: pet.Fingerprint}
	for _, t := range pet.Mapping.Tables() {
		tab := checkpoint.Table{Name: t.Name}
		for _, col := range t.Columns {
			tab.Columns = append(tab.Columns, col.Name+":"+string(col.Type))
		}
		et.Tables = append(et.Tables, tab)
	}
	return et
}

// NakadiConfig is the client config of one event type's subscription (one
// per event type). The pipeline and `checkpoint restore` must agree on it,
// or a restore would reset another subscription's cursors.
func NakadiConfig(n conf.Nakadi, eventType string) nakadi.Config {
	return nakadi.Config{
		URL: n.URL, TokenFile: n.TokenFile, OwningApplication: n.OwningApplication, ConsumerGroup: n.ConsumerGroup,
		EventTypes: []string{eventType}, ReadFrom: n.ReadFrom, BatchLimit: n.BatchLimit,
		BatchFlushTimeout: n.BatchFlushTimeout.Duration(), MaxUncommittedEvents: n.MaxUncommittedEvents,
		CommitTimeout: n.CommitTimeout.Duration(), StatsInterval: n.StatsInterval.Duration(),
	}
}

// StoreOptions are the [storage] section's options for blobstore.Open (the
// file store and the checkpoint store use the same credentials).
func StoreOptions(s conf.Storage, log zerolog.Logger) blobstore.Options {
	return blobstore.Options{
		Region: s.Region, Endpoint: s.Endpoint, AccessKeyIDFile: s.AccessKeyIDFile,
		SecretAccessKeyFile: s.SecretAccessKeyFile, SSE: s.SSE, KMSKeyID: s.SSEKMSKeyID, Logger: log,
	}
}

// OpenCheckpointStore opens the remote checkpoint store: s3:// uses the
// [storage] section's region, endpoint, credentials and encryption.
func OpenCheckpointStore(cfg *conf.Config, url string, log zerolog.Logger) (blobstore.Store, error) {
	return blobstore.Open(context.Background(), url, StoreOptions(cfg.Storage, log))
}

// NotifyOptions are the [notify] section's options (the pipeline's
// publisher and `materializer notices` connect alike).
func NotifyOptions(n conf.Notify, log zerolog.Logger) notify.Options {
	return notify.Options{
		URLs: n.NATSURL, CredsFile: n.CredentialsFile, TLSCAFile: n.TLSCAFile, TLSCertFile: n.TLSCertFile,
		TLSKeyFile: n.TLSKeyFile, SubjectPrefix: n.SubjectPrefix, Stream: n.Stream,
		DuplicateWindow: n.DuplicateWindow.Duration(), Replicas: n.StreamReplicas, AckTimeout: n.PublishTimeout.Duration(),
		Logger: log,
	}
}

// connectNotify connects a notice publisher.
func (p *Pipeline) connectNotify(ctx context.Context, n conf.Notify, reg prometheus.Registerer) (*notify.Publisher, error) {
	opts := NotifyOptions(n, p.log)
	opts.Registerer, opts.Now = reg, p.now
	return notify.Connect(ctx, opts)
}
