package oci

import (
	"mime"
	"regexp"
)

// Manifest media types the registry stores.
const (
	MediaTypeImageManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeImageIndex     = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeEmptyJSON      = "application/vnd.oci.empty.v1+json"
)

// EmptyJSONDigest is the digest of the two bytes "{}", the empty config of
// artifacts.
const EmptyJSONDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

// nondistributable layer media types: their blobs are never pushed.
var nondistributable = map[string]bool{
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": true,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    true,
}

// mediaTypeRE is RFC 6838's type/subtype grammar, as the image spec uses it.
var mediaTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

// ValidMediaType reports whether s is a well-formed media type without
// parameters.
func ValidMediaType(s string) bool { return mediaTypeRE.MatchString(s) }

// IsManifestType reports whether the registry stores manifests of this type.
func IsManifestType(mt string) bool {
	switch mt {
	case MediaTypeImageManifest, MediaTypeImageIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}

// IsIndexType reports whether mt lists other manifests.
func IsIndexType(mt string) bool { return mt == MediaTypeImageIndex || mt == MediaTypeDockerList }

// BaseMediaType strips parameters from a Content-Type value.
func BaseMediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return contentType
	}
	return mt
}
