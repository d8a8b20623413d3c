package events

// The aggregates as the write path (app.Update) takes them: each one's stream folded to a
// pointer to its state (the zero state, at version 0, for a stream with no events), and the
// version it stands at.

// SessionOf folds a session's stream.
func SessionOf(evs []Envelope) (*Session, error) {
	s, _, err := FoldSession(evs)
	return &s, err
}

// UserOf folds a user's stream.
func UserOf(evs []Envelope) (*User, error) {
	u, err := FoldUser(evs)
	return &u, err
}

// VerificationOf folds a verification job's stream.
func VerificationOf(evs []Envelope) (*Verification, error) {
	v, _, err := FoldVerification(evs)
	return &v, err
}

// InteractionOf folds an interaction's stream.
func InteractionOf(evs []Envelope) (*Interaction, error) {
	it, _, err := FoldInteraction(evs)
	return &it, err
}

// AccountOf returns the fold of userID's account stream.
func AccountOf(userID string) func([]Envelope) (*Account, error) {
	return func(evs []Envelope) (*Account, error) {
		a, err := FoldAccount(userID, evs)
		if err != nil {
			return NewAccount(userID), err
		}
		return a, nil
	}
}

// DatasetOf folds a dataset's stream.
func DatasetOf(evs []Envelope) (*Dataset, error) {
	d := &Dataset{}
	for _, e := range evs {
		if err := d.Apply(e); err != nil {
			return d, err
		}
	}
	return d, nil
}

// StreamVersion is the version of the session's stream folded.
func (s *Session) StreamVersion() int64 { return s.Version }

// StreamVersion is the version of the user's stream folded.
func (u *User) StreamVersion() int64 { return u.Version }

// StreamVersion is the version of the job's stream folded.
func (v *Verification) StreamVersion() int64 { return v.Version }

// StreamVersion is the version of the interaction's stream folded.
func (it *Interaction) StreamVersion() int64 { return it.Version }

// StreamVersion is the version of the account's stream folded.
func (a *Account) StreamVersion() int64 { return a.Version }

// StreamVersion is the version of the dataset's stream folded.
func (d *Dataset) StreamVersion() int64 { return d.Version }
