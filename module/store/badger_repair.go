package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
)

// removeEmptyValueLogs deletes the empty value-log files a kill -9 can
// leave in dir. Badger creates a new value-log file on every open
// (O_CREATE, then it sizes the file and writes its header); killed in
// between, the file stays empty, and Badger's next open fails on it with
// "Open existing file ... Create a new file", so the sidecar could not
// start again. An empty file holds no data (not even the header), so
// removing it loses nothing; Badger creates the file again.
func removeEmptyValueLogs(dir string, logger *zap.Logger) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading store directory %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".vlog") {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Size() != 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("removing empty value log %s: %w", p, err)
		}
		logger.Warn("removed an empty value-log file left by an interrupted start", zap.String("file", p))
	}
	return nil
}
