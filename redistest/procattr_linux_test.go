package redistest_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redispool/redispool/redistest"
)

const helperEnv = "REDISTEST_HELPER_KILLED_WITH_SERVER"

// TestServerDiesWithTheTestBinary starts a server from a child test binary,
// kills that binary with SIGKILL, as go test's -timeout or a CI runner
// would (no Cleanup runs), and checks that the server dies with it instead
// of keeping its port for ever.
func TestServerDiesWithTheTestBinary(t *testing.T) {
	if os.Getenv(helperEnv) == "1" {
		srv := redistest.StartServer(t)
		fmt.Printf("server %d %s\n", srv.PID(), srv.Addr())
		time.Sleep(time.Minute) // until the parent kills this process
		return
	}
	t.Parallel()
	redistest.StartServer(t) // skips or fails here, not in the child, without redis-server

	child := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithTheTestBinary$", "-test.count=1")
	child.Env = append(os.Environ(), helperEnv+"=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()         //nolint:errcheck // killed
	defer child.Process.Kill() //nolint:errcheck // when the test fails before the kill

	var pid int
	var addr string
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if _, err := fmt.Sscanf(lines.Text(), "server %d %s", &pid, &addr); err == nil {
			break
		}
	}
	if pid == 0 {
		t.Fatalf("the child test binary printed no server: %v", lines.Err())
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server %d at %s still runs 10s after the test binary that started it was killed", pid, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The port is not checked: once the server is gone, a parallel test
	// may start a server of its own on it.
}

// alive reports whether pid is a process that has not exited: a zombie
// waiting for init to reap it has exited.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}
