package notify

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// registry2 is the notifications section of a registry:2 config.yml.
const registry2 = `
notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      headers:
        Authorization: [Bearer abc]
        X-Multi: [one, two]
      timeout: 500ms
      threshold: 5
      backoff: 1s
      ignoredmediatypes:
        - application/octet-stream
      ignore:
        mediatypes:
          - application/vnd.oci.image.layer.v1.tar
        actions:
          - pull
    - name: defaults
      url: http://hooks.internal:8080/
`

func TestConfigReadsRegistry2YAML(t *testing.T) {
	var doc struct {
		Notifications Config `yaml:"notifications"`
	}
	if err := yaml.Unmarshal([]byte(registry2), &doc); err != nil {
		t.Fatal(err)
	}
	cfg := doc.Notifications
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Events: Events{IncludeReferences: true},
		Endpoints: []Endpoint{{
			Name:              "alistener",
			URL:               "https://my.listener.com/event",
			Headers:           http.Header{"Authorization": {"Bearer abc"}, "X-Multi": {"one", "two"}},
			Timeout:           500 * time.Millisecond,
			Threshold:         5,
			Backoff:           time.Second,
			IgnoredMediaTypes: []string{"application/octet-stream"},
			Ignore: Ignore{
				MediaTypes: []string{"application/vnd.oci.image.layer.v1.tar"},
				Actions:    []string{"pull"},
			},
		}, {
			Name:      "defaults",
			URL:       "http://hooks.internal:8080/",
			Timeout:   time.Second,
			Threshold: 10,
			Backoff:   time.Second,
		}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config =\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestConfigRejects(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endpoints []Endpoint
		want      string
	}{
		{"no name", []Endpoint{{URL: "http://a/"}}, "name is required"},
		{"no url", []Endpoint{{Name: "a"}}, "url is required"},
		{"not http", []Endpoint{{Name: "a", URL: "ftp://a/"}}, "not an http(s) URL"},
		{"no host", []Endpoint{{Name: "a", URL: "/events"}}, "not an http(s) URL"},
		{"duplicate", []Endpoint{{Name: "a", URL: "http://a/"}, {Name: "a", URL: "http://b/"}}, "duplicate name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Endpoints: tc.endpoints}, t.TempDir(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: err = %v, want %q", err, tc.want)
			}
		})
	}
	// A disabled endpoint may be incomplete, as in registry:2.
	n, err := New(Config{Endpoints: []Endpoint{{Disabled: true}}}, t.TempDir(), nil)
	if err != nil {
		t.Fatalf("disabled endpoint: %v", err)
	}
	_ = n.Close()
}

func TestAccepts(t *testing.T) {
	e := Endpoint{
		IgnoredMediaTypes: []string{"a/old"},
		Ignore:            Ignore{MediaTypes: []string{"a/new"}, Actions: []string{"pull", "mount"}},
	}
	for _, tc := range []struct {
		action, mediaType string
		want              bool
	}{
		{"push", "a/keep", true},
		{"push", "", true},
		{"delete", "", true},
		{"push", "a/old", false},
		{"push", "a/new", false},
		{"pull", "a/keep", false},
		{"mount", "", false},
	} {
		if got := e.accepts(tc.action, tc.mediaType); got != tc.want {
			t.Errorf("accepts(%q, %q) = %v, want %v", tc.action, tc.mediaType, got, tc.want)
		}
	}
	e.Disabled = true
	if e.accepts("push", "a/keep") {
		t.Error("a disabled endpoint accepts events")
	}
}
