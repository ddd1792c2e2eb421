package ecosystem_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-contrib/sessions"
	ginredis "github.com/gin-contrib/sessions/redis"
	"github.com/gin-gonic/gin"
)

// TestGinSessions runs gin-contrib/sessions' redis store, on
// boj/redistore, on the bridge behind a gin router.
func TestGinSessions(t *testing.T) {
	gin.SetMode(gin.TestMode)
	forEachBackend(t, func(t *testing.T, b *backend) {
		store, err := ginredis.NewStoreWithPool(b.rp, cookieKey)
		if err != nil {
			t.Fatalf("NewStoreWithPool: %v", err)
		}
		router := gin.New()
		router.Use(sessions.Sessions("gsid", store))
		router.GET("/set", func(c *gin.Context) {
			s := sessions.Default(c)
			s.Set("v", c.Query("v"))
			if c.Query("max_age") != "" {
				s.Options(sessions.Options{Path: "/", MaxAge: 1})
			}
			if err := s.Save(); err != nil {
				c.String(http.StatusInternalServerError, "%v", err)
				return
			}
			c.String(http.StatusOK, "ok")
		})
		router.GET("/get", func(c *gin.Context) {
			v, _ := sessions.Default(c).Get("v").(string)
			c.String(http.StatusOK, "%s", v)
		})
		router.GET("/logout", func(c *gin.Context) {
			s := sessions.Default(c)
			s.Clear()
			s.Options(sessions.Options{Path: "/", MaxAge: -1})
			if err := s.Save(); err != nil {
				c.String(http.StatusInternalServerError, "%v", err)
				return
			}
			c.String(http.StatusOK, "bye")
		})
		serve := func(path string, cookie *http.Cookie) *httptest.ResponseRecorder {
			t.Helper()
			r := httptest.NewRequest(http.MethodGet, path, nil)
			if cookie != nil {
				r.AddCookie(cookie)
			}
			w := httptest.NewRecorder()
			router.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
			}
			return w
		}

		cookie := cookieOf(t, serve("/set?v=hello", nil), "gsid")
		if got := serve("/get", cookie).Body.String(); got != "hello" {
			t.Fatalf("/get = %q; want hello", got)
		}
		cookie = cookieOf(t, serve("/set?v=again", cookie), "gsid")
		if got := serve("/get", cookie).Body.String(); got != "again" {
			t.Fatalf("/get after an update = %q; want again", got)
		}
		serve("/logout", cookie)
		if got := serve("/get", cookie).Body.String(); got != "" {
			t.Fatalf("/get after logout = %q; want nothing", got)
		}

		short := cookieOf(t, serve("/set?v=brief&max_age=1", nil), "gsid")
		if got := serve("/get", short).Body.String(); got != "brief" {
			t.Fatalf("/get before expiry = %q; want brief", got)
		}
		waitUntil(t, "the session expires", func() bool { return serve("/get", short).Body.String() == "" })
	})
}
