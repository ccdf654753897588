package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/metadb"
)

// Quota limits the distinct bytes of the blobs and manifests linked to
// the repositories it matches; each is counted once however many of them
// link it.
type Quota struct {
	// Name labels the quota in messages, metrics and /_atoll/v1/usage.
	// Default: its repository patterns joined by commas.
	Name string `yaml:"name"`
	// Repositories are patterns (see Match). Required.
	Repositories []string `yaml:"repositories"`
	// Limit is the most bytes the repositories may hold: "10GiB",
	// "500MiB", "2GB" or a number of bytes. Required.
	Limit Size `yaml:"limit"`
}

// Size is a byte count read from YAML as "10GiB", "500MiB" or 1073741824.
type Size int64

// UnmarshalText implements encoding.TextUnmarshaler (and so YAML).
func (s *Size) UnmarshalText(b []byte) error {
	n, err := diskspace.ParseSize(string(b))
	*s = Size(n)
	return err
}

// UsageReader is what quotas read of the replicated metadata.
type UsageReader interface {
	// Usage returns what the repositories match accepts hold, together
	// and each.
	Usage(match func(repo string) bool) (metadb.Usage, map[string]metadb.Usage)
	// Holds reports whether one of them links blob or manifest d.
	Holds(match func(repo string) bool, d digest.Digest) bool
}

// Quotas enforces quotas (see reserve.go for how admissions stay exact
// cluster-wide). Methods may be called concurrently.
type Quotas struct {
	quotas []Quota
	index  map[string]int // by name
	states []quotaState   // reservations of the quotas this member decides
	meta   UsageReader
	now    func() time.Time // tests set it
	hold   time.Duration    // how long a reservation outlives silence
}

// NewQuotas checks the quotas and returns their enforcer over meta.
func NewQuotas(quotas []Quota, meta UsageReader) (*Quotas, error) {
	index := map[string]int{}
	out := make([]Quota, len(quotas))
	for i, q := range quotas {
		if err := validPatterns(q.Repositories); err != nil {
			return nil, fmt.Errorf("quota %d: %w", i, err)
		}
		if q.Limit <= 0 {
			return nil, fmt.Errorf("quota %d: limit is required", i)
		}
		if q.Name == "" {
			q.Name = strings.Join(q.Repositories, ",")
		}
		if _, dup := index[q.Name]; dup {
			return nil, fmt.Errorf("quota %q: duplicate name", q.Name)
		}
		index[q.Name] = i
		out[i] = q
	}
	states := make([]quotaState, len(out))
	for i := range states {
		states[i].held = map[uint64]*reservation{}
	}
	return &Quotas{quotas: out, index: index, states: states, meta: meta, now: time.Now, hold: DefaultHold}, nil
}

func (q *Quota) matcher() func(string) bool {
	return func(repo string) bool { return Match(q.Repositories, repo) }
}

// Names returns the names of the quotas matching repo, in the order they
// are configured (every member asks in the same order).
func (q *Quotas) Names(repo string) []string {
	var names []string
	for i := range q.quotas {
		if Match(q.quotas[i].Repositories, repo) {
			names = append(names, q.quotas[i].Name)
		}
	}
	return names
}

// QuotaUsage is one quota's state, for /_atoll/v1/usage and metrics.
type QuotaUsage struct {
	Name         string   `json:"name"`
	Repositories []string `json:"repositories"`
	LimitBytes   int64    `json:"limitBytes"`
	metadb.Usage
}

// RepositoryUsage is what one repository holds.
type RepositoryUsage struct {
	Name string `json:"name"`
	metadb.Usage
	// Quotas are the names of the quotas that count it.
	Quotas []string `json:"quotas,omitempty"`
}

// Report is the usage of every quota and repository.
type Report struct {
	Quotas       []QuotaUsage      `json:"quotas"`
	Repositories []RepositoryUsage `json:"repositories"`
}

// Report computes the usage of every quota and repository now.
func (q *Quotas) Report(repos []string) Report {
	r := Report{Quotas: []QuotaUsage{}, Repositories: []RepositoryUsage{}}
	for i := range q.quotas {
		qt := &q.quotas[i]
		used, _ := q.meta.Usage(qt.matcher())
		r.Quotas = append(r.Quotas, QuotaUsage{Name: qt.Name, Repositories: qt.Repositories, LimitBytes: int64(qt.Limit), Usage: used})
	}
	if len(repos) == 0 {
		return r
	}
	_, each := q.meta.Usage(func(string) bool { return true })
	for _, name := range repos {
		u, ok := each[name]
		if !ok {
			continue
		}
		ru := RepositoryUsage{Name: name, Usage: u}
		for _, qt := range q.quotas {
			if Match(qt.Repositories, name) {
				ru.Quotas = append(ru.Quotas, qt.Name)
			}
		}
		r.Repositories = append(r.Repositories, ru)
	}
	return r
}

// human prints a byte count with a binary unit, spaced for a message
// ("6.1 KiB").
func human(n int64) string {
	s := diskspace.Bytes(uint64(max(n, 0)))
	unit := strings.IndexFunc(s, func(r rune) bool { return r != '.' && (r < '0' || r > '9') })
	return s[:unit] + " " + s[unit:]
}
