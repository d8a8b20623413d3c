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

// NamespacesJoined is how many sandboxes joined a namespace made ahead.
func NamespacesJoined(r *Runtime) int64 {
	if r.namespaces == nil {
		return 0
	}
	return r.namespaces.joined.Load()
}
