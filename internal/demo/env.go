package demo

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"materializer/conf"
	"materializer/pipeline/nakadi/emulator"
)

// marker marks a directory the demo made, so that it may clear it.
const marker = ".materializer-demo"

// partitions is the partition count of the emulator's event types.
const partitions = 4

// prepareDir makes dir empty but for the marker: a directory the demo
// made before (it holds the marker) is cleared, an empty or missing one is
// created, anything else is refused. Every demo starts afresh because the
// emulator keeps its events in memory: state left by an earlier run would
// name offsets this emulator never had.
func prepareDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			return fmt.Errorf("%s is not empty and was not made by `materializer demo`; pass -dir with another directory", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, marker), []byte("made by materializer demo; cleared at every demo start\n"), 0o644)
}

// startEmulator starts the Nakadi emulator on a free loopback port with one
// event type per configured one.
func startEmulator(cfg *conf.Config) (*emulator.Server, error) {
	nk := emulator.New(emulator.Options{RetainEvents: 200_000})
	if err := nk.Start("127.0.0.1:0"); err != nil {
		nk.Close()
		return nil, err
	}
	for _, et := range cfg.EventTypes {
		if err := nk.CreateEventType(et.Name, partitions, et.PartitionKey); err != nil {
			nk.Close()
			return nil, err
		}
	}
	return nk, nil
}

// startNATS starts an in-process nats-server with JetStream stored in dir.
func startNATS(dir string) (*server.Server, string, error) {
	srv, err := server.NewServer(&server.Options{
		ServerName: "materializer-demo", Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		return nil, "", fmt.Errorf("demo: nats-server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, "", errors.New("demo: nats-server did not become ready within 10s")
	}
	return srv, "nats://" + srv.Addr().(*net.TCPAddr).String(), nil
}

// settings are the keys the demo sets in its config: where the
// embedded services listen and where files go.
type settings struct {
	Dir, NakadiURL, NATSURL, AdminListen string
	DSNFile                              string // [load] dsn_file with -load
}

// effectiveConfig returns the config text the pipeline runs with: the demo
// config with the keys of s set.
func effectiveConfig(text, source string, s settings) string {
	set := []struct{ section, key, value string }{
		{"daemon", "data_dir", filepath.Join(s.Dir, "data")},
		{"nakadi", "url", s.NakadiURL},
		{"storage", "url", "file://" + filepath.Join(s.Dir, "storage")},
		{"notify", "nats_url", s.NATSURL},
		{"checkpoint", "url", "file://" + filepath.Join(s.Dir, "checkpoints")},
	}
	if s.AdminListen != "" {
		set = append(set, struct{ section, key, value string }{"daemon", "admin_listen", s.AdminListen})
	}
	if s.DSNFile != "" {
		set = append(set, struct{ section, key, value string }{"load", "dsn_file", s.DSNFile})
	}
	for _, kv := range set {
		text = setTOMLKey(text, kv.section, kv.key, strconv.Quote(kv.value))
	}
	return fmt.Sprintf("# Written by `materializer demo` from %s; the embedded Nakadi emulator and\n"+
		"# NATS server it names run only while the demo runs.\n\n%s", source, text)
}

// setTOMLKey sets key = value in [section] of a TOML text, replacing the
// key's line or adding one below the section header (a missing section is
// appended). It handles the plain one-line keys of the demo config.
func setTOMLKey(text, section, key, value string) string {
	lines := strings.Split(text, "\n")
	header := -1
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if header < 0 {
			if t == "["+section+"]" {
				header = i
			}
			continue
		}
		if strings.HasPrefix(t, "[") {
			break
		}
		if name, _, ok := strings.Cut(t, "="); ok && strings.TrimSpace(name) == key {
			lines[i] = key + " = " + value
			return strings.Join(lines, "\n")
		}
	}
	line := key + " = " + value
	if header < 0 {
		return strings.TrimRight(text, "\n") + "\n\n[" + section + "]\n" + line + "\n"
	}
	lines = append(lines[:header+1], append([]string{line}, lines[header+1:]...)...)
	return strings.Join(lines, "\n")
}
