package benchkit

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ConnsTo returns the IPv4 TCP connections, in any state but LISTEN
// (TIME_WAIT included), whose local port is one of ports, as "local
// remote" keys from /proc/net/tcp: each is a connection a client opened to
// that port and has not long closed. Linux only.
func ConnsTo(ports ...int) (map[string]bool, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil, fmt.Errorf("counting connections needs Linux's /proc/net/tcp: %w", err)
	}
	defer f.Close()
	want := map[int64]bool{}
	for _, p := range ports {
		want[int64(p)] = true
	}
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] == "0A" { // 0A: LISTEN
			continue
		}
		local := fields[1]
		port, err := strconv.ParseInt(local[strings.LastIndexByte(local, ':')+1:], 16, 32)
		if err == nil && want[port] {
			out[local+" "+fields[2]] = true
		}
	}
	return out, sc.Err()
}

// Port is the port of a host:port address, 0 if it has none.
func Port(addr string) int {
	p, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	return p
}
