package events

// BlobRef names a value kept in the blob store instead of in an event: too large for an event or
// a read-model document (a Firestore document holds at most 1 MiB). It is the event's own type,
// not the blob port's, so a change of the port never changes what is stored.
type BlobRef struct {
	Digest string `json:"digest"` // "sha256:<64 hex digits>"
	Size   int64  `json:"size"`   // bytes
}
