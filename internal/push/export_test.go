package push

// ShuttingDown reports whether Shutdown has begun: Push starts nothing.
func (p *Pusher) ShuttingDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}
