package functions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/github"
	"github.com/codeset/codeset/shared/httpapi"
)

// Where an agent job's repository comes from, for the caller who asks (first that applies):
//
//  1. GitHub, when the caller logged in with GitHub and GitHub lets that token read it;
//  2. the catalog: the repository of a sample with an environment archive (every user may
//     already open a session on it), at the sample's base commit;
//  3. CODESET_LOCAL_REPOS_DIR/<owner>/<name>, a git repository the operator put there.
//
// Otherwise a 404 that says why, with a code: repository_not_found, or github_app_required when
// GitHub refuses this app for the repository's organisation.

// repoPattern is GitHub's owner/name: an owner of letters, digits and '-', a name of letters,
// digits, '-', '_' and '.'; neither may be "." or "..", so a name is never a path escape.
var repoPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$`)

// validRepo reports whether repo is owner/name.
func validRepo(repo string) bool {
	if !repoPattern.MatchString(repo) {
		return false
	}
	name := repo[len(filepath.Dir(repo))+1:]
	return name != "." && name != ".."
}

// Error codes of a repository the caller may not use.
const (
	codeRepoNotFound     = "repository_not_found"
	codeGitHubAppMissing = "github_app_required"
)

// agentJobSource finds the repository for userID, or answers why not.
func agentJobSource(ctx context.Context, a *app.App, userID, repo, ref string) (events.AgentJobSource, error) {
	why := fmt.Sprintf("you have not logged in with GitHub, and %s is neither a repository of the catalog's samples nor one this server keeps locally", repo)
	code := codeRepoNotFound
	token, err := gitHubToken(ctx, a, userID)
	if err != nil {
		return events.AgentJobSource{}, err
	}
	if token != "" {
		_, err := a.Identity.GitHub.Repository(ctx, token, repo)
		switch {
		case err == nil:
			return events.AgentJobSource{Kind: events.SourceGitHub}, nil
		case errors.Is(err, github.ErrRepoNeedsApp):
			why, code = fmt.Sprintf("GitHub refuses this app access to %s: its organisation restricts third-party access; install or approve the Codeset GitHub App there, then try again", repo), codeGitHubAppMissing
		case errors.Is(err, github.ErrRepoNotFound):
			why = fmt.Sprintf("GitHub says %s does not exist or your GitHub login cannot read it", repo)
		case errors.Is(err, github.ErrBadToken):
			why = fmt.Sprintf("GitHub refused your stored token, so %s could not be checked: log in with GitHub again", repo)
		default:
			a.Logger.WarnContext(ctx, "GitHub repository check failed", "repo", repo, "error", err.Error())
			return events.AgentJobSource{}, httpapi.Errorf(http.StatusServiceUnavailable, "GitHub could not be asked whether you can read %s; try again later", repo)
		}
	}
	if src, ok, err := catalogSource(ctx, a, repo, ref); err != nil || ok {
		return src, err
	}
	if localRepo(a, repo) != "" {
		return events.AgentJobSource{Kind: events.SourceLocal}, nil
	}
	return events.AgentJobSource{}, &httpapi.Error{Status: http.StatusNotFound, Code: code, Detail: "repository not found: " + why}
}

// gitHubToken is the caller's GitHub token, opened from its sealed copy; "" when they have none
// (the local user, an API key's user who never logged in with GitHub).
func gitHubToken(ctx context.Context, a *app.App, userID string) (string, error) {
	if a.Identity == nil {
		return "", nil
	}
	d, err := currentUser(ctx, a, userID, 0)
	var he *httpapi.Error
	if errors.As(err, &he) && he.Status == http.StatusNotFound {
		return "", nil
	}
	if err != nil || d.GitHubToken == "" {
		return "", err
	}
	token, err := a.Identity.Sealer.Open(d.GitHubToken, userID)
	if err != nil {
		return "", httpapi.BadRequest("the stored GitHub token can no longer be read; log in with GitHub again")
	}
	return token, nil
}

// catalogSource is the environment archive of a catalog sample of repo: at ref when ref names a
// sample's base commit, else the newest sample's.
func catalogSource(ctx context.Context, a *app.App, repo, ref string) (events.AgentJobSource, bool, error) {
	where := []projections.Filter{{Field: "repo", Value: repo}, {Field: "latest", Value: true}}
	if ref != "" {
		where = append(where, projections.Filter{Field: "base_commit", Value: ref})
	}
	samples, _, err := projections.List[projections.SampleDoc](ctx, a.Docs, projections.SamplesCollection, projections.Query{Where: where, Limit: 20})
	if err != nil {
		return events.AgentJobSource{}, false, fmt.Errorf("catalog samples of %s: %w", repo, err)
	}
	var best *projections.SampleDoc
	for i, s := range samples {
		if s.Environment.ArchiveRef != nil && (best == nil || s.CreatedAt.After(best.CreatedAt)) {
			best = &samples[i]
		}
	}
	if best == nil {
		return events.AgentJobSource{}, false, nil
	}
	return events.AgentJobSource{Kind: events.SourceCatalog, Archive: best.Environment.ArchiveRef, Commit: best.BaseCommit}, true, nil
}

// localRepo is the directory of repo under CODESET_LOCAL_REPOS_DIR when it holds a git
// repository (a work tree or a bare one), else "".
func localRepo(a *app.App, repo string) string {
	if a.Config.LocalReposDir == "" || !validRepo(repo) {
		return ""
	}
	dir := filepath.Join(a.Config.LocalReposDir, filepath.FromSlash(repo))
	for _, marker := range []string{".git", "HEAD"} {
		if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
			return dir
		}
	}
	return ""
}
