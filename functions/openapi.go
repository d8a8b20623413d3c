package functions

import (
	_ "embed"
	"net/http"
)

// The contract as served: the project's copy of the Codeset spec plus what this implementation
// documents on top of it (the `wait` parameter of GET interaction). The route-table test checks
// that the routes are exactly its operations.
//
//go:embed openapi.json
var openapiJSON []byte

// docsHTML renders openapi.json in the browser with no outside script: these machines and many
// deployments are offline.
//
//go:embed docs.html
var docsHTML []byte

// OpenAPI returns the served contract.
func OpenAPI() []byte { return openapiJSON }

func serveSpec(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(openapiJSON)
}

func serveDocs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(docsHTML)
}
