package ecosystem_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
)

// TestSCS runs alexedwards/scs with its redisstore on the bridge: the
// store commits with MULTI, SET, PEXPIREAT, EXEC, which on a Cluster
// binds to the key's node at the SET.
func TestSCS(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		store := redisstore.New(b.rp)
		sm := scs.New()
		sm.Store = store
		sm.Lifetime = time.Hour

		mux := http.NewServeMux()
		mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
			sm.Put(r.Context(), "user", r.URL.Query().Get("user"))
			if d := r.URL.Query().Get("lifetime"); d != "" {
				lt, _ := time.ParseDuration(d)
				sm.SetDeadline(r.Context(), time.Now().Add(lt))
			}
		})
		mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, sm.GetString(r.Context(), "user"))
		})
		mux.HandleFunc("/renew", func(w http.ResponseWriter, r *http.Request) {
			if err := sm.RenewToken(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		})
		mux.HandleFunc("/destroy", func(w http.ResponseWriter, r *http.Request) {
			if err := sm.Destroy(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		})
		h := sm.LoadAndSave(mux)
		serve := func(path string, cookie *http.Cookie) *httptest.ResponseRecorder {
			t.Helper()
			r := httptest.NewRequest(http.MethodGet, path, nil)
			if cookie != nil {
				r.AddCookie(cookie)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
			}
			return w
		}

		cookie := cookieOf(t, serve("/put?user=ann", nil), sm.Cookie.Name)
		if got := serve("/get", cookie).Body.String(); got != "ann" {
			t.Fatalf("/get = %q; want ann", got)
		}
		if _, found, err := store.Find(cookie.Value); err != nil || !found {
			t.Fatalf("Find(token) = %v, %v; want found", found, err)
		}
		if ttl := keyTTL(t, b.rp, "scs:session:"+cookie.Value); ttl <= 0 || ttl > 3600 {
			t.Fatalf("TTL of the session key = %d; want up to Lifetime (3600s)", ttl)
		}

		// A new token keeps the data and drops the old token.
		renewed := cookieOf(t, serve("/renew", cookie), sm.Cookie.Name)
		if renewed.Value == cookie.Value {
			t.Fatal("RenewToken kept the token")
		}
		if got := serve("/get", renewed).Body.String(); got != "ann" {
			t.Fatalf("/get after RenewToken = %q; want ann", got)
		}
		if _, found, err := store.Find(cookie.Value); err != nil || found {
			t.Fatalf("Find(old token) = %v, %v; want not found", found, err)
		}

		if b.name == "Pool" { // KEYS: on a Cluster it would ask one master
			all, err := store.All()
			if err != nil || len(all) != 1 {
				t.Fatalf("All = %d sessions, %v; want 1", len(all), err)
			}
		}

		serve("/destroy", renewed)
		if got := serve("/get", renewed).Body.String(); got != "" {
			t.Fatalf("/get after Destroy = %q; want nothing", got)
		}
		if _, found, err := store.Find(renewed.Value); err != nil || found {
			t.Fatalf("Find after Destroy = %v, %v; want not found", found, err)
		}

		short := cookieOf(t, serve("/put?user=bob&lifetime=1s", nil), sm.Cookie.Name)
		if got := serve("/get", short).Body.String(); got != "bob" {
			t.Fatalf("/get before expiry = %q; want bob", got)
		}
		waitUntil(t, "the session expires in Redis", func() bool {
			_, found, err := store.Find(short.Value)
			return err == nil && !found
		})
	})
}
