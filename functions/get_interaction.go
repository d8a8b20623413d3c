package functions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/httpapi"
)

// maxInteractionWait bounds GET interaction's ?wait=N, in seconds.
const maxInteractionWait = 60

// waitPoll is how often a waiting request re-reads the read model, for completions recorded by
// another process (on GCP the executor runs in another function instance).
const waitPoll = 250 * time.Millisecond

// GetInteraction answers GET /sessions/{session_id}/interactions/{interaction_id}, in the spec's
// shape for the interaction's type. With ?wait=N it holds the request until the interaction
// completes or N seconds pass, then answers what it has.
func GetInteraction(a *app.App, w http.ResponseWriter, r *http.Request) error {
	wait, _, err := httpapi.IntParam(r, "wait", 0, maxInteractionWait)
	if err != nil {
		return err
	}
	sid, id := r.PathValue("session_id"), r.PathValue("interaction_id")
	read := func(fresh bool) (projections.InteractionDoc, error) {
		d, err := interaction(r.Context(), a, id, fresh)
		if errors.Is(err, projections.ErrNotFound) || (err == nil && (d.SessionID != sid || d.UserID != app.Caller(r.Context()).UserID)) {
			return d, httpapi.NotFound("interaction")
		}
		return d, err
	}
	var done *projections.Waiter
	if wait > 0 {
		// Subscribe before reading, so a completion in between is not missed.
		var cancel func()
		done, cancel = a.Completions.Subscribe(id)
		defer cancel()
	}
	d, err := read(false)
	if err != nil {
		return err
	}
	if wait > 0 && d.Status != events.InteractionCompleted {
		deadline := time.NewTimer(time.Duration(wait) * time.Second)
		defer deadline.Stop()
		poll := time.NewTicker(waitPoll)
		defer poll.Stop()
	waiting:
		for {
			select {
			case <-done.Done:
				if done.Doc != nil {
					// The executor's own fold of what it just appended: the caller's, checked
					// by the first read.
					return writeInteraction(r.Context(), a, w, *done.Doc)
				}
				break waiting
			case <-deadline.C:
				break waiting
			case <-r.Context().Done():
				return r.Context().Err()
			case <-poll.C:
				if d, err = read(false); err != nil || d.Status == events.InteractionCompleted {
					break waiting
				}
			}
		}
		if d, err = read(true); err != nil {
			return err
		}
	}
	return writeInteraction(r.Context(), a, w, d)
}

// writeInteraction answers d, with the whole output of a command whose output is in the blob
// store.
func writeInteraction(ctx context.Context, a *app.App, w http.ResponseWriter, d projections.InteractionDoc) error {
	d, err := resolveOutput(ctx, a, d)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, viewInteraction(d))
	return nil
}

// interaction reads an interaction from its read model, or folds it from its stream when the
// read model does not have it yet (the bus projects exec events after the request that appended
// them) or when fresh is asked for (a completion was just signalled): either way a caller reads
// its own writes.
func interaction(ctx context.Context, a *app.App, id string, fresh bool) (projections.InteractionDoc, error) {
	if !fresh {
		d, err := projections.Get[projections.InteractionDoc](ctx, a.Docs, projections.InteractionCollection, id)
		if !errors.Is(err, projections.ErrNotFound) {
			return d, err
		}
	}
	evs, err := a.Events.Load(ctx, events.InteractionStream(id), 1)
	if err != nil {
		return projections.InteractionDoc{}, fmt.Errorf("load interaction %s: %w", id, err)
	}
	if len(evs) == 0 {
		return projections.InteractionDoc{}, fmt.Errorf("interaction %s: %w", id, projections.ErrNotFound)
	}
	var d projections.InteractionDoc
	for _, e := range evs {
		if err := projections.ApplyInteraction(&d, e); err != nil {
			return d, err
		}
	}
	return d, nil
}

// viewInteraction renders the spec's ExecCommandInteraction, StringReplaceInteraction or
// FileUploadInteraction.
func viewInteraction(d projections.InteractionDoc) map[string]any {
	v := map[string]any{
		"interaction_id": d.InteractionID, "session_id": d.SessionID, "interaction_type": d.InteractionType,
		"created_at": d.CreatedAt, "status": d.Status,
		"exit_code": d.ExitCode, "stdout": d.Stdout, "stderr": d.Stderr,
		"execution_time_seconds": d.ExecutionTimeSeconds, "success": d.Success, "message": d.Message,
	}
	switch d.InteractionType {
	case events.InteractionExec:
		v["command"], v["command_timeout"] = d.Command, d.CommandTimeout
		if d.Usage != nil {
			v["usage"] = d.Usage // an extension of the spec (openapi.json: ExecCommandUsage)
		}
	case events.InteractionEdit:
		v["file_path"], v["str_to_replace"], v["str_to_insert"] = d.FilePath, d.StrToReplace, d.StrToInsert
	case events.InteractionUpload:
		v["file_path"], v["size_bytes"], v["make_executable"] = d.FilePath, d.SizeBytes, d.MakeExec
	}
	return v
}
