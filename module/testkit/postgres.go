package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinDir is where Debian's postgresql-15 package puts initdb,
// pg_ctl and postgres; $PG_BIN_DIR overrides it.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// Postgres is a throw-away PostgreSQL cluster for tests: its own data
// directory, listening on 127.0.0.1 on a free port with trust
// authentication, its unix socket inside the data directory. PostgreSQL
// refuses to run as root, so when the tests run as root the cluster's
// commands run as the postgres user (runuser).
type Postgres struct {
	// Dir is the cluster's data directory.
	Dir  string
	Port int
	bin  string
	asPG bool // run the cluster's commands as the postgres user
}

// StartPostgres creates a cluster under the repository's .cache/postgres/
// (or a temporary directory the postgres user can reach) and starts it.
// A missing PostgreSQL 15 is installed with apt-get first. Clusters left
// behind by test processes that died are stopped and removed.
func StartPostgres() (*Postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	p := &Postgres{bin: bin, asPG: os.Geteuid() == 0}
	base := filepath.Join(RepoRoot(), ".cache", "postgres")
	reapPostgres(base, p)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(base, "cluster-")
	if err != nil {
		return nil, err
	}
	p.Dir = dir
	if err := os.WriteFile(filepath.Join(base, filepath.Base(dir)+".owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	if p.asPG {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("postgres user: %w (the postgresql-15 package creates it)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		// The postgres user must be able to walk down to the data directory.
		if out, err := p.run("test", "-w", dir); err != nil {
			return nil, fmt.Errorf("the postgres user cannot write %s (%v %s): put the repository where it can", dir, err, out)
		}
	}
	if out, err := p.run(filepath.Join(bin, "initdb"), "-D", dir, "-U", "postgres", "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf := fmt.Sprintf("\n# testkit\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"+
		"max_connections = 300\nshared_buffers = 32MB\nlog_min_messages = warning\n", dir)
	if err := p.appendFile(filepath.Join(dir, "postgresql.conf"), conf); err != nil {
		return nil, err
	}
	// A free port may be taken before the server binds it (test packages
	// start their clusters in parallel): then try another. The last port
	// line of the file wins, and stays for restarts.
	for attempt := 1; ; attempt++ {
		if p.Port, err = FreePort(); err != nil {
			return nil, err
		}
		if err := p.appendFile(filepath.Join(dir, "postgresql.conf"), fmt.Sprintf("port = %d\n", p.Port)); err != nil {
			return nil, err
		}
		err = p.Start()
		if err == nil {
			return p, nil
		}
		if attempt == 3 {
			p.Close()
			return nil, err
		}
	}
}

// DSN is the URL of the cluster's postgres database as the postgres
// superuser, with the application name given (it names the connections in
// pg_stat_activity; empty for none).
func (p *Postgres) DSN(application string) string {
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
	if application != "" {
		dsn += "&application_name=" + application
	}
	return dsn
}

// Start starts a stopped cluster and waits until it accepts connections.
func (p *Postgres) Start() error {
	out, err := p.run(filepath.Join(p.bin, "pg_ctl"), "-D", p.Dir, "-l", filepath.Join(p.Dir, "server.log"), "-w", "-t", "120", "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(p.Dir, "server.log"))
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return nil
}

// Stop stops the cluster at once, as a crash would (pg_ctl stop -m
// immediate): the next start recovers from the WAL.
func (p *Postgres) Stop() error {
	out, err := p.run(filepath.Join(p.bin, "pg_ctl"), "-D", p.Dir, "-w", "-t", "60", "stop", "-m", "immediate")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Restart stops the cluster at once and starts it again.
func (p *Postgres) Restart() error {
	if err := p.Stop(); err != nil {
		return err
	}
	return p.Start()
}

// Close stops the cluster and removes its data directory.
func (p *Postgres) Close() {
	if p.Dir == "" {
		return
	}
	_ = p.Stop()
	os.RemoveAll(p.Dir)
	os.Remove(p.Dir + ".owner")
}

// TerminateBackends ends every server process serving connections with
// the application name, as a failover or a network cut would, and waits
// (bounded) until they are gone. It returns how many it ended.
func (p *Postgres) TerminateBackends(ctx context.Context, application string) (int, error) {
	conn, err := pgx.Connect(ctx, p.DSN("testkit-killer"))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))
		FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`, application).Scan(&n)
	return n, err
}

// run runs a command, as the postgres user when the tests run as root.
func (p *Postgres) run(name string, args ...string) (string, error) {
	if p.asPG {
		args = append([]string{"-u", "postgres", "--", name}, args...)
		name = "runuser"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	// pg_ctl's server must not share the test's process group, so a ^C
	// of the tests reaches the tests, which stop it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *Postgres) appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// postgresBin finds the PostgreSQL 15 binaries, installing Debian's
// postgresql-15 package when they are missing.
func postgresBin() (string, error) {
	dir := os.Getenv("PG_BIN_DIR")
	if dir == "" {
		dir = PostgresBinDir
	}
	if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
		return dir, nil
	}
	if os.Getenv("PG_BIN_DIR") != "" {
		return "", fmt.Errorf("PG_BIN_DIR=%s has no initdb", dir)
	}
	fmt.Fprintf(os.Stderr, "testkit: %s/initdb is missing; the PostgreSQL store's tests need a real PostgreSQL 15: running apt-get install postgresql-15\n", dir)
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "postgresql-15"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
		return "", errors.New("postgresql-15 installed but initdb is still missing")
	}
	return dir, nil
}

// reapPostgres stops and removes the clusters under base whose test
// process is gone (killed before it could stop them).
func reapPostgres(base string, p *Postgres) {
	owners, _ := filepath.Glob(filepath.Join(base, "cluster-*.owner"))
	for _, owner := range owners {
		b, err := os.ReadFile(owner)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			continue // still running
		}
		old := &Postgres{Dir: strings.TrimSuffix(owner, ".owner"), bin: p.bin, asPG: p.asPG}
		old.Close()
	}
}

// MainWithPostgres is a test package's TestMain body when the package
// shares one throw-away cluster: it starts it into *pg, runs the tests,
// stops it, and returns the exit code for os.Exit.
func MainWithPostgres(m interface{ Run() int }, pg **Postgres) int {
	var err error
	if *pg, err = StartPostgres(); err != nil {
		fmt.Fprintln(os.Stderr, "starting postgres:", err)
		return 1
	}
	defer (*pg).Close()
	return m.Run()
}
