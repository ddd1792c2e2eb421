package ecosystem_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/boj/redistore"
	"github.com/gomodule/redigo/redis"
)

var cookieKey = []byte("0123456789abcdef0123456789abcdef")

// cookieOf returns the cookie named name that w set.
func cookieOf(t testing.TB, w *httptest.ResponseRecorder, name string) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %q cookie in the response", name)
	return nil
}

func requestWith(c *http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

// keyTTL returns the TTL of key, borrowing through the bridge.
func keyTTL(t testing.TB, rp *redis.Pool, key string) int {
	t.Helper()
	c := rp.Get()
	defer c.Close()
	ttl, err := redis.Int(c.Do("TTL", key))
	if err != nil {
		t.Fatalf("TTL %s: %v", key, err)
	}
	return ttl
}

// TestRedistore saves, loads, expires and deletes gorilla sessions in
// boj/redistore on the bridge.
func TestRedistore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		store, err := redistore.NewRediStoreWithPool(b.rp, cookieKey) // PINGs
		if err != nil {
			t.Fatalf("NewRediStoreWithPool: %v", err)
		}
		// Not store.Close: it would close the bridge, which is the
		// Pool's to keep (see RedigoPool).

		// Save.
		r := requestWith(nil)
		s, err := store.New(r, "sid")
		if err != nil || !s.IsNew {
			t.Fatalf("New without a cookie = %+v, %v; want a new session", s, err)
		}
		s.Values["user"] = "ann"
		w := httptest.NewRecorder()
		if err := store.Save(r, w, s); err != nil {
			t.Fatalf("Save: %v", err)
		}
		cookie := cookieOf(t, w, "sid")
		if ttl := keyTTL(t, b.rp, "session_"+s.ID); ttl <= 0 || ttl > 30*86400 {
			t.Fatalf("TTL of the session key = %d; want the session's MaxAge", ttl)
		}

		// Load.
		r = requestWith(cookie)
		got, err := store.New(r, "sid")
		if err != nil || got.IsNew || got.Values["user"] != "ann" {
			t.Fatalf("New with the cookie = %v (IsNew %v), %v; want user ann", got.Values, got.IsNew, err)
		}

		// Delete: MaxAge -1 and Save.
		got.Options.MaxAge = -1
		if err := store.Save(r, httptest.NewRecorder(), got); err != nil {
			t.Fatalf("Save to delete: %v", err)
		}
		if again, err := store.New(requestWith(cookie), "sid"); err != nil || !again.IsNew {
			t.Fatalf("New after delete = %v (IsNew %v), %v; want a new session", again.Values, again.IsNew, err)
		}
		if ttl := keyTTL(t, b.rp, "session_"+got.ID); ttl != -2 {
			t.Fatalf("TTL of a deleted session's key = %d; want -2 (no key)", ttl)
		}

		// Expire: a session with MaxAge 1 is gone from Redis a second later.
		s, _ = store.New(requestWith(nil), "sid")
		s.Options.MaxAge = 1
		s.Values["user"] = "bob"
		w = httptest.NewRecorder()
		if err := store.Save(requestWith(nil), w, s); err != nil {
			t.Fatalf("Save: %v", err)
		}
		short := cookieOf(t, w, "sid")
		if got, err := store.New(requestWith(short), "sid"); err != nil || got.Values["user"] != "bob" {
			t.Fatalf("New before expiry = %v, %v; want user bob", got.Values, err)
		}
		waitUntil(t, "the session expires", func() bool {
			got, err := store.New(requestWith(short), "sid")
			return err == nil && got.IsNew
		})

		// Many requests at once, more than MaxTotal: they wait in
		// redispool, and none fails.
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 10 {
					r := requestWith(nil)
					s, _ := store.New(r, "sid")
					s.Values["n"] = fmt.Sprint(i, j)
					w := httptest.NewRecorder()
					if err := store.Save(r, w, s); err != nil {
						errs <- err
						return
					}
					got, err := store.New(requestWith(w.Result().Cookies()[0]), "sid")
					if err != nil || got.Values["n"] != fmt.Sprint(i, j) {
						errs <- fmt.Errorf("load: %v, %v", got.Values, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
