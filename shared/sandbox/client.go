package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// execSlack is how much longer than the command's timeout the client waits for the agent's
// answer: the kill grace, the reaping and the trip back.
const execSlack = 15 * time.Second

// AgentClient is the Client of one sandbox's agent, over TCP (http(s)://…) or a unix socket
// (unix:///path.sock).
type AgentClient struct {
	base   string
	secret string
	hc     *http.Client
}

var _ Client = (*AgentClient)(nil)

// NewClient returns the client of the agent at info.URL. hc carries the requests; nil means a
// transport of its own (dialing the unix socket for unix:// URLs). On Cloud Run hc adds the ID
// token IAM asks for.
func NewClient(info Info, hc *http.Client) (*AgentClient, error) {
	c := &AgentClient{base: strings.TrimRight(info.URL, "/"), secret: info.Secret, hc: hc}
	if path, ok := strings.CutPrefix(info.URL, "unix://"); ok {
		if path == "" {
			return nil, errors.New("sandbox: unix URL without a path")
		}
		c.base = "http://sandbox"
		if hc == nil {
			c.hc = &http.Client{Transport: UnixTransport(path)}
		}
		return c, nil
	}
	u, err := url.Parse(info.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sandbox: agent URL %q is neither http(s):// nor unix://", info.URL)
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	return c, nil
}

// UnixTransport is an HTTP transport whose every connection goes to the socket at path. It
// keeps connections alive: an exec then costs one request on an open connection.
func UnixTransport(path string) *http.Transport {
	var d net.Dialer
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
}

// Close drops the client's idle connections.
func (c *AgentClient) Close() { c.hc.CloseIdleConnections() }

// Secret is the secret the client presents.
func (c *AgentClient) Secret() string { return c.secret }

// Health asks the agent whether it is up.
func (c *AgentClient) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, PathHealth, nil, "", &h)
	return h, err
}

// Exec runs command with its timeout (0: the agent's default of 300 s). The request waits a
// little longer than the timeout for the agent's answer, never forever.
func (c *AgentClient) Exec(ctx context.Context, command string, timeout time.Duration) (ExecResult, error) {
	if timeout <= 0 {
		timeout = 300 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+execSlack)
	defer cancel()
	var res ExecResult
	err := c.do(ctx, http.MethodPost, PathExec, ExecRequest{Command: command, Timeout: timeout}, "", &res)
	return res, err
}

// Run starts (or finds) a run of the agent and waits up to r.Wait for it; the request itself
// waits a little longer for the agent's answer, never forever.
func (c *AgentClient) Run(ctx context.Context, r RunRequest) (RunState, error) {
	ctx, cancel := context.WithTimeout(ctx, r.Wait+execSlack)
	defer cancel()
	var st RunState
	err := c.do(ctx, http.MethodPost, PathRuns, r, "", &st)
	return st, err
}

// Await waits up to wait for the end of run id.
func (c *AgentClient) Await(ctx context.Context, id string, wait time.Duration) (RunState, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+execSlack)
	defer cancel()
	var st RunState
	q := url.Values{"wait": {wait.String()}}
	err := c.do(ctx, http.MethodGet, PathRuns+"/"+url.PathEscape(id)+"?"+q.Encode(), nil, "", &st)
	return st, err
}

// StrReplace replaces the one occurrence of old in path.
func (c *AgentClient) StrReplace(ctx context.Context, path, old, new string) (bool, string, error) {
	var res StrReplaceResponse
	err := c.do(ctx, http.MethodPost, PathStrReplace, StrReplaceRequest{Path: path, Old: old, New: new}, "", &res)
	return res.OK, res.Message, err
}

// Upload writes content at path.
func (c *AgentClient) Upload(ctx context.Context, path string, content []byte, executable bool) (int64, error) {
	q := url.Values{"path": {path}, "executable": {strconv.FormatBool(executable)}}
	var res UploadResponse
	if err := c.do(ctx, http.MethodPut, PathUpload+"?"+q.Encode(), content, "application/octet-stream", &res); err != nil {
		return 0, err
	}
	return res.Size, nil
}

// Verify runs the oracle in the sandbox; like Exec it waits a little longer than the timeout.
func (c *AgentClient) Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error) {
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout+execSlack+time.Minute) // plus git's restore and apply
		defer cancel()
	}
	var res VerifyResult
	err := c.do(ctx, http.MethodPost, PathVerify, req, "", &res)
	return res, err
}

// Changes fetches the agent's changes to its work tree since it started, as a layer (an agent
// started with change tracking: Cloud Run's).
func (c *AgentClient) Changes(ctx context.Context) ([]byte, error) {
	var layer rawBody
	err := c.do(ctx, http.MethodGet, PathChanges, nil, "", &layer)
	return layer, err
}

// rawBody takes an answer as it is instead of decoding JSON.
type rawBody []byte

// do sends one request. Transport failures, a rejected secret, server errors and unreadable
// answers are ErrUnreachable; a request the agent refuses for the user's reasons is ErrRejected.
// When the caller's own context ends, its error is returned as it is.
func (c *AgentClient) do(ctx context.Context, method, path string, body any, contentType string, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("sandbox: encode %s: %w", path, err)
		}
		rd, contentType = bytes.NewReader(buf), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set(SecretHeader, c.secret)
	resp, err := c.hc.Do(req)
	if err != nil {
		if cerr := context.Cause(ctx); cerr != nil && !errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("sandbox %s: %w", path, cerr)
		}
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%w: %s: reading the answer: %v", ErrUnreachable, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, data)
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			if e.Reason == ReasonNoSuchRun {
				return fmt.Errorf("%w: %s", ErrNoSuchRun, e.Error)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			return &Rejection{Reason: e.Reason, Message: e.Error}
		}
		return fmt.Errorf("%w: %s: %s", ErrUnreachable, path, e.Error)
	}
	if raw, ok := out.(*rawBody); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %s: unreadable answer: %v", ErrUnreachable, path, err)
	}
	return nil
}

// Unreachable is a Client whose every call fails with ErrUnreachable and err: the client of a
// sandbox whose Info cannot be dialled at all.
func Unreachable(err error) Client { return unreachable{err} }

type unreachable struct{ err error }

func (u unreachable) Exec(context.Context, string, time.Duration) (ExecResult, error) {
	return ExecResult{}, fmt.Errorf("%w: %v", ErrUnreachable, u.err)
}
func (u unreachable) Run(context.Context, RunRequest) (RunState, error) {
	return RunState{}, fmt.Errorf("%w: %v", ErrUnreachable, u.err)
}
func (u unreachable) Await(context.Context, string, time.Duration) (RunState, error) {
	return RunState{}, fmt.Errorf("%w: %v", ErrUnreachable, u.err)
}
func (u unreachable) StrReplace(context.Context, string, string, string) (bool, string, error) {
	return false, "", fmt.Errorf("%w: %v", ErrUnreachable, u.err)
}
func (u unreachable) Upload(context.Context, string, []byte, bool) (int64, error) {
	return 0, fmt.Errorf("%w: %v", ErrUnreachable, u.err)
}
func (u unreachable) Verify(context.Context, VerifyRequest) (VerifyResult, error) {
	return VerifyResult{}, fmt.Errorf("%w: %v", ErrUnreachable, u.err)
}
