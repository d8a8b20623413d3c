package events

// The dataset aggregate: one stream per dataset, "dataset-<name>", holding its creation, its
// description and every version of every sample in it. A dataset is imported by one writer at a
// time (the importer appends at an expected version), so one stream per dataset keeps the
// "same content imports nothing, changed content adds a version" rule a pure fold over one
// stream, and lets a 10,000-row import append in a few large batches.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// DatasetStream is the stream of a dataset.
func DatasetStream(name string) string { return "dataset-" + name }

// DatasetStreamPrefix starts every dataset stream (for rebuilds with Store.Scan).
const DatasetStreamPrefix = "dataset-"

// Event types of the dataset aggregate.
const (
	DatasetCreated     = "catalog.dataset_created"
	DatasetDescribed   = "catalog.dataset_described"
	SampleVersionAdded = "catalog.sample_version_added"
)

// Verifier kinds, as the spec's VerificationTool names them.
var VerifierKinds = []string{"test_suite", "static_analysis", "linter", "custom"}

// Report formats a sample's verifier may produce (Environment.ReportFormat).
var ReportFormats = []string{"junit", "go-test-json", "pytest-rA"}

// ErrBadDatasetName: dataset names become stream names, document ids and URL path segments.
var ErrBadDatasetName = errors.New("dataset name must be 1 to 100 characters of letters, digits, '.', '_' or '-', starting with a letter or digit")

var datasetName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// ValidDatasetName checks a dataset name.
func ValidDatasetName(name string) error {
	if !datasetName.MatchString(name) {
		return fmt.Errorf("%q: %w", name, ErrBadDatasetName)
	}
	return nil
}

// DatasetCreatedData is the data of DatasetCreated.
type DatasetCreatedData struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
}

// DatasetDescribedData is the data of DatasetDescribed: a new description.
type DatasetDescribedData struct {
	Description string `json:"description"`
}

// SampleContent is what a sample is: the SWE-bench fields, Codeset's fields and the environment
// it runs in. Two imports with equal content are the same version.
type SampleContent struct {
	SampleID               string      `json:"sample_id"`
	InstanceID             string      `json:"instance_id"`
	Repo                   string      `json:"repo"`
	BaseCommit             string      `json:"base_commit"`
	Patch                  string      `json:"patch"`
	TestPatch              string      `json:"test_patch"`
	ProblemStatement       string      `json:"problem_statement"`
	HintsText              string      `json:"hints_text"`
	EnvironmentSetupCommit string      `json:"environment_setup_commit"`
	FailToPass             []string    `json:"fail_to_pass"`
	PassToPass             []string    `json:"pass_to_pass"`
	FailToFail             []string    `json:"fail_to_fail"`
	Language               string      `json:"language"`
	Verifier               string      `json:"verifier"`
	NonCodePatch           string      `json:"non_code_patch"`
	Description            string      `json:"description"`
	Environment            Environment `json:"environment"`
	// EnvironmentDigest is the sha256 of the environment's archive ("" for an image), so that
	// a rebuilt archive with other content is a change even at the same path.
	EnvironmentDigest string `json:"environment_digest"`
}

// Hash is the content hash that decides whether an import changes a sample.
func (c SampleContent) Hash() string {
	raw, _ := json.Marshal(c) // a struct of strings and slices always encodes
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// Environment is where a sample runs, as the catalog and each session store it. The field order
// is part of the stored schema: SampleContent.Hash encodes it.
type Environment struct {
	Image           string   `json:"image,omitempty"`        // container image
	Archive         string   `json:"archive,omitempty"`      // tar.gz of the work tree, relative to the data dir (imports before ArchiveRef)
	WorkDir         string   `json:"work_dir"`               // the repository inside the sandbox
	VerifierCommand string   `json:"verifier_command"`       // run from WorkDir by the oracle
	ReportFormat    string   `json:"report_format"`          // one of ReportFormats
	ReportPaths     []string `json:"report_paths,omitempty"` // files the verifier writes; empty: its stdout
	ProtectedPaths  []string `json:"protected_paths,omitempty"`
	// ArchiveRef is the tar.gz of the work tree in the blob store, where every import puts it
	// (the data dir locally, the bucket on GCP, where a Cloud Run sandbox downloads it from).
	ArchiveRef *BlobRef `json:"archive_ref,omitempty"`
}

// SampleVersionAddedData is the data of SampleVersionAdded: version N of a sample, which is
// now its latest.
type SampleVersionAddedData struct {
	Dataset            string    `json:"dataset"`
	Version            int       `json:"version"`
	VersionDescription string    `json:"version_description"`
	ContentHash        string    `json:"content_hash"`
	CreatedAt          time.Time `json:"created_at"`
	SampleContent
}

// SampleHead is what the write side remembers of a sample: its latest version and content.
type SampleHead struct {
	Version int
	Hash    string
	Content SampleContent
}

// Dataset is the state of one dataset, folded from its stream.
type Dataset struct {
	Version     int64 // stream version folded so far
	Name        string
	Description string
	CreatedAt   time.Time
	Samples     map[string]SampleHead
}

// Apply folds one event of the dataset's stream.
func (d *Dataset) Apply(e Envelope) error {
	switch e.Type {
	case DatasetCreated:
		var c DatasetCreatedData
		if err := e.Decode(&c); err != nil {
			return err
		}
		d.Name, d.Description, d.CreatedAt = c.Name, c.Description, c.CreatedAt
	case DatasetDescribed:
		var c DatasetDescribedData
		if err := e.Decode(&c); err != nil {
			return err
		}
		d.Description = c.Description
	case SampleVersionAdded:
		var s SampleVersionAddedData
		if err := e.Decode(&s); err != nil {
			return err
		}
		if d.Samples == nil {
			d.Samples = map[string]SampleHead{}
		}
		d.Samples[s.SampleID] = SampleHead{Version: s.Version, Hash: s.ContentHash, Content: s.SampleContent}
	}
	d.Version = e.Version
	return nil
}

// Exists reports whether the dataset was created.
func (d *Dataset) Exists() bool { return d.Version > 0 }

// Planned is one sample of an import, decided: a new version or nothing.
type Planned struct {
	Content SampleContent
	Version int    // the version this import gives it (0: unchanged)
	Changed string // what changed from the latest version ("" for a first version)
}

// ImportPlan is the outcome of deciding an import against a dataset's state.
type ImportPlan struct {
	Events    []Envelope
	New       int // samples seen for the first time
	Versioned int // samples given a new version
	Unchanged int
	Samples   []Planned
}

// DecideImport turns the rows of one import (already valid, sample ids unique) into events:
// the dataset's creation or new description, and a new version of every sample whose content
// differs from its latest version. versionDescription, when set, describes every new version;
// otherwise the description says what changed. Event ids are derived from the content, so an
// append retried after a lost answer is recognised as the same events.
func DecideImport(d *Dataset, name, description, versionDescription string, rows []SampleContent, at time.Time) (ImportPlan, error) {
	if err := ValidDatasetName(name); err != nil {
		return ImportPlan{}, err
	}
	stream := DatasetStream(name)
	var plan ImportPlan
	add := func(typ, key string, data any) error {
		sum := sha256.Sum256([]byte(stream + "\x00" + typ + "\x00" + key))
		e, err := New("cat_"+hex.EncodeToString(sum[:16]), "", typ, at, data)
		if err != nil {
			return err
		}
		plan.Events = append(plan.Events, e)
		return nil
	}
	if !d.Exists() {
		if err := add(DatasetCreated, "", DatasetCreatedData{Name: name, Description: description, CreatedAt: at.UTC()}); err != nil {
			return plan, err
		}
	} else if description != "" && description != d.Description {
		if err := add(DatasetDescribed, fmt.Sprintf("%d:%s", d.Version, description), DatasetDescribedData{Description: description}); err != nil {
			return plan, err
		}
	}
	for _, c := range rows {
		hash := c.Hash()
		head, seen := d.Samples[c.SampleID]
		if seen && head.Hash == hash {
			plan.Unchanged++
			plan.Samples = append(plan.Samples, Planned{Content: c})
			continue
		}
		p := Planned{Content: c, Version: head.Version + 1}
		desc := versionDescription
		if seen {
			p.Changed = strings.Join(changedFields(head.Content, c), ", ")
			plan.Versioned++
			if desc == "" {
				desc = "changed: " + p.Changed
			}
		} else {
			plan.New++
			if desc == "" {
				desc = "initial version"
			}
		}
		data := SampleVersionAddedData{Dataset: name, Version: p.Version, VersionDescription: desc, ContentHash: hash, CreatedAt: at.UTC(), SampleContent: c}
		if err := add(SampleVersionAdded, fmt.Sprintf("%s\x00%d\x00%s", c.SampleID, p.Version, hash), data); err != nil {
			return plan, err
		}
		plan.Samples = append(plan.Samples, p)
	}
	return plan, nil
}

// changedFields names the fields (by their JSON names) that differ between two contents.
func changedFields(a, b SampleContent) []string {
	var ma, mb map[string]json.RawMessage
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	json.Unmarshal(ra, &ma)
	json.Unmarshal(rb, &mb)
	var out []string
	for k, v := range mb {
		if string(ma[k]) != string(v) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		out = []string{"content"}
	}
	return out
}
