package benchkit

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Median of vs (left unsorted); NaN when there are none.
func Median(vs []float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	n := len(s)
	switch {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return s[n/2]
	default:
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// MBps is n bytes over d in MB/s (10^6 bytes).
func MBps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// Loadavg returns the first three fields of /proc/loadavg, "?" elsewhere:
// other work on the machine skews every number.
func Loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// Table writes rows of cells as columns two spaces apart.
type Table struct{ tw *tabwriter.Writer }

// NewTable starts a table on w with a header row.
func NewTable(w io.Writer, header ...string) *Table {
	t := &Table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.Row(header...)
	return t
}

// Row adds one row; cells must not hold tabs or newlines.
func (t *Table) Row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

// Flush writes the aligned table out.
func (t *Table) Flush() { _ = t.tw.Flush() }

// Payload is random data restamped per blob, so that no digest is ever
// pushed twice, with a pull destination of the same size.
type Payload struct {
	Data []byte // random; the first 16 bytes are restamped per blob
	Recv []byte // pull destination, same size as Data
	// nonce differs per run, so no two runs produce the same blobs.
	nonce, serial uint64
}

// NewPayload generates mib MiB of random data and faults Recv in.
func NewPayload(mib int) (*Payload, error) {
	Logf("generating %d MiB of random data", mib)
	data, err := RandomBytes(mib << 20)
	if err != nil {
		return nil, err
	}
	p := &Payload{Data: data, Recv: FaultIn(make([]byte, len(data)))}
	p.nonce = binary.LittleEndian.Uint64(p.Data[8:16])
	return p, nil
}

// Fresh restamps Data and returns it with its digest (computed outside any
// timing).
func (p *Payload) Fresh() ([]byte, string) { return p.Data, p.Stamp(p.Data) }

// Stamp restamps the first 16 bytes of buf (at least that long) so its
// digest was never pushed before, and returns the digest.
func (p *Payload) Stamp(buf []byte) string {
	p.serial++
	binary.LittleEndian.PutUint64(buf[0:8], p.serial)
	binary.LittleEndian.PutUint64(buf[8:16], p.nonce)
	return Digest(buf)
}

// RandomBytes returns n random bytes.
func RandomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// FaultIn touches every page of buf, so the first pull into it does not
// pay for the page faults, and returns buf.
func FaultIn(buf []byte) []byte {
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	return buf
}
