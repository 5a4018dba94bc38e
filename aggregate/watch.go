package aggregate

import (
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDelay gathers the burst of events one save makes into one reload.
const reloadDelay = 200 * time.Millisecond

// blacklistWatcher calls reload when a blacklist file changes. It watches
// the files' directories, since editors and config managers replace files
// (rename over) rather than write them in place.
type blacklistWatcher struct {
	w      *fsnotify.Watcher
	log    *slog.Logger
	reload func()

	mu    sync.Mutex
	files map[string]struct{}
	dirs  map[string]struct{}
	timer *time.Timer
	// closed and reloading let close wait for a debounced reload that
	// already started, so that none runs after Stop returns.
	closed    bool
	reloading sync.WaitGroup

	done chan struct{}
}

func newBlacklistWatcher(log *slog.Logger, reload func()) (*blacklistWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	bw := &blacklistWatcher{
		w: w, log: log, reload: reload,
		files: make(map[string]struct{}), dirs: make(map[string]struct{}),
		done: make(chan struct{}),
	}
	go bw.run()
	return bw, nil
}

// setFiles replaces the watched files.
func (bw *blacklistWatcher) setFiles(files []string) {
	bw.mu.Lock()
	defer bw.mu.Unlock()
	want := make(map[string]struct{})
	bw.files = make(map[string]struct{})
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			continue
		}
		bw.files[abs] = struct{}{}
		want[filepath.Dir(abs)] = struct{}{}
	}
	for d := range bw.dirs {
		if _, ok := want[d]; !ok {
			_ = bw.w.Remove(d)
			delete(bw.dirs, d)
		}
	}
	for d := range want {
		if _, ok := bw.dirs[d]; ok {
			continue
		}
		if err := bw.w.Add(d); err != nil {
			bw.log.Warn("cannot watch blacklist directory", "dir", d, "error", err)
			continue
		}
		bw.dirs[d] = struct{}{}
	}
}

func (bw *blacklistWatcher) run() {
	defer close(bw.done)
	for {
		select {
		case ev, ok := <-bw.w.Events:
			if !ok {
				return
			}
			bw.mu.Lock()
			_, watched := bw.files[filepath.Clean(ev.Name)]
			if watched && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				if bw.timer == nil {
					bw.timer = time.AfterFunc(reloadDelay, bw.fire)
				} else {
					bw.timer.Reset(reloadDelay)
				}
			}
			bw.mu.Unlock()
		case err, ok := <-bw.w.Errors:
			if !ok {
				return
			}
			bw.log.Warn("blacklist watcher error", "error", err)
		}
	}
}

func (bw *blacklistWatcher) fire() {
	bw.mu.Lock()
	if bw.closed {
		bw.mu.Unlock()
		return
	}
	bw.reloading.Add(1)
	bw.mu.Unlock()
	defer bw.reloading.Done()
	bw.reload()
}

func (bw *blacklistWatcher) close() {
	_ = bw.w.Close()
	<-bw.done
	bw.mu.Lock()
	bw.closed = true
	if bw.timer != nil {
		bw.timer.Stop()
	}
	bw.mu.Unlock()
	bw.reloading.Wait()
}
