package pebblestore_test

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/parkinglot/parkinglot/pkg/pebblestore"
)

// faultFS fails the calls that fail says to, on top of an in-memory FS.
type faultFS struct {
	vfs.FS
	fail func(op, name string) error
}

func (f *faultFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.fail("create", name); err != nil {
		return nil, err
	}
	return f.FS.Create(name, c)
}

func (f *faultFS) List(dir string) ([]string, error) {
	if err := f.fail("list", dir); err != nil {
		return nil, err
	}
	return f.FS.List(dir)
}

func (f *faultFS) Lock(name string) (io.Closer, error) {
	if err := f.fail("lock", name); err != nil {
		return nil, err
	}
	return f.FS.Lock(name)
}

// Open says why it failed: a directory in use, a permission, the disk,
// and ErrCorrupt only for damage.
func TestOpenErrorsSayWhy(t *testing.T) {
	t.Parallel()
	pathErr := func(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }
	cases := []struct {
		name string
		fail func(op, name string) error
		want string
		is   error
	}{{
		name: "pebble's LOCK held",
		fail: func(op, name string) error {
			if op == "lock" && filepath.Base(name) == "LOCK" {
				return syscall.EAGAIN
			}
			return nil
		},
		want: "data directory /data is in use by another process (Pebble's LOCK is held",
		is:   pebblestore.ErrInUse,
	}, {
		name: "LOCK not writable",
		fail: func(op, name string) error {
			if op == "lock" && filepath.Base(name) == "LOCK" {
				return pathErr("open", name, syscall.EACCES)
			}
			return nil
		},
		want: "lock data directory /data: open /data/LOCK: permission denied",
		is:   fs.ErrPermission,
	}, {
		name: "directory not readable",
		fail: func(op, name string) error {
			if op == "list" {
				return pathErr("open", name, syscall.EACCES)
			}
			return nil
		},
		want: "permission denied",
		is:   fs.ErrPermission,
	}, {
		name: "disk full",
		fail: func(op, name string) error {
			if op == "create" && strings.HasPrefix(filepath.Base(name), "MANIFEST") {
				return pathErr("open", name, syscall.ENOSPC)
			}
			return nil
		},
		want: "no space left on device",
		is:   syscall.ENOSPC,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := pebblestore.Open("/data", pebblestore.Options{FS: &faultFS{FS: vfs.NewMem(), fail: c.fail}})
			require.ErrorContains(t, err, c.want)
			require.NotErrorIs(t, err, pebblestore.ErrCorrupt)
			require.NotContains(t, err.Error(), "corrupt")
			if c.is != nil {
				require.ErrorIs(t, err, c.is)
			}
		})
	}
}

// Pebble's LOCK held by another process (an OFD lock conflicts with
// Pebble's fcntl lock even in this process) is reported as such.
func TestOpenPebbleLockHeld(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := pebblestore.Open(dir, pebblestore.Options{})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	require.NoError(t, err)
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Skipf("no OFD locks here: %v", err)
	}
	_, err = pebblestore.Open(dir, pebblestore.Options{})
	require.ErrorContains(t, err, "data directory "+dir+" is in use by another process (Pebble's LOCK is held")
	require.ErrorIs(t, err, pebblestore.ErrInUse)
	require.NotErrorIs(t, err, pebblestore.ErrCorrupt)
	require.NotErrorIs(t, err, fs.ErrPermission, "fcntl's EACCES for a held lock is no permission problem")

	// Held inside this process, by Pebble itself.
	require.NoError(t, f.Close())
	l, err := pebble.LockDirectory(dir, vfs.Default)
	require.NoError(t, err)
	defer l.Close()
	_, err = pebblestore.Open(dir, pebblestore.Options{})
	require.ErrorContains(t, err, "is in use by another process (Pebble's LOCK is held: lock held by current process)")
}
