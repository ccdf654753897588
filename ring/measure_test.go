package ring

import (
	"fmt"
	"testing"
	"time"
)

func copiesOf(r *Ring, ds []string, n int) []map[string]bool {
	out := make([]map[string]bool, len(ds))
	for i, d := range ds {
		m := map[string]bool{}
		for _, o := range r.Owners(digestOf(d), n) {
			m[o] = true
		}
		out[i] = m
	}
	return out
}

func TestMeasure(t *testing.T) {
	for _, vn := range []int{200, 500, 2000} {
		virtualNodes = vn
		for _, cfg := range []Config{{Partitions: 16411}, {Partitions: 32771}, {Partitions: 65521}} {
			var worst3, worst, sum, worstLoad float64
			cnt := 0
			start := time.Now()
			builds := 0
			for seed := uint64(1); seed <= 6; seed++ {
				dd := TestDigests(seed, 10000)
				ds := make([]string, len(dd))
				for i, d := range dd {
					ds[i] = string(d)
				}
				for _, names := range []func(int) []string{TestMembers, func(n int) []string {
					ms := make([]string, n)
					for i := range ms {
						ms[i] = fmt.Sprintf("atoll-%d-%c", seed, 'a'+i)
					}
					return ms
				}} {
					for n := 3; n <= 16; n++ {
						ms := names(n + 1)
						a := New(cfg, ms[:n])
						b := New(cfg, ms)
						builds += 2
						ca, cb := copiesOf(a, ds, 2), copiesOf(b, ds, 2)
						moved := 0
						load := map[string]int{}
						for i := range ds {
							for o := range cb[i] {
								if !ca[i][o] {
									moved++
								}
							}
							for o := range ca[i] {
								load[o]++
							}
						}
						mx := 0
						for _, l := range load {
							mx = max(mx, l)
						}
						r := float64(moved) / float64(2*len(ds)) * float64(n+1)
						if n == 3 {
							worst3 = max(worst3, r)
						} else {
							worst = max(worst, r)
							sum += r
							cnt++
						}
						worstLoad = max(worstLoad, float64(mx)/(float64(2*len(ds))/float64(n)))
					}
				}
			}
			t.Logf("V=%d P=%d L=%v: worst3=%.3f worst4+=%.3f mean4+=%.3f worstLoad=%.3f build=%v", vn, cfg.Partitions, cfg.Load, worst3, worst, sum/float64(cnt), worstLoad, time.Since(start)/time.Duration(builds))
		}
	}
}

func BenchmarkNew(b *testing.B) {
	for _, vn := range []int{20, 1000, 2000, 4000} {
		for _, p := range []int{4099, 16411, 65521} {
			b.Run(fmt.Sprintf("V%d/P%d", vn, p), func(b *testing.B) {
				virtualNodes = vn
				for b.Loop() {
					New(Config{Partitions: p}, TestMembers(16))
				}
			})
		}
	}
}
