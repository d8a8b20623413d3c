package functions

import (
	"net/http"

	"github.com/codeset/codeset/app"
	"github.com/codeset/codeset/shared/httpapi"
)

type gitHubRepoItem struct {
	FullName string `json:"full_name"`
	Private  bool   `json:"private"`
	HTMLURL  string `json:"html_url"`
}

type gitHubReposResponse struct {
	Repos []gitHubRepoItem `json:"repos"`
}

// ListRepos answers GET /repos: every repository the caller can reach on GitHub, with the token
// of their last GitHub login (stored sealed), all pages followed.
func ListRepos(a *app.App, w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := a.Identities()
	if err != nil {
		return err
	}
	userID := app.Caller(ctx).UserID
	d, err := currentUser(ctx, a, userID, 0)
	if err != nil {
		return err
	}
	if d.GitHubToken == "" {
		return httpapi.BadRequest("no GitHub token is stored for this user: log in with GitHub first")
	}
	token, err := id.Sealer.Open(d.GitHubToken, userID)
	if err != nil {
		return httpapi.BadRequest("the stored GitHub token can no longer be read; log in with GitHub again")
	}
	repos, err := id.GitHub.Repos(ctx, token)
	if err != nil {
		return gitHubError(a, r, err)
	}
	out := gitHubReposResponse{Repos: make([]gitHubRepoItem, 0, len(repos))}
	for _, rp := range repos {
		out.Repos = append(out.Repos, gitHubRepoItem{FullName: rp.FullName, Private: rp.Private, HTMLURL: rp.HTMLURL})
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}
