// Command pulumi-language-python is a small Python language host for the cluster-secrets e2e
// suite, written for this project. Upstream's host lives in its own Go module
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3), which the module proxy
// does not serve, so this one implements the parts of the LanguageRuntime protocol that
// `pulumi preview/up/destroy/about` use, on top of the sdk/v3 packages (the Python toolchain
// handling comes from github.com/pulumi/pulumi/sdk/v3/python/toolchain).
//
// It runs the program with the pulumi-language-python-exec script from the same sdk/v3 module,
// which e2e/build-tools copies next to this binary.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
)

// exitBail is the exit code with which the exec script says it already showed the error.
const exitBail = 32

// listPlugins prints, as JSON, every installed distribution that ships a pulumi-plugin.json
// in one of its top-level packages.
const listPlugins = `
import importlib.metadata as md, json
found = []
for dist in md.distributions():
    for f in dist.files or []:
        if f.name == "pulumi-plugin.json" and len(f.parts) == 2:
            try:
                with open(f.locate()) as fh:
                    meta = json.load(fh)
            except Exception:
                continue
            found.append({"dist": dist.metadata["Name"], "version": dist.version, "meta": meta})
print(json.dumps(found))
`

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engine string

	mu      sync.Mutex
	running map[*exec.Cmd]struct{}
}

func optionString(info *pulumirpc.ProgramInfo, key string) string {
	if info == nil || info.GetOptions() == nil {
		return ""
	}
	if v, ok := info.GetOptions().GetFields()[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

func toolchainFor(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	opts := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
		Virtualenv: optionString(info, "virtualenv"),
		Toolchain:  toolchain.Auto,
	}
	switch optionString(info, "toolchain") {
	case "", "auto":
	case "pip":
		opts.Toolchain = toolchain.Pip
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	case "uv":
		opts.Toolchain = toolchain.Uv
	default:
		return nil, fmt.Errorf("unsupported python toolchain %q", optionString(info, "toolchain"))
	}
	return toolchain.ResolveToolchain(opts)
}

// withEnv returns cmd's environment (the process's when unset) plus extra.
func withEnv(cmd *exec.Cmd, extra ...string) []string {
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	return append(env, extra...)
}

func (h *host) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.engine = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *host) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	tc, err := toolchainFor(req.GetInfo())
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, fmt.Errorf("python environment: %w", err)
	}
	cmd, err := tc.Command(ctx, "-c", listPlugins)
	if err != nil {
		return nil, err
	}
	cmd.Dir = req.GetInfo().GetProgramDirectory()
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing python packages: %w: %s", err, stderr.String())
	}
	var found []struct {
		Dist    string `json:"dist"`
		Version string `json:"version"`
		Meta    struct {
			Resource bool   `json:"resource"`
			Name     string `json:"name"`
			Version  string `json:"version"`
			Server   string `json:"server"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(out, &found); err != nil {
		return nil, fmt.Errorf("reading the package list: %w", err)
	}
	seen := map[string]bool{}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, f := range found {
		if !f.Meta.Resource || f.Meta.Name == "" || seen[f.Meta.Name] {
			continue
		}
		seen[f.Meta.Name] = true
		v := f.Meta.Version
		if v == "" {
			v = f.Version
		}
		resp.Packages = append(resp.Packages, &pulumirpc.PackageDependency{
			Kind:    "resource",
			Name:    f.Meta.Name,
			Version: v,
			Server:  f.Meta.Server,
		})
	}
	sort.Slice(resp.Packages, func(i, j int) bool { return resp.Packages[i].Name < resp.Packages[j].Name })
	return resp, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	tc, err := toolchainFor(req.GetInfo())
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("missing executor %s: %w", script, err)
	}
	args := []string{
		"-u", script,
		"--monitor", req.GetMonitorAddress(),
		"--engine", h.engine,
		"--project", req.GetProject(),
		"--stack", req.GetStack(),
		"--pwd", req.GetPwd(),
		"--dry_run", strconv.FormatBool(req.GetDryRun()),
		"--parallel", strconv.Itoa(int(req.GetParallel())),
	}
	if req.GetOrganization() != "" {
		args = append(args, "--organization", req.GetOrganization())
	}
	if root := req.GetInfo().GetRootDirectory(); root != "" {
		args = append(args, "--root_directory", root)
	}
	program := req.GetProgram()
	if program == "" {
		program = "."
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secrets, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	cmd.Env = withEnv(cmd, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secrets),
		"PYTHONUNBUFFERED=1")
	cmd.Dir = req.GetPwd()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr

	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.running[cmd] = struct{}{}
	h.mu.Unlock()
	err = cmd.Wait()
	h.mu.Lock()
	delete(h.running, cmd)
	h.mu.Unlock()

	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == exitBail:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exitErr):
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
		}, nil
	default:
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
}

// streamWriter forwards output to an InstallDependencies stream.
type streamWriter struct {
	send   func(*pulumirpc.InstallDependenciesResponse) error
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	b := append([]byte(nil), p...)
	msg := &pulumirpc.InstallDependenciesResponse{Stdout: b}
	if w.stderr {
		msg = &pulumirpc.InstallDependenciesResponse{Stderr: b}
	}
	if err := w.send(msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, srv grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	tc, err := toolchainFor(req.GetInfo())
	if err != nil {
		return err
	}
	stdout, stderr := streamWriter{send: srv.Send}, streamWriter{send: srv.Send, stderr: true}
	dir := req.GetInfo().GetProgramDirectory()
	if dir == "" {
		dir = req.GetDirectory()
	}
	return tc.InstallDependencies(srv.Context(), dir, req.GetUseLanguageVersionTools(), true, stdout, stderr)
}

func (h *host) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := toolchainFor(req.GetInfo())
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
		Metadata:   map[string]string{"host": "cluster-secrets e2e python language host"},
	}, nil
}

func (h *host) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := toolchainFor(req.GetInfo())
	if err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, d := range deps {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return resp, nil
}

func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for cmd := range h.running {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	}
	return &emptypb.Empty{}, nil
}

// limitedBuffer keeps the first 64 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - len(l.b); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		l.b = append(l.b, p[:room]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

var _ io.Writer = (*limitedBuffer)(nil)

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	// Flags older engines pass; accepted and ignored (the options come in ProgramInfo).
	flag.String("tracing", "", "ignored")
	flag.String("root", "", "ignored")
	flag.String("virtualenv", "", "ignored")
	flag.String("toolchain", "", "ignored")
	flag.String("typechecker", "", "ignored")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	h := &host{running: map[*exec.Cmd]struct{}{}}
	if args := flag.Args(); len(args) > 0 {
		h.engine = args[len(args)-1]
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
		os.Exit(1)
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
		os.Exit(1)
	}
}
