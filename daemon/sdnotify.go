package main

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// sdNotifier speaks systemd's notify protocol (sd_notify(3)): datagrams of
// newline-separated VAR=value lines to $NOTIFY_SOCKET. Without the variable
// (not started by systemd) every Send is a no-op.
type sdNotifier struct {
	socket   *net.UnixAddr // nil: notifications off
	watchdog time.Duration // WATCHDOG_USEC; 0: watchdog off
}

// sdNotifierFromEnv reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.
func sdNotifierFromEnv(getenv func(string) string) *sdNotifier {
	n := &sdNotifier{}
	if path := getenv("NOTIFY_SOCKET"); path != "" {
		if strings.HasPrefix(path, "@") { // abstract socket namespace
			path = "\x00" + path[1:]
		}
		n.socket = &net.UnixAddr{Name: path, Net: "unixgram"}
	}
	usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64)
	pid := getenv("WATCHDOG_PID")
	if err == nil && usec > 0 && (pid == "" || pid == strconv.Itoa(os.Getpid())) {
		n.watchdog = time.Duration(usec) * time.Microsecond
	}
	return n
}

// Send sends the given VAR=value states in one datagram.
func (n *sdNotifier) Send(states ...string) error {
	if n.socket == nil {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(strings.Join(states, "\n")))
	return err
}

// WatchdogInterval is how often to send WATCHDOG=1: half of WATCHDOG_USEC,
// as sd_watchdog_enabled(3) advises; 0 when the watchdog is off.
func (n *sdNotifier) WatchdogInterval() time.Duration { return n.watchdog / 2 }
