package route

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// memberConn is a connection to a member with its response reader.
type memberConn struct {
	*net.TCPConn
	br     *bufio.Reader
	reused bool      // taken from the pool
	idle   time.Time // when it was put back
}

// Limits of connPool, below members' server IdleTimeout (120 s).
const (
	maxIdlePerMember = 16
	memberIdleTime   = 60 * time.Second
)

// connPool keeps idle connections to members, per address. Its methods
// may be called concurrently.
type connPool struct {
	mu   sync.Mutex
	idle map[string][]*memberConn
}

func newConnPool() *connPool { return &connPool{idle: map[string][]*memberConn{}} }

// get returns the most recently used idle connection to addr, else a new one.
func (p *connPool) get(ctx context.Context, addr string) (*memberConn, error) {
	p.mu.Lock()
	for cs := p.idle[addr]; len(cs) > 0; cs = p.idle[addr] {
		c := cs[len(cs)-1]
		p.idle[addr] = cs[:len(cs)-1]
		if time.Since(c.idle) < memberIdleTime {
			p.mu.Unlock()
			c.reused = true
			return c, nil
		}
		_ = c.Close()
	}
	p.mu.Unlock()
	nc, err := (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial member %s: %w", addr, err)
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		_ = nc.Close()
		return nil, fmt.Errorf("dial member %s: not a TCP connection", addr)
	}
	return &memberConn{TCPConn: tc, br: bufio.NewReaderSize(tc, 8<<10)}, nil
}

// put keeps c, whose answer resp has been read whole, for the next read
// from addr, unless the member closes it or the pool is full.
func (p *connPool) put(addr string, c *memberConn, resp *http.Response) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if resp.Close || c.br.Buffered() > 0 || len(p.idle[addr]) >= maxIdlePerMember {
		_ = c.Close()
		return
	}
	c.idle = time.Now()
	p.idle[addr] = append(p.idle[addr], c)
}
