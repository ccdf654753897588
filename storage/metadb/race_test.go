//go:build race

package metadb

// raceDetector: the race detector slows each commit several times over,
// so scale tests run smaller under it (make race); make test runs them at
// full scale too.
const raceDetector = true
