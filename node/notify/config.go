package notify

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Config is registry:2's `notifications` section, with the same keys and
// defaults, so a registry:2 config.yml works unchanged.
type Config struct {
	// Events shapes the events sent to every endpoint.
	Events Events `yaml:"events,omitempty"`
	// Endpoints receive the events as webhooks. Default none.
	Endpoints []Endpoint `yaml:"endpoints,omitempty"`
}

// Events is registry:2's `notifications.events`.
type Events struct {
	// IncludeReferences sends, with each manifest event, the descriptors
	// the manifest refers to (target.references: config and layers, or
	// an index's manifests). Default false.
	IncludeReferences bool `yaml:"includereferences"`
}

// Endpoint is one webhook receiver, as registry:2 configures it.
type Endpoint struct {
	// Name identifies the endpoint in logs, metrics and the on-disk queue;
	// required and unique. Renaming an endpoint starts a new, empty queue.
	Name string `yaml:"name"`
	// Disabled stops queueing events for the endpoint; its queue is kept.
	// Default false.
	Disabled bool `yaml:"disabled"`
	// URL receives each batch of events by POST; http or https, required.
	URL string `yaml:"url"`
	// MediaType is the Content-Type of the envelope: "v1" for registry:2's
	// application/vnd.docker.distribution.events.v1+json, "v2" for
	// Distribution 3's ...events.v2+json; the full media types are
	// accepted too. The body is the same. Default v1.
	MediaType string `yaml:"mediatype"`
	// Headers are added to every request. Default none.
	Headers http.Header `yaml:"headers"`
	// Timeout bounds one request, response included. Default 1s.
	Timeout time.Duration `yaml:"timeout"`
	// Threshold is the number of consecutive failed requests after which
	// the endpoint is logged as failing. Delivery keeps retrying.
	// Default 10.
	Threshold int `yaml:"threshold"`
	// Backoff is the wait after the first failed request; it doubles with
	// each consecutive failure, up to 5m (or Backoff, if larger).
	// Default 1s.
	Backoff time.Duration `yaml:"backoff"`
	// IgnoredMediaTypes are target media types whose events are not sent
	// (registry:2's older key, merged with Ignore.MediaTypes). Default none.
	IgnoredMediaTypes []string `yaml:"ignoredmediatypes"`
	// Ignore drops events by target media type or by action. Default none.
	Ignore Ignore `yaml:"ignore"`
}

// Ignore is registry:2's `ignore` block of an endpoint.
type Ignore struct {
	// MediaTypes are target media types whose events are not sent.
	// Default none.
	MediaTypes []string `yaml:"mediatypes"`
	// Actions (push, pull, delete, mount) whose events are not sent.
	// Default none.
	Actions []string `yaml:"actions"`
}

// maxBackoff caps the exponential backoff unless Backoff is larger.
const maxBackoff = 5 * time.Minute

func (e *Endpoint) applyDefaults() {
	if e.Timeout <= 0 {
		e.Timeout = time.Second
	}
	if e.Threshold <= 0 {
		e.Threshold = 10
	}
	if e.Backoff <= 0 {
		e.Backoff = time.Second
	}
}

func (c *Config) applyDefaults() {
	for i := range c.Endpoints {
		c.Endpoints[i].applyDefaults()
	}
}

// validate checks the enabled endpoints: each needs a unique name (it names
// the on-disk queue) and an http(s) URL.
func (c *Config) validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, e := range c.Endpoints {
		if e.Disabled {
			continue
		}
		if e.Name == "" {
			errs = append(errs, fmt.Errorf("notifications endpoint %d: name is required", i))
		} else if seen[e.Name] {
			errs = append(errs, fmt.Errorf("notifications endpoint %q: duplicate name", e.Name))
		}
		seen[e.Name] = true
		if _, err := envelopeType(e.MediaType); err != nil {
			errs = append(errs, fmt.Errorf("notifications endpoint %q: %w", e.Name, err))
		}
		u, err := url.Parse(e.URL)
		switch {
		case e.URL == "":
			errs = append(errs, fmt.Errorf("notifications endpoint %q: url is required", e.Name))
		case err != nil:
			errs = append(errs, fmt.Errorf("notifications endpoint %q: url: %w", e.Name, err))
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("notifications endpoint %q: url %q is not an http(s) URL", e.Name, u.Redacted()))
		}
	}
	return errors.Join(errs...)
}

// accepts reports whether an event with this action and target media type
// is sent to the endpoint.
func (e *Endpoint) accepts(action, mediaType string) bool {
	if e.Disabled {
		return false
	}
	if slices.Contains(e.Ignore.Actions, action) {
		return false
	}
	return mediaType == "" ||
		!slices.Contains(e.IgnoredMediaTypes, mediaType) && !slices.Contains(e.Ignore.MediaTypes, mediaType)
}

// envelopeType is the media type an endpoint's mediatype setting names.
func envelopeType(setting string) (string, error) {
	switch setting {
	case "", "v1", EventsMediaType:
		return EventsMediaType, nil
	case "v2", EventsMediaTypeV2:
		return EventsMediaTypeV2, nil
	}
	return "", fmt.Errorf("mediatype %q: want v1, v2, %s or %s", setting, EventsMediaType, EventsMediaTypeV2)
}
