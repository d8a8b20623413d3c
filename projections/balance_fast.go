package projections

import (
	"strconv"
	"time"

	"github.com/codeset/codeset/events"
)

// The replay folds millions of session ends; decoding each with encoding/json and formatting a
// description it never shows would cost several times the rest of the fold. sessionEndOf reads
// the few fields the balance needs straight from the flat JSON object session.ended carries, and
// says ok=false on anything unusual (escapes, nesting), where the caller falls back to EntryOf.

type sessionEnd struct {
	user            string
	endedAt         string
	seconds         float64
	centsPerMinute  int64
	chargeCents     int64
	hasSeconds, any bool
}

func sessionEndOf(data []byte) (sessionEnd, bool) {
	var s sessionEnd
	i, n := skipSpace(data, 0), len(data)
	if i >= n || data[i] != '{' {
		return s, false
	}
	i++
	for {
		i = skipSpace(data, i)
		if i < n && data[i] == '}' {
			return s, true
		}
		key, j, ok := readString(data, i)
		if !ok {
			return s, false
		}
		i = skipSpace(data, j)
		if i >= n || data[i] != ':' {
			return s, false
		}
		i = skipSpace(data, i+1)
		if i >= n {
			return s, false
		}
		var str string
		var num []byte
		if data[i] == '"' {
			if str, i, ok = readString(data, i); !ok {
				return s, false
			}
		} else {
			j := i
			for j < n && (data[j] == '-' || data[j] == '+' || data[j] == '.' || data[j] == 'e' || data[j] == 'E' || data[j] >= '0' && data[j] <= '9') {
				j++
			}
			if j == i {
				if n-i >= 4 && string(data[i:i+4]) == "null" {
					j = i + 4
				} else {
					return s, false // true/false/objects: not this event's shape
				}
			}
			num, i = data[i:j], j
		}
		switch key {
		case "user_id":
			s.user = str
		case "ended_at":
			s.endedAt = str
		case "billable_seconds":
			f, err := strconv.ParseFloat(string(num), 64)
			if err != nil && len(num) > 0 && string(num) != "null" {
				return s, false
			}
			s.seconds, s.hasSeconds = f, true
		case "cents_per_minute":
			if s.centsPerMinute, ok = parseInt(num); !ok {
				return s, false
			}
		case "charge_cents":
			if s.chargeCents, ok = parseInt(num); !ok {
				return s, false
			}
		}
		i = skipSpace(data, i)
		if i < n && data[i] == ',' {
			i++
			continue
		}
		if i < n && data[i] == '}' {
			return s, true
		}
		return s, false
	}
}

func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || string(b) == "null" {
		return 0, true
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// readString reads a JSON string without escapes starting at b[i] == '"'.
func readString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			return "", i, false
		case '"':
			return string(b[i+1 : j]), j + 1, true
		}
	}
	return "", i, false
}

// addSessionEnd folds a session end the way Add(EntryOf(e)) does, without building the entry.
func (r *Replay) addSessionEnd(e events.Envelope) (bool, error) {
	s, ok := sessionEndOf(e.Data)
	if !ok {
		return false, nil
	}
	charge := s.chargeCents
	if charge == 0 {
		charge = events.ChargeCents(s.seconds, s.centsPerMinute)
	}
	if charge <= 0 {
		return true, nil
	}
	user := s.user
	if user == "" {
		user = e.UserID
	}
	if user == "" || r.User != "" && user != r.User {
		return user != "", nil
	}
	at := e.OccurredAt.UTC()
	if s.endedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, s.endedAt)
		if err != nil {
			return false, nil
		}
		at = t.UTC()
	}
	b := r.balance(user)
	minutes := s.seconds / 60
	b.Summary.Transactions++
	b.Summary.TotalSessions++
	b.Summary.TotalSessionSeconds += minutes * 60
	b.Summary.TotalSessionCostCents += charge
	b.BalanceCents -= charge
	b.TotalSpentCents = b.Summary.Spent()
	if at.After(b.LastUpdated) {
		b.LastUpdated = at
	}
	return true, nil
}
