package service

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/atelier-ml/atelier"
)

// Broker fans events out to the watchers of a workspace. It never blocks a publisher: a watcher
// whose buffer is full is dropped (its channel closed), and reconnects.
type Broker struct {
	mu   sync.Mutex
	subs map[string]map[*subscriber]struct{}
	seq  atomic.Int64
	// count lets publishers skip building events nobody watches.
	count atomic.Int64
}

type subscriber struct {
	ch     chan *atelier.Event
	filter atelier.EventFilter
}

// SubscriberBuffer is how many events a watcher may lag behind before it is dropped.
const SubscriberBuffer = 1024

// NewBroker returns an empty broker.
func NewBroker() *Broker { return &Broker{subs: map[string]map[*subscriber]struct{}{}} }

// Subscribe registers a watcher until ctx ends.
func (b *Broker) Subscribe(ctx context.Context, workspace string, f atelier.EventFilter) <-chan *atelier.Event {
	sub := &subscriber{ch: make(chan *atelier.Event, SubscriberBuffer), filter: f}
	b.mu.Lock()
	if b.subs[workspace] == nil {
		b.subs[workspace] = map[*subscriber]struct{}{}
	}
	b.subs[workspace][sub] = struct{}{}
	b.count.Add(1)
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.remove(workspace, sub)
	}()
	return sub.ch
}

func (b *Broker) remove(workspace string, sub *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[workspace][sub]; ok {
		delete(b.subs[workspace], sub)
		b.count.Add(-1)
		close(sub.ch)
	}
}

// Watched reports whether anyone watches the workspace.
func (b *Broker) Watched(workspace string) bool {
	if b.count.Load() == 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs[workspace]) > 0
}

// Publish delivers e to the matching watchers of its workspace.
func (b *Broker) Publish(e *atelier.Event) {
	e.ID = b.seq.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs[e.Workspace] {
		if !sub.filter.Match(e) {
			continue
		}
		select {
		case sub.ch <- e:
		default:
			delete(b.subs[e.Workspace], sub)
			b.count.Add(-1)
			close(sub.ch)
		}
	}
}
