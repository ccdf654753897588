//go:build !race

package metadb

const raceDetector = false
