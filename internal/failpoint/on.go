//go:build failpoints

package failpoint

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Enabled reports whether this binary was built with failpoints.
const Enabled = true

var (
	once   sync.Once
	armed  string
	target = 1
	mu     sync.Mutex
	hits   int
)

// Inject kills the process if name is the armed failpoint and this is the
// armed hit.
func Inject(name string) {
	once.Do(func() {
		v := os.Getenv(Env)
		armed = v
		if i := strings.LastIndexByte(v, ':'); i >= 0 {
			if n, err := strconv.Atoi(v[i+1:]); err == nil && n > 0 {
				armed, target = v[:i], n
			}
		}
	})
	if name != armed {
		return
	}
	mu.Lock()
	hits++
	fire := hits == target
	mu.Unlock()
	if fire {
		_ = os.WriteFile(os.Getenv(Env+"_MARK"), []byte(name), 0o644)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
