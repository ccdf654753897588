package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrManifestInvalid is returned, wrapped with the reason, for content that
// is not a valid manifest of its declared media type.
var ErrManifestInvalid = errors.New("manifest invalid")

// Manifest is a parsed and validated image manifest or index, of either the
// OCI or the Docker schema 2 family.
type Manifest struct {
	MediaType    string
	ArtifactType string
	Config       *v1.Descriptor  // image manifests
	Layers       []v1.Descriptor // image manifests
	Manifests    []v1.Descriptor // indexes
	Subject      *v1.Descriptor
	Annotations  map[string]string
}

// wire is the union of the manifest and index JSON shapes.
type wire struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// Parse validates content as a manifest of mediaType. An empty mediaType is
// taken from the content's mediaType field. Errors wrap ErrManifestInvalid.
func Parse(mediaType string, content []byte) (*Manifest, error) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(content))
	if err := dec.Decode(&w); err != nil {
		return nil, invalid("not JSON: %v", err)
	}
	if dec.More() {
		return nil, invalid("trailing data after the JSON document")
	}
	if w.SchemaVersion == nil || *w.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2")
	}
	switch {
	case mediaType == "":
		mediaType = w.MediaType
	case w.MediaType != "" && w.MediaType != mediaType:
		return nil, invalid("mediaType %q does not match Content-Type %q", w.MediaType, mediaType)
	}
	if !IsManifestType(mediaType) {
		return nil, invalid("unsupported manifest media type %q", mediaType)
	}
	m := &Manifest{MediaType: mediaType, ArtifactType: w.ArtifactType, Subject: w.Subject, Annotations: w.Annotations}
	if w.ArtifactType != "" && !ValidMediaType(w.ArtifactType) {
		return nil, invalid("artifactType %q is not a media type", w.ArtifactType)
	}
	if IsIndexType(mediaType) {
		if w.Config != nil || w.Layers != nil {
			return nil, invalid("an index has no config or layers")
		}
		m.Manifests = w.Manifests
		if err := checkDescriptors("manifests", m.Manifests); err != nil {
			return nil, err
		}
	} else {
		if w.Manifests != nil {
			return nil, invalid("an image manifest has no manifests list")
		}
		if w.Config == nil {
			return nil, invalid("config is missing")
		}
		m.Config, m.Layers = w.Config, w.Layers
		if err := checkDescriptors("config", []v1.Descriptor{*m.Config}); err != nil {
			return nil, err
		}
		if err := checkDescriptors("layers", m.Layers); err != nil {
			return nil, err
		}
	}
	if m.Subject != nil {
		if err := checkDescriptors("subject", []v1.Descriptor{*m.Subject}); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func checkDescriptors(field string, ds []v1.Descriptor) error {
	for i, d := range ds {
		if _, err := ParseDigest(d.Digest.String()); err != nil {
			return invalid("%s[%d]: digest %q: %v", field, i, d.Digest, err)
		}
		if d.Size < 0 {
			return invalid("%s[%d]: negative size", field, i)
		}
		if !ValidMediaType(d.MediaType) {
			return invalid("%s[%d]: media type %q", field, i, d.MediaType)
		}
		if d.Data != nil && (int64(len(d.Data)) != d.Size || d.Digest.Algorithm().FromBytes(d.Data) != d.Digest) {
			return invalid("%s[%d]: data does not match digest and size", field, i)
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrManifestInvalid, fmt.Sprintf(format, args...))
}

// Blobs returns the blobs an image manifest needs in its repository: the
// config and the layers, less those never pushed (nondistributable layers,
// layers with URLs) and those embedded in the descriptor's data field.
func (m *Manifest) Blobs() []v1.Descriptor {
	var out []v1.Descriptor
	all := m.Layers
	if m.Config != nil {
		all = append([]v1.Descriptor{*m.Config}, m.Layers...)
	}
	for _, d := range all {
		if nondistributable[d.MediaType] || len(d.URLs) > 0 || d.Data != nil {
			continue
		}
		out = append(out, d)
	}
	return out
}

// Descriptor is how the referrers API lists the manifest: the artifact type
// falls back to the config media type.
func (m *Manifest) Descriptor(d digest.Digest, size int64) v1.Descriptor {
	at := m.ArtifactType
	if at == "" && m.Config != nil {
		at = m.Config.MediaType
	}
	return v1.Descriptor{MediaType: m.MediaType, Digest: d, Size: size, ArtifactType: at, Annotations: m.Annotations}
}
