package main

import (
	"testing"
	"time"
)

const wrkSample = `Running 3s test @ http://127.0.0.1:33793/v2/bench/manifest/manifests/bench
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.50us    1.02ms  40.12ms   97.10%
    Req/Sec    31.20k     2.10k   35.00k    70.00%
  Latency Distribution
     50%  610.00us
     75%  800.00us
     90%    1.20ms
     99%    4.25ms
  186312 requests in 3.00s, 150.32MB read
  Socket errors: connect 0, read 0, write 0, timeout 3
  Non-2xx or 3xx responses: 12
Requests/sec:  62083.41
Transfer/sec:     50.09MB
`

func TestParseWrk(t *testing.T) {
	res, err := parseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	if res.rps != 62083.41 || res.p99 != 4250*time.Microsecond || res.requests != 186312 || res.non2xx != 12 {
		t.Errorf("got %+v", res)
	}
	if res.socketErrors != "Socket errors: connect 0, read 0, write 0, timeout 3" {
		t.Errorf("socket errors %q", res.socketErrors)
	}
}

func TestParseWrkDurationUnits(t *testing.T) {
	for in, want := range map[[2]string]time.Duration{
		{"850.00", "us"}: 850 * time.Microsecond,
		{"1.50", "s"}:    1500 * time.Millisecond,
		{"2.00", "m"}:    2 * time.Minute,
	} {
		if got, err := parseWrkDuration(in[0], in[1]); err != nil || got != want {
			t.Errorf("%v: got %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestParseWrkMissingLatency(t *testing.T) {
	if _, err := parseWrk("Requests/sec: 10.0\n"); err == nil {
		t.Error("want an error without the latency distribution")
	}
}
