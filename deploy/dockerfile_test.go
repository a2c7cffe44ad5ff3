package deploy

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// No Docker engine runs where these tests run, so the image is never
// built here. What can go wrong in its build is checked instead by doing
// what its build stage does, from what the Dockerfile and .dockerignore
// say: the context Docker would send (.dockerignore applied by moby's
// own matcher), the stage's RUN commands in it, and the binary they
// leave checked against what the run stage needs (distroless/static has
// no libc, so the binary must be static).

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
	line      int
}

// stage is one FROM and the instructions under it.
type stage struct {
	from, name string
	body       []instruction
}

// readDockerfile parses ../Dockerfile into its stages. It knows the
// syntax this Dockerfile uses (comments, line continuations, FROM … AS);
// an instruction it does not know fails the test, so a new one is
// looked at here before it is trusted.
func readDockerfile(t *testing.T) []stage {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if more, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		switch in.cmd {
		case "FROM":
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
		case "WORKDIR", "COPY", "RUN", "ARG", "USER", "EXPOSE", "ENTRYPOINT":
			if len(stages) == 0 {
				t.Fatalf("Dockerfile line %d: %s before FROM", in.line, in.cmd)
			}
			stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		default:
			t.Fatalf("Dockerfile line %d: %s is new to this test: teach dockerfile_test.go what it does", in.line, in.cmd)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a run stage", len(stages))
	}
	return stages
}

// only returns the stage's single instruction of cmd.
func (s stage) only(t *testing.T, cmd string) instruction {
	t.Helper()
	var found []instruction
	for _, in := range s.body {
		if in.cmd == cmd {
			found = append(found, in)
		}
	}
	if len(found) != 1 {
		t.Fatalf("Dockerfile stage %q has %d %s instructions, want 1", s.from, len(found), cmd)
	}
	return found[0]
}

// entrypoint is the run stage's ENTRYPOINT, which must be the JSON form:
// distroless has no shell to run the other.
func entrypoint(t *testing.T, run stage) []string {
	t.Helper()
	in := run.only(t, "ENTRYPOINT")
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile line %d: ENTRYPOINT is not the JSON form (%v)", in.line, err)
	}
	return argv
}

func TestDockerfileBuildStageMakesAStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary as the image does; not in -short")
	}
	t.Parallel()
	stages := readDockerfile(t)
	build, run := stages[0], stages[len(stages)-1]

	// The build image's Go must be one go.mod accepts: golang:1.26 is
	// the newest 1.26.x, so its minor version is what must match.
	goMod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	got := regexp.MustCompile(`^golang:(\d+\.\d+)[-@]`).FindStringSubmatch(build.from)
	if want == nil || got == nil || got[1] != string(want[1]) {
		t.Errorf("build stage FROM %s: want the golang image of go.mod's Go (%s)", build.from, want)
	}
	if !strings.HasPrefix(run.from, "gcr.io/distroless/static") {
		t.Errorf("run stage FROM %s: this test checks the binary for distroless/static (no libc); check it for this image", run.from)
	}

	// The run stage takes one file from the build stage and runs it.
	cp := strings.Fields(run.only(t, "COPY").args)
	if len(cp) != 3 || cp[0] != "--from="+build.name {
		t.Fatalf("run stage COPY %q: want --from=%s SRC DST", cp, build.name)
	}
	built, installed := cp[1], cp[2]
	argv := entrypoint(t, run)
	if argv[0] != installed {
		t.Errorf("ENTRYPOINT runs %s, but the binary is copied to %s", argv[0], installed)
	}
	if u := run.only(t, "USER").args; u != strconv.Itoa(nonRootUID)+":"+strconv.Itoa(nonRootUID) {
		t.Errorf("run stage USER %s: the manifests run the container as %d (nonRootUID)", u, nonRootUID)
	}

	// The context Docker sends: the module's folder less .dockerignore's
	// matches.
	ctx := t.TempDir()
	copyBuildContext(t, "..", ctx)

	// The build stage replayed in order in a file system of its own
	// (root stands for the image's /): WORKDIR, COPY from the context,
	// ARG as Docker passes it (VERSION as a release build names it) and
	// RUN, in the working folder. Absolute paths a RUN writes (-o
	// /out/strangler) go under root.
	root := t.TempDir()
	const version = "v9.8.7-dockerfile-test"
	env := buildEnv(t)
	workdir := "/"
	inRoot := func(p string) string {
		if !path.IsAbs(p) {
			p = path.Join(workdir, p)
		}
		return filepath.Join(root, filepath.FromSlash(path.Clean(p)))
	}
	outFlag := regexp.MustCompile(`(-o[= ]\s*)(/[^\s"']+)`)
	for _, in := range build.body {
		switch in.cmd {
		case "WORKDIR":
			workdir = path.Join(workdir, in.args)
			if err := os.MkdirAll(inRoot("."), 0o755); err != nil {
				t.Fatal(err)
			}
		case "COPY":
			args := strings.Fields(in.args)
			if len(args) < 2 || strings.HasPrefix(args[0], "--") {
				t.Fatalf("Dockerfile line %d: COPY %s: this test knows COPY SRC... DST from the context only", in.line, in.args)
			}
			dockerCopy(t, in, ctx, args[:len(args)-1], inRoot(args[len(args)-1]), strings.HasSuffix(args[len(args)-1], "/"))
		case "ARG":
			for _, arg := range strings.Fields(in.args) {
				name, def, _ := strings.Cut(arg, "=")
				def = strings.Trim(def, `"'`)
				if name == "VERSION" {
					def = version
				}
				env = append(env, name+"="+def)
			}
		case "RUN":
			script := outFlag.ReplaceAllString(in.args, "${1}"+root+"${2}")
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir = inRoot(".")
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				if strings.Contains(in.args, "go mod download") && offline(out) {
					t.Skipf("Dockerfile line %d: RUN %s needs the Go module proxy, which this machine cannot reach:\n%s", in.line, in.args, out)
				}
				t.Fatalf("Dockerfile line %d: RUN %s: %v\n%s", in.line, in.args, err, out)
			}
		default:
			t.Fatalf("Dockerfile line %d: %s in the build stage is new to this test", in.line, in.cmd)
		}
	}
	bin := filepath.Join(root, filepath.FromSlash(path.Clean(built)))
	assertStatic(t, bin)

	if runtime.GOOS != "linux" || runtime.GOARCH != goarchOf(env) {
		return // built for the image's platform, not this one
	}
	// The image has no environment to speak of and no shell: the binary
	// must run with none.
	cmd := exec.Command(bin, "version")
	cmd.Env = []string{}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), version) {
		t.Errorf("%s version = %q, %v; want %s (the build's VERSION arg)", installed, out, err, version)
	}
	cmd = exec.Command(bin, append(argv[1:], "--help")...)
	cmd.Env = []string{}
	if out, err := cmd.CombinedOutput(); !strings.Contains(string(out), "-config string") {
		t.Errorf("ENTRYPOINT %q --help = %q, %v; want serve's usage", argv, out, err)
	}
}

// buildEnv is the environment of the build stage's RUN commands: what the
// golang image sets that matters to the build (GOTOOLCHAIN=local: the
// image's Go, never a download; cgo on), the image's platform, and this
// machine's module and build caches, which only make it faster.
func buildEnv(t *testing.T) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + filepath.Dir(goBin) + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + t.TempDir(),
		"GOTOOLCHAIN=local",
		// The golang image has gcc, so cgo is on there unless the
		// Dockerfile turns it off: set it here too, so that a build
		// that drops CGO_ENABLED=0 fails below (dynamic, or no C
		// compiler) on any machine.
		"CGO_ENABLED=1",
		"GOOS=linux",
		"GOARCH=" + runtime.GOARCH,
	}
	for _, name := range []string{"GOCACHE", "GOMODCACHE", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE"} {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatal(err)
		}
		if v := strings.TrimSpace(string(out)); v != "" {
			env = append(env, name+"="+v)
		}
	}
	return env
}

func goarchOf(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOARCH="); ok {
			return v
		}
	}
	return ""
}

// copyBuildContext copies what Docker would send from src (the folder
// `docker build .` names) to dst, leaving out what .dockerignore matches,
// as Docker does with the same matcher.
func copyBuildContext(t *testing.T, src, dst string) {
	t.Helper()
	f, err := os.Open(filepath.Join(src, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	// Not a folder it ignores, unless a later "!" pattern may take back
	// something inside it.
	sent, err := copyTree(src, dst, func(rel string, dir bool) error {
		ignored, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		switch {
		case err != nil:
			return err
		case ignored && dir && !pm.Exclusions():
			return filepath.SkipDir
		case ignored:
			return errSkip
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copying the build context: %v", err)
	}
	// .git is ignored, so the context is no checkout: a file that a
	// pattern hides by mistake shows up as a failed build above, and
	// one that should have been hidden is listed here.
	for _, leak := range []string{".git", "strangler", "cmd/strangler/strangler"} {
		if _, err := os.Lstat(filepath.Join(dst, leak)); err == nil {
			t.Errorf("the build context holds %s: .dockerignore should keep it out", leak)
		}
	}
	if sent == 0 {
		t.Fatal("the build context is empty")
	}
}

// dockerCopy does what COPY srcs... dst does with sources from the build
// context: a folder's contents (the context's own for "."), or a file,
// into dst, which is a folder when it ends in "/" or there are several
// sources. A source the context does not hold fails, as in Docker.
func dockerCopy(t *testing.T, in instruction, ctx string, srcs []string, dst string, dstDir bool) {
	t.Helper()
	dstDir = dstDir || len(srcs) > 1
	for _, src := range srcs {
		from := filepath.Join(ctx, filepath.FromSlash(path.Clean("/"+src)))
		fi, err := os.Stat(from)
		if err != nil {
			t.Fatalf("Dockerfile line %d: COPY %s: %s is not in the build context (%v)", in.line, in.args, src, err)
		}
		switch {
		case fi.IsDir():
			_, err = copyTree(from, dst, nil)
		case dstDir:
			if err = os.MkdirAll(dst, 0o755); err == nil {
				err = copyFile(from, filepath.Join(dst, filepath.Base(from)))
			}
		default:
			if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
				err = copyFile(from, dst)
			}
		}
		if err != nil {
			t.Fatalf("Dockerfile line %d: COPY %s: %v", in.line, in.args, err)
		}
	}
}

// errSkip, from copyTree's skip, leaves an entry out (but not, for a
// folder, what is inside it).
var errSkip = errors.New("skip")

// copyTree copies the folder from's contents into dst, over what is
// there (as COPY does), less what skip (if not nil) refuses with errSkip
// or filepath.SkipDir, given the path relative to from. It returns how
// many files it copied.
func copyTree(from, dst string, skip func(rel string, dir bool) error) (files int, err error) {
	err = filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		if skip != nil && rel != "." {
			switch err := skip(rel, d.IsDir()); {
			case errors.Is(err, errSkip):
				return nil
			case err != nil:
				return err
			}
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		// A file taken back by a "!" pattern inside a folder left out.
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			os.Remove(to)
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			files++
			return copyFile(p, to)
		}
		return nil // a socket or FIFO: Docker sends none either
	})
	return files, err
}

// offline reports whether go's output says the module proxy could not be
// reached (or may not be asked), rather than that the build is wrong.
func offline(out []byte) bool {
	for _, sign := range []string{"GOPROXY=off", "dial tcp", "no such host", "network is unreachable", "i/o timeout"} {
		if bytes.Contains(out, []byte(sign)) {
			return true
		}
	}
	return false
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// assertStatic fails unless bin is an ELF executable that needs no
// dynamic loader and no shared library: distroless/static has neither.
func assertStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("the build stage left no ELF binary at %s: %v", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(p.Open())
			t.Errorf("%s is dynamically linked (loader %s): distroless/static has no libc; build with CGO_ENABLED=0", path.Base(bin), bytes.TrimRight(interp, "\x00"))
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v (%v): distroless/static has none", path.Base(bin), libs, err)
	}
}
