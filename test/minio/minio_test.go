package minio

import (
	"net/http"
	"testing"
)

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	live := func() bool {
		resp, err := http.Get("http://" + s.Endpoint() + "/minio/health/live")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if !live() {
		t.Fatal("not live after Start")
	}
	s.Stop()
	if live() {
		t.Fatal("live after Stop")
	}
	s.Restart()
	if !live() {
		t.Fatal("not live after Restart")
	}
}
