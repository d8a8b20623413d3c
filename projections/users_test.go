package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/auth"
)

// userHistory is a user stream with keys created, revoked, a deactivation and a reactivation.
func userHistory(t *testing.T) []events.Envelope {
	t.Helper()
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var u events.User
	var all []events.Envelope
	step := func(evs []events.Envelope, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			e.Stream, e.Version = "user-u1", u.Version+1
			if err := u.Apply(e); err != nil {
				t.Fatal(err)
			}
			all = append(all, e)
		}
		at = at.Add(time.Minute)
	}
	step(events.Register(u, "e1", "u1", events.Profile{Name: "A", Email: "a@x"}, false, at))
	step(events.CreateAPIKey(u, "e2", events.APIKeyCreatedData{KeyID: "k1", Hash: "h1", Prefix: "cs_abcd", Last: "wxyz"}, at))
	step(events.CreateAPIKey(u, "e3", events.APIKeyCreatedData{KeyID: "k2", Hash: "h2", Prefix: "cs_efgh", Last: "stuv"}, at))
	step(events.RevokeAPIKey(u, "e4", "k1", at))
	step(events.AcceptTerms(u, "e5", at))
	step(events.Deactivate(u, "e6", "abuse", at))
	step(events.Reactivate(u, "e7", at))
	step(events.CreateAPIKey(u, "e8", events.APIKeyCreatedData{KeyID: "k3", Hash: "h3", Prefix: "cs_ijkl", Last: "mnop"}, at))
	return all
}

func loader(evs []events.Envelope) func(context.Context, string, int64) ([]events.Envelope, error) {
	return func(_ context.Context, _ string, from int64) ([]events.Envelope, error) {
		var out []events.Envelope
		for _, e := range evs {
			if e.Version >= from {
				out = append(out, e)
			}
		}
		return out, nil
	}
}

func state(t *testing.T, s projections.DocStore) string {
	t.Helper()
	var out []json.RawMessage
	for _, c := range []struct{ coll, id string }{{projections.UsersCollection, "u1"},
		{projections.APIKeysCollection, "h1"}, {projections.APIKeysCollection, "h2"}, {projections.APIKeysCollection, "h3"}} {
		raw, err := s.Get(context.Background(), c.coll, c.id)
		if err != nil {
			t.Fatalf("%s/%s: %v", c.coll, c.id, err)
		}
		out = append(out, raw)
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// Delivered in order, once: the reference. Then every shuffled delivery with duplicates must
// end in the same documents.
func TestProjectUserIdempotentInAnyOrder(t *testing.T) {
	ctx := context.Background()
	evs := userHistory(t)
	ref := docStore(t)
	for _, e := range evs {
		if err := projections.ProjectUser(ctx, ref, e, loader(evs)); err != nil {
			t.Fatal(err)
		}
	}
	want := state(t, ref)
	u, _ := projections.Get[projections.UserDoc](ctx, ref, projections.UsersCollection, "u1")
	if u.Version != int64(len(evs)) || !u.Active || u.TermsAcceptedAt == nil || len(u.APIKeys) != 3 || u.APIKeys[0].RevokedAt == nil || u.TokenGeneration != 1 {
		t.Fatalf("user doc: %+v", u)
	}
	lookup := projections.AuthLookup{Docs: ref}
	for hash, want := range map[string]auth.KeyRecord{
		"h1": {KeyID: "k1", UserID: "u1", Revoked: true, UserActive: true},
		"h2": {KeyID: "k2", UserID: "u1", UserActive: true},
		"h3": {KeyID: "k3", UserID: "u1", UserActive: true},
	} {
		got, err := lookup.KeyByHash(ctx, hash)
		if err != nil || got.KeyID != want.KeyID || got.Revoked != want.Revoked || got.UserActive != want.UserActive {
			t.Fatalf("%s: %+v %v", hash, got, err)
		}
	}
	if _, err := lookup.KeyByHash(ctx, "nope"); !errors.Is(err, auth.ErrUnknown) {
		t.Fatalf("unknown hash: %v", err)
	}

	for seed := range 20 {
		s := docStore(t)
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		deliveries := append(append([]events.Envelope{}, evs...), evs...)
		rng.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
		for _, e := range deliveries {
			if err := projections.ProjectUser(ctx, s, e, loader(evs)); err != nil {
				t.Fatal(err)
			}
		}
		if got := state(t, s); got != want {
			t.Fatalf("seed %d: shuffled duplicate delivery differs:\n%s\n%s", seed, got, want)
		}
	}
}

func TestProjectUserDeactivationReachesKeys(t *testing.T) {
	ctx := context.Background()
	evs := userHistory(t)[:6] // up to the deactivation
	s := docStore(t)
	for _, e := range evs {
		if err := projections.ProjectUser(ctx, s, e, loader(evs)); err != nil {
			t.Fatal(err)
		}
	}
	k, _ := projections.AuthLookup{Docs: s}.KeyByHash(ctx, "h2")
	u, _ := projections.AuthLookup{Docs: s}.User(ctx, "u1")
	if k.UserActive || u.Active || u.TokenGeneration != 1 {
		t.Fatalf("after deactivation: key %+v user %+v", k, u)
	}
}

func TestRecordKeyUsesSurvivesProjection(t *testing.T) {
	ctx := context.Background()
	evs := userHistory(t)
	s := docStore(t)
	for _, e := range evs[:3] {
		projections.ProjectUser(ctx, s, e, loader(evs))
	}
	t1 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	if err := projections.RecordKeyUses(ctx, s, []auth.Use{{KeyID: "k1", UserID: "u1", At: t1}, {KeyID: "k9", UserID: "nobody", At: t1}}); err != nil {
		t.Fatal(err)
	}
	// An older flush (another process) does not move it back.
	projections.RecordKeyUses(ctx, s, []auth.Use{{KeyID: "k1", UserID: "u1", At: t1.Add(-time.Hour)}})
	for _, e := range evs[3:] {
		projections.ProjectUser(ctx, s, e, loader(evs))
	}
	u, _ := projections.Get[projections.UserDoc](ctx, s, projections.UsersCollection, "u1")
	if !u.KeyLastUsed["k1"].Equal(t1) || u.Version != int64(len(evs)) {
		t.Fatalf("last use lost by projection: %+v", u.KeyLastUsed)
	}
	if _, err := s.Get(ctx, projections.UsersCollection, "nobody"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatal("a flush created a user")
	}
}
