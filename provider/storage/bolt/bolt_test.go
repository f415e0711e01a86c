package bolt_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/oidcgate/oidcgate/provider/storage"
	"github.com/oidcgate/oidcgate/provider/storage/bolt"
	"github.com/oidcgate/oidcgate/provider/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, now func() time.Time) (storage.Storage, func() storage.Storage) {
		path := filepath.Join(t.TempDir(), "oidcgate.db")
		open := func() storage.Storage {
			s, err := bolt.Open(path, now)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		s := open()
		return s, func() storage.Storage {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open()
		}
	})
}

func TestOpenLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "oidcgate.db")
	s, err := bolt.Open(path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := bolt.Open(path, time.Now); err == nil {
		t.Fatal("a second Open of a held file succeeded")
	}
}
