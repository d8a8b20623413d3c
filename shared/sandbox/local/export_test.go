package local

// NamespacesReady is how many user namespaces r holds ready for sandboxes to join.
func NamespacesReady(r *Runtime) int {
	p := r.namespaces
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready)
}

// NamespacesJoined is how many sandboxes joined a namespace of the pool, and of them how many
// joined one made ahead.
func NamespacesJoined(r *Runtime) (joined, ahead int64) {
	if r.namespaces == nil {
		return 0, 0
	}
	return r.namespaces.joined.Load(), r.namespaces.ahead.Load()
}
