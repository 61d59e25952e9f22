package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
)

// removeEmptyValueLogs deletes the empty value-log (.vlog) and memtable
// write-ahead (.mem) files a kill -9 can leave in dir. Badger creates a
// new file of each kind on every open (O_CREATE, then it sizes the file
// and writes its header); killed in between, the file stays empty, and
// Badger's next open fails on it with "... Create a new file", so the
// sidecar could not start again. An empty file holds no data (not even
// the header), so removing it loses nothing; Badger creates it again.
func removeEmptyValueLogs(dir string, logger *zap.Logger) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading store directory %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".vlog") && !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Size() != 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("removing empty store file %s: %w", p, err)
		}
		logger.Warn("removed an empty store file left by an interrupted start", zap.String("file", p))
	}
	return nil
}
