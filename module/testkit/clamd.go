package testkit

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/scan"
)

// ClamdMarker is the test signature's bytes: a stream that contains them
// is "infected" with ClamdSignature (clamd adds ".UNOFFICIAL" to the
// name of a signature from a local database).
const (
	ClamdMarker    = "CADDY-DIRECT-UPLOAD-TEST-MALWARE-MARKER"
	ClamdSignature = "Test.DirectUpload.Marker.UNOFFICIAL"
)

// Clamd is a running clamd (Debian's clamav-daemon) on a 127.0.0.1 port,
// with a signature database of one locally written signature: no download
// is needed, and with so tiny a database clamd starts in seconds.
type Clamd struct {
	*Proc
	Port int
	Dir  string
	// URL is the address for the scan subdirective: tcp://127.0.0.1:port.
	URL string
	// SocketURL is the same clamd's Unix socket: unix://<dir>/clamd.sock.
	SocketURL string
}

// StartClamd starts clamd in dir (its config, database and log go there)
// on port (0: a free one), and waits until it answers PING.
func StartClamd(dir string, port int) (*Clamd, error) {
	name := os.Getenv("CLAMD_BIN")
	if name == "" {
		name = "clamd"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/clamd"); err != nil {
			return nil, fmt.Errorf("clamd is not installed (make clamav installs Debian's clamav-daemon): %w", err)
		}
	}
	db := filepath.Join(dir, "db")
	if err := os.MkdirAll(db, 0o755); err != nil {
		return nil, err
	}
	// An extended signature (.ndb): name:target type (0, any file):
	// offset (*, anywhere):hex bytes.
	sig := "Test.DirectUpload.Marker:0:*:" + hex.EncodeToString([]byte(ClamdMarker)) + "\n"
	if err := os.WriteFile(filepath.Join(db, "test.ndb"), []byte(sig), 0o644); err != nil {
		return nil, err
	}
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	} else if err := portFree(port); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "clamd.conf")
	sock := filepath.Join(dir, "clamd.sock")
	text := fmt.Sprintf(`Foreground yes
TCPSocket %d
TCPAddr 127.0.0.1
LocalSocket %s
DatabaseDirectory %s
TemporaryDirectory %s
LogFile %s
PidFile %s
StreamMaxLength 8M
MaxThreads 4
`, port, sock, db, dir, filepath.Join(dir, "clamd.log"), filepath.Join(dir, "clamd.pid"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	p, err := Start(nil, bin, "-c", conf)
	if err != nil {
		return nil, err
	}
	c := &Clamd{Proc: p, Port: port, Dir: dir, URL: fmt.Sprintf("tcp://127.0.0.1:%d", port), SocketURL: "unix://" + sock}
	client := &scan.Client{Network: "tcp", Address: fmt.Sprintf("127.0.0.1:%d", port)}
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := client.Ping(ctx)
		cancel()
		if err == nil {
			return c, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			p.Stop(time.Second)
			log, _ := os.ReadFile(filepath.Join(dir, "clamd.log"))
			return nil, fmt.Errorf("clamd did not answer PING: %v\n%s\n%s", err, p.Output(), log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
