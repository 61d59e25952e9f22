package webhook

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// TestConnectionsReusedWhateverTheAnswer: attempts one after another to
// an endpoint reuse one connection, whether it answers nothing, a small
// JSON body, or a body larger than what is kept (the rest is drained, so
// the connection goes back to the pool instead of being closed).
func TestConnectionsReusedWhateverTheAnswer(t *testing.T) {
	for name, answer := range map[string]string{
		"empty": "", "small": `{"ok":true}`, "large": `{"pad":"` + strings.Repeat("x", 3*MaxResponse) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			var conns atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(answer))
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			s := NewSender()
			ep := endpoint(srv.URL)
			for i := range 10 {
				ev := &store.Event{ID: "evt_" + name + string(rune('a'+i)), Type: store.EventCompleted, CreatedAt: time.Now()}
				if r := s.Send(context.Background(), ep, ev); r.Outcome != Delivered {
					t.Fatalf("attempt %d: %+v", i, r)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Fatalf("%d connections for 10 attempts in a row, want 1 reused", n)
			}
		})
	}
}
