package deploy

import (
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/strangler-proxy/strangler/flags"
	"github.com/strangler-proxy/strangler/proxy"
)

const (
	baseDir    = "kubernetes/base"
	overlayDir = "kubernetes/overlays/flagd"

	// The names the manifests give the parts of the Pod.
	stranglerContainer = "strangler"
	monolithContainer  = "monolith"
	flagdContainer     = "flagd"
	configFile         = "strangler.yaml"

	// What the image runs as (Dockerfile: distroless nonroot).
	nonRootUID = 65532
)

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// that the manifests use. Decoding is strict, so a field added to the YAML
// must be added here too.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// rendered is the output of one kustomization, decoded strictly.
type rendered struct {
	deployment appsv1.Deployment
	service    corev1.Service
	pdb        policyv1.PodDisruptionBudget
	policy     networkingv1.NetworkPolicy
	monitor    serviceMonitor
	configMaps map[string]corev1.ConfigMap
}

// decodeStrict decodes YAML into v, refusing unknown and duplicate fields:
// a misspelt field (readinesProbe, targetport) would otherwise vanish
// silently here and in kubectl apply.
func decodeStrict(t *testing.T, name string, b []byte, v any) {
	t.Helper()
	if err := k8syaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestManifestFilesDecodeStrictly decodes every YAML file under kubernetes/
// as written (before kustomize), by its apiVersion and kind, into the real
// API type. Patches are partial objects and decode the same way.
func TestManifestFilesDecodeStrictly(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("kubernetes/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob("kubernetes/overlays/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	if len(files) < 8 {
		t.Fatalf("found only %d manifests: %v", len(files), files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == configFile {
			continue // Strangler's config, checked by TestBase and TestOverlayFlagd
		}
		var tm metav1.TypeMeta
		if err := k8syaml.Unmarshal(b, &tm); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var v any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			v = &appsv1.Deployment{}
		case "v1 Service":
			v = &corev1.Service{}
		case "policy/v1 PodDisruptionBudget":
			v = &policyv1.PodDisruptionBudget{}
		case "networking.k8s.io/v1 NetworkPolicy":
			v = &networkingv1.NetworkPolicy{}
		case "monitoring.coreos.com/v1 ServiceMonitor":
			v = &serviceMonitor{}
		case "kustomize.config.k8s.io/v1beta1 Kustomization":
			v = &types.Kustomization{}
		default:
			t.Errorf("%s: unexpected apiVersion %q kind %q", f, tm.APIVersion, tm.Kind)
			continue
		}
		decodeStrict(t, f, b, v)
	}
}

// render builds a kustomization with kustomize's Go API, as
// kubectl apply -k does, and decodes each object strictly.
func render(t *testing.T, dir string) rendered {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	r := rendered{configMaps: map[string]corev1.ConfigMap{}}
	seen := map[string]int{}
	for _, res := range m.Resources() {
		b, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		name := dir + ": " + res.GetKind() + "/" + res.GetName()
		seen[res.GetKind()]++
		switch res.GetKind() {
		case "Deployment":
			decodeStrict(t, name, b, &r.deployment)
		case "Service":
			decodeStrict(t, name, b, &r.service)
		case "PodDisruptionBudget":
			decodeStrict(t, name, b, &r.pdb)
		case "NetworkPolicy":
			decodeStrict(t, name, b, &r.policy)
		case "ServiceMonitor":
			decodeStrict(t, name, b, &r.monitor)
		case "ConfigMap":
			var cm corev1.ConfigMap
			decodeStrict(t, name, b, &cm)
			r.configMaps[cm.Name] = cm
		default:
			t.Errorf("%s: unexpected kind", name)
		}
	}
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy"} {
		if seen[kind] != 1 {
			t.Fatalf("%s renders %d %s objects, want 1", dir, seen[kind], kind)
		}
	}
	return r
}

// kustomization reads a kustomization.yaml strictly.
func kustomization(t *testing.T, dir string) types.Kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k types.Kustomization
	decodeStrict(t, dir, b, &k)
	return k
}

// generatorFor returns the configMapGenerator entry that holds key.
func generatorFor(t *testing.T, k types.Kustomization, key string) types.ConfigMapArgs {
	t.Helper()
	for _, g := range k.ConfigMapGenerator {
		for _, f := range g.FileSources {
			if k, _, _ := strings.Cut(f, "="); k == key || path.Base(f) == key {
				return g
			}
		}
	}
	t.Fatalf("no configMapGenerator holds %s", key)
	return types.ConfigMapArgs{}
}

func findContainer(t *testing.T, cs []corev1.Container, name string) *corev1.Container {
	t.Helper()
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

// containerPort resolves a port as a probe or Service names it: by name
// or by number.
func containerPort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// podPort resolves a Service targetPort against every container of the Pod.
func podPort(spec *corev1.PodSpec, p intstr.IntOrString) (container string, port int32, ok bool) {
	for _, cs := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for i := range cs {
			if n, ok := containerPort(&cs[i], p); ok {
				return cs[i].Name, n, true
			}
		}
	}
	return "", 0, false
}

// addrPort is the port of a host:port listen address.
func addrPort(t *testing.T, field, addr string) int32 {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: %v", field, addr, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		t.Errorf("%s %q: loopback is unreachable for kubelet's probes and the Service; listen on 0.0.0.0", field, addr)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		t.Fatalf("%s %q: %v", field, addr, err)
	}
	return int32(n)
}

// configFolder returns the files Strangler sees in /etc/strangler: every key
// of every ConfigMap behind the volume mounted there.
func configFolder(t *testing.T, r rendered, c *corev1.Container, mountPath string) map[string]string {
	t.Helper()
	spec := &r.deployment.Spec.Template.Spec
	var volume string
	for _, m := range c.VolumeMounts {
		if m.MountPath == mountPath {
			volume = m.Name
		}
	}
	if volume == "" {
		t.Fatalf("container %s mounts nothing at %s", c.Name, mountPath)
	}
	var names []string
	for _, v := range spec.Volumes {
		if v.Name != volume {
			continue
		}
		switch {
		case v.ConfigMap != nil:
			names = append(names, v.ConfigMap.Name)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ConfigMap == nil {
					t.Fatalf("volume %s: a projected source that is not a ConfigMap", volume)
				}
				names = append(names, s.ConfigMap.Name)
			}
		}
	}
	files := map[string]string{}
	for _, n := range names {
		cm, ok := r.configMaps[n]
		if !ok {
			t.Fatalf("volume %s names ConfigMap %q, which the kustomization does not create", volume, n)
		}
		for k, v := range cm.Data {
			if _, dup := files[k]; dup {
				t.Fatalf("volume %s: %s comes from two ConfigMaps", volume, k)
			}
			files[k] = v
		}
	}
	return files
}

// configMapWith returns the name of the ConfigMap holding key.
func configMapWith(t *testing.T, r rendered, key string) string {
	t.Helper()
	for name, cm := range r.configMaps {
		if _, ok := cm.Data[key]; ok {
			return name
		}
	}
	t.Fatalf("no ConfigMap holds %s", key)
	return ""
}

// imageConfigPath is the --config path in the Dockerfile's ENTRYPOINT: the
// strangler container runs the image's entrypoint unchanged, so its config
// must be mounted there.
func imageConfigPath(t *testing.T) string {
	t.Helper()
	stages := readDockerfile(t)
	argv := entrypoint(t, stages[len(stages)-1])
	if i := slices.Index(argv, "--config"); i >= 0 && i+1 < len(argv) {
		return argv[i+1]
	}
	t.Fatalf("Dockerfile ENTRYPOINT %q has no --config", argv)
	return ""
}

// sleepSeconds is a container's preStop sleep (0 without one).
func sleepSeconds(c *corev1.Container) int64 {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		return 0
	}
	return c.Lifecycle.PreStop.Sleep.Seconds
}

// podFacts are what the Pod checks need from Strangler's config.
type podFacts struct {
	listen, adminListen, monolith string
	shutdownTimeout               time.Duration
	// tokenFile is admin_token_file as strangler.yaml names it (the
	// parsed config's points at a stand-in: see withTestToken).
	tokenFile string
}

// checkPod checks what both kustomizations must keep: the Pod wiring
// matches the config, the Pod is locked down, and shutdown is graceful.
func checkPod(t *testing.T, r rendered, cfg podFacts) {
	d := &r.deployment
	spec := &d.Spec.Template.Spec
	s := findContainer(t, spec.Containers, stranglerContainer)
	mono := findContainer(t, spec.Containers, monolithContainer)

	// Other Pods may reach Strangler's ports and nothing else: not the
	// monolith's, which listens on all addresses for kubelet's probe
	// (requests there would bypass the guard), nor flagd's.
	t.Run("NetworkPolicy", func(t *testing.T) {
		np := r.policy.Spec
		if !slices.Equal(np.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
			t.Errorf("policy types %v, want [Ingress]", np.PolicyTypes)
		}
		open := map[int32]bool{}
		for _, rule := range np.Ingress {
			for _, p := range rule.Ports {
				if p.Port == nil {
					t.Fatalf("a rule opens every port: %+v", rule)
				}
				port := p.Port.IntVal
				if p.Port.StrVal != "" {
					port = -1
					for _, c := range spec.Containers {
						for _, cp := range c.Ports {
							if cp.Name == p.Port.StrVal {
								port = cp.ContainerPort
							}
						}
					}
					if port < 0 {
						t.Errorf("the policy names port %q, which no container declares", p.Port.StrVal)
					}
				}
				open[port] = true
			}
		}
		var want []int32
		for _, cp := range s.Ports {
			want = append(want, cp.ContainerPort)
		}
		got := slices.Sorted(maps.Keys(open))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("the policy opens ports %v, want Strangler's %v only", got, want)
		}
		for _, cp := range mono.Ports {
			if open[cp.ContainerPort] {
				t.Errorf("the monolith's port %d is open to other Pods", cp.ContainerPort)
			}
		}
	})

	t.Run("Selectors", func(t *testing.T) {
		podLabels := labels.Set(d.Spec.Template.Labels)
		for what, sel := range map[string]*metav1.LabelSelector{
			"Deployment":    d.Spec.Selector,
			"PDB":           r.pdb.Spec.Selector,
			"NetworkPolicy": &r.policy.Spec.PodSelector,
			"Service":       {MatchLabels: r.service.Spec.Selector},
		} {
			ls, err := metav1.LabelSelectorAsSelector(sel)
			if err != nil {
				t.Fatalf("%s selector: %v", what, err)
			}
			if ls.Empty() || !ls.Matches(podLabels) {
				t.Errorf("%s selector %v does not select the Pod's labels %v", what, ls, podLabels)
			}
		}
		ls, err := metav1.LabelSelectorAsSelector(&r.monitor.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if ls.Empty() || !ls.Matches(labels.Set(r.service.Labels)) {
			t.Errorf("ServiceMonitor selector %v does not select the Service's labels %v", ls, r.service.Labels)
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
			t.Error("fewer than 2 replicas: the PodDisruptionBudget would block every drain")
		}
	})

	// The replicas go to different nodes where there are several, and a
	// one-node cluster still runs them all.
	t.Run("SpreadOverNodes", func(t *testing.T) {
		podLabels := labels.Set(d.Spec.Template.Labels)
		n := 0
		for _, c := range spec.TopologySpreadConstraints {
			if c.TopologyKey != corev1.LabelHostname {
				continue
			}
			n++
			if c.WhenUnsatisfiable != corev1.ScheduleAnyway {
				t.Errorf("spread over %s: whenUnsatisfiable %s, want %s (a one-node cluster would run one replica)",
					c.TopologyKey, c.WhenUnsatisfiable, corev1.ScheduleAnyway)
			}
			if c.MaxSkew != 1 {
				t.Errorf("spread over %s: maxSkew %d, want 1", c.TopologyKey, c.MaxSkew)
			}
			ls, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
			if err != nil {
				t.Fatalf("spread over %s: %v", c.TopologyKey, err)
			}
			// Empty or nil selects no Pod at all: the constraint would count
			// nothing and spread nothing.
			if c.LabelSelector == nil || ls.Empty() || !ls.Matches(podLabels) {
				t.Errorf("spread over %s: selector %v does not select the Pod's labels %v", c.TopologyKey, ls, podLabels)
			}
		}
		if n != 1 {
			t.Errorf("%d topologySpreadConstraints on %s, want 1", n, corev1.LabelHostname)
		}
	})

	t.Run("Ports", func(t *testing.T) {
		listen, admin := addrPort(t, "listen", cfg.listen), addrPort(t, "admin_listen", cfg.adminListen)
		if n, ok := containerPort(s, intstr.FromInt32(listen)); !ok || n != listen {
			t.Errorf("listen port %d is not a port of the %s container", listen, s.Name)
		}
		if n, ok := containerPort(s, intstr.FromInt32(admin)); !ok || n != admin {
			t.Errorf("admin_listen port %d is not a port of the %s container", admin, s.Name)
		}
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{{"readinessProbe", s.ReadinessProbe, "/readyz"}, {"livenessProbe", s.LivenessProbe, "/healthz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s: no httpGet %s", p.name, p.path)
				continue
			}
			if p.probe.HTTPGet.Path != p.path {
				t.Errorf("%s path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
			}
			if n, ok := containerPort(s, p.probe.HTTPGet.Port); !ok || n != admin {
				t.Errorf("%s port %v is not admin_listen's port %d", p.name, p.probe.HTTPGet.Port.String(), admin)
			}
		}

		// The monolith is another container of the Pod, on loopback.
		u, err := url.Parse(cfg.monolith)
		if err != nil {
			t.Fatal(err)
		}
		if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
			t.Errorf("monolith %q: want the monolith container on 127.0.0.1", cfg.monolith)
		}
		mp, err := strconv.ParseInt(u.Port(), 10, 32)
		if err != nil {
			t.Fatalf("monolith %q: no port", cfg.monolith)
		}
		if _, ok := containerPort(mono, intstr.FromInt32(int32(mp))); !ok {
			t.Errorf("monolith port %d is not a port of the %s container", mp, mono.Name)
		}

		// Service: port 80 reaches listen; every targetPort is a real port;
		// the ServiceMonitor scrapes /metrics on the admin port.
		targets := map[string]int32{}
		for _, p := range r.service.Spec.Ports {
			c, n, ok := podPort(spec, p.TargetPort)
			if !ok {
				t.Errorf("Service port %s: targetPort %s is no container port", p.Name, p.TargetPort.String())
				continue
			}
			if c != stranglerContainer {
				t.Errorf("Service port %s goes to container %s, bypassing Strangler", p.Name, c)
			}
			targets[p.Name] = n
			if p.Port == 80 && n != listen {
				t.Errorf("Service port 80 goes to %d, not listen's %d", n, listen)
			}
		}
		if len(r.monitor.Spec.Endpoints) == 0 {
			t.Error("ServiceMonitor has no endpoints")
		}
		for _, e := range r.monitor.Spec.Endpoints {
			if n, ok := targets[e.Port]; !ok || n != admin {
				t.Errorf("ServiceMonitor port %q is not the Service port of admin_listen (%d)", e.Port, admin)
			}
			if e.Path != "/metrics" {
				t.Errorf("ServiceMonitor path %q, want /metrics", e.Path)
			}
		}
	})

	t.Run("Security", func(t *testing.T) {
		psc := spec.SecurityContext
		if psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot {
			t.Error("Pod: runAsNonRoot also binds the monolith's container, and most legacy images run as root: set it on Strangler's containers")
		}
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Error("Pod: seccompProfile is not RuntimeDefault")
		}
		sc := s.SecurityContext
		if sc == nil {
			t.Fatalf("%s: no securityContext", s.Name)
		}
		if sc.RunAsUser == nil || *sc.RunAsUser != nonRootUID {
			t.Errorf("%s: runAsUser is not %d (the image's nonroot user)", s.Name, nonRootUID)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", s.Name)
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccompProfile is not RuntimeDefault", s.Name)
		}
		// Every container, the monolith's and sidecars' too: no escalation,
		// no capabilities, no subPath (a subPath mount is never updated).
		// Every one but the monolith's runs as non-root.
		for _, cs := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
			for _, c := range cs {
				sc := c.SecurityContext
				if c.Name != monolithContainer && (sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
					t.Errorf("%s: runAsNonRoot is not true", c.Name)
				}
				if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: allowPrivilegeEscalation is not false", c.Name)
				}
				if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
					t.Errorf("%s: capabilities do not drop ALL", c.Name)
				}
				for _, m := range c.VolumeMounts {
					if m.SubPath != "" || m.SubPathExpr != "" {
						t.Errorf("%s: mount %s uses subPath, which kubelet never updates", c.Name, m.Name)
					}
				}
				req, lim := c.Resources.Requests, c.Resources.Limits
				if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
					t.Errorf("%s: needs cpu and memory requests and a memory limit", c.Name)
				}
			}
		}
	})

	// The admin port is reachable from the cluster (the Service carries it
	// for the scrape), and /api/diffs holds response bodies: /api/* needs
	// the token, read from a Secret mounted whole (kubelet then updates it
	// in place, and a rotated token needs no restart).
	t.Run("AdminToken", func(t *testing.T) {
		if cfg.tokenFile == "" {
			t.Fatal("strangler.yaml sets no admin_token_file: /api/* on the admin port is open to the whole cluster")
		}
		if !path.IsAbs(cfg.tokenFile) {
			t.Fatalf("admin_token_file %q: want an absolute path into the Secret's mount", cfg.tokenFile)
		}
		dir, file := path.Split(cfg.tokenFile)
		var mount *corev1.VolumeMount
		for i, m := range s.VolumeMounts {
			if m.MountPath == path.Clean(dir) {
				mount = &s.VolumeMounts[i]
			}
		}
		if mount == nil {
			t.Fatalf("admin_token_file %q: nothing is mounted at %s", cfg.tokenFile, path.Clean(dir))
		}
		if !mount.ReadOnly {
			t.Errorf("mount %s is not readOnly", mount.Name)
		}
		var secret *corev1.SecretVolumeSource
		for _, v := range spec.Volumes {
			if v.Name == mount.Name {
				secret = v.Secret
			}
		}
		if secret == nil || secret.SecretName == "" {
			t.Fatalf("volume %s at %s is not a Secret", mount.Name, mount.MountPath)
		}
		// Strangler refuses to start without its token file: a missing
		// Secret had better say so in the Pod's events.
		if secret.Optional != nil && *secret.Optional {
			t.Errorf("Secret %s is optional: without it Strangler fails to start with a less clear reason", secret.SecretName)
		}
		if !slices.ContainsFunc(secret.Items, func(k corev1.KeyToPath) bool { return k.Path == file }) {
			t.Errorf("Secret %s projects no key to %s (admin_token_file): its items are %v", secret.SecretName, file, secret.Items)
		}
	})

	t.Run("Shutdown", func(t *testing.T) {
		// SIGTERM comes after the preStop sleep; the drain then takes up to
		// shutdown_timeout, and the exit (comparisons in flight, the last
		// spans) up to proxy.ExitGrace. The monolith must serve until the
		// drain is over.
		drain := time.Duration(sleepSeconds(s))*time.Second + cfg.shutdownTimeout
		if sleepSeconds(s) == 0 {
			t.Errorf("%s: no preStop sleep: the Service may still send it connections after it stops listening", s.Name)
		}
		if spec.TerminationGracePeriodSeconds == nil {
			t.Fatal("no terminationGracePeriodSeconds")
		}
		grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
		if grace <= drain+proxy.ExitGrace {
			t.Errorf("terminationGracePeriodSeconds %v is not above preStop sleep + shutdown_timeout + proxy.ExitGrace = %v", grace, drain+proxy.ExitGrace)
		}
		if m := time.Duration(sleepSeconds(mono)) * time.Second; m < drain || m >= grace {
			t.Errorf("%s preStop sleep %v: want at least Strangler's drain (%v) and under the grace period (%v)", mono.Name, m, drain, grace)
		}
		if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
			t.Error("rolling update may take a Pod down before its replacement is ready (maxUnavailable is not 0)")
		}
		if r.pdb.Spec.MaxUnavailable == nil && r.pdb.Spec.MinAvailable == nil {
			t.Error("PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
		}
	})

	t.Run("Entrypoint", func(t *testing.T) {
		if len(s.Command) > 0 || len(s.Args) > 0 {
			t.Errorf("%s sets command or args; the image's entrypoint already runs serve --config", s.Name)
		}
		cp := imageConfigPath(t)
		if files := configFolder(t, r, s, path.Dir(cp)); files[path.Base(cp)] == "" {
			t.Errorf("nothing mounted at %s, the image's --config", cp)
		}
	})
}

// checkHashSuffix checks whether kustomize appends a content hash to the
// name of the ConfigMap holding key: a fixed name is updated in place by
// kubelet, a hashed one rolls the Pods when the content changes.
func checkHashSuffix(t *testing.T, r rendered, k types.Kustomization, key string, wantHash bool) {
	t.Helper()
	g := generatorFor(t, k, key)
	got := configMapWith(t, r, key)
	if hashed := got != g.Name; hashed != wantHash {
		t.Errorf("ConfigMap of %s renders as %q from generator %q: want a content hash: %v", key, got, g.Name, wantHash)
	}
}

// baseConfig renders the base and returns it with its config, parsed and
// validated by the proxy's own code beside the rendered flag file, and the
// facts the Pod checks need.
func baseConfig(t *testing.T) (rendered, *proxy.Config, podFacts) {
	t.Helper()
	r := render(t, baseDir)
	s := findContainer(t, r.deployment.Spec.Template.Spec.Containers, stranglerContainer)
	files := configFolder(t, r, s, path.Dir(imageConfigPath(t)))
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, tokenFile := withTestToken(t, []byte(files[configFile]))
	cfg, err := proxy.ParseConfig(raw, dir)
	if err != nil {
		t.Fatalf("%s: %v", configFile, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%s: %v", configFile, err)
	}
	return r, cfg, podFacts{
		listen:          cfg.Listen,
		adminListen:     cfg.AdminListen,
		monolith:        cfg.Monolith,
		shutdownTimeout: time.Duration(cfg.ShutdownTimeout),
		tokenFile:       tokenFile,
	}
}

// withTestToken returns a config with its admin_token_file pointing at a
// stand-in token file, and the path the config named: the real file comes
// from a Secret that only the cluster has, and Validate refuses a missing
// one.
func withTestToken(t *testing.T, raw []byte) (patched []byte, tokenFile string) {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", configFile, err)
	}
	tokenFile, _ = m["admin_token_file"].(string)
	if tokenFile == "" {
		return raw, ""
	}
	stand := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(stand, []byte("test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m["admin_token_file"] = stand
	patched, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return patched, tokenFile
}

// TestBase renders the base and checks it against its own config.
func TestBase(t *testing.T) {
	t.Parallel()
	r, cfg, facts := baseConfig(t)
	checkPod(t, r, facts)

	// strangler validate runs these checks: the shipped config must pass
	// them without a warning (an admin port open to the cluster is one).
	t.Run("NoWarnings", func(t *testing.T) {
		warnings, err := proxy.Check(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range warnings {
			t.Errorf("strangler validate warns: %s", w)
		}
	})

	t.Run("FlagFile", func(t *testing.T) {
		f, err := flags.Load(cfg.FlagFile())
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Routes) == 0 {
			t.Fatal("no routes")
		}
		for _, rt := range cfg.Routes {
			if err := f.CheckPercent(rt.Flag); err != nil {
				t.Errorf("route %s: %v", rt.Name, err)
			}
		}
	})

	t.Run("ConfigMapNames", func(t *testing.T) {
		k := kustomization(t, baseDir)
		checkHashSuffix(t, r, k, path.Base(cfg.FlagFile()), false)
		checkHashSuffix(t, r, k, configFile, true)
		// strangler ramp --config strangler.yaml, run in the base's folder,
		// must rewrite the very file the generator reads.
		if g := generatorFor(t, k, path.Base(cfg.FlagFile())); !slices.Contains(g.FileSources, cfg.Flags.File) {
			t.Errorf("flags.file %q is not the generator's file %q, beside %s", cfg.Flags.File, g.FileSources, configFile)
		}
		// A ramp applies the flags ConfigMap alone: kubectl apply -k . -l
		// app.kubernetes.io/component=strangler-flags must select it and
		// nothing else.
		const key, value = "app.kubernetes.io/component", "strangler-flags"
		for name, cm := range r.configMaps {
			if got := cm.Labels[key] == value; got != (name == configMapWith(t, r, path.Base(cfg.FlagFile()))) {
				t.Errorf("ConfigMap %s: selected by %s=%s: %v", name, key, value, got)
			}
		}
		for what, l := range map[string]map[string]string{"Deployment": r.deployment.Labels, "Service": r.service.Labels,
			"PodDisruptionBudget": r.pdb.Labels, "NetworkPolicy": r.policy.Labels, "ServiceMonitor": r.monitor.Labels} {
			if l[key] == value {
				t.Errorf("%s is selected by %s=%s: a ramp's apply would re-apply it", what, key, value)
			}
		}
	})
}

// flagdConfig is the flagd source of the overlay's config, which the proxy's
// Config does not know yet (see TestOverlayFlagd).
type flagdConfig struct {
	Flags struct {
		Flagd struct {
			Host string `yaml:"host"`
			Port int32  `yaml:"port"`
			Mode string `yaml:"mode"`
		} `yaml:"flagd"`
	} `yaml:"flags"`
}

// TestOverlayFlagd renders the flagd overlay: the same Pod checks, plus the
// flagd sidecar serving the same flag file on the port the config names.
func TestOverlayFlagd(t *testing.T) {
	t.Parallel()
	base, baseCfg, baseFacts := baseConfig(t)
	r := render(t, overlayDir)
	spec := &r.deployment.Spec.Template.Spec
	s := findContainer(t, spec.Containers, stranglerContainer)
	files := configFolder(t, r, s, path.Dir(imageConfigPath(t)))
	raw := []byte(files[configFile])

	// Only flags may differ from the base's config, so the base's checked
	// values hold here too.
	t.Run("SameConfigButFlags", func(t *testing.T) {
		var a, b map[string]any
		if err := yaml.Unmarshal([]byte(base.configMaps[configMapWith(t, base, configFile)].Data[configFile]), &a); err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		delete(a, "flags")
		delete(b, "flags")
		if !reflect.DeepEqual(a, b) {
			t.Errorf("overlay %s differs from the base's in more than flags:\nbase:    %v\noverlay: %v", configFile, a, b)
		}
		if len(files) != 1 {
			t.Errorf("Strangler's folder holds %d files, want only %s (flags come from flagd)", len(files), configFile)
		}
	})
	checkPod(t, r, baseFacts)

	t.Run("Flagd", func(t *testing.T) {
		var fc flagdConfig
		dec := yaml.NewDecoder(strings.NewReader(string(raw)))
		if err := dec.Decode(&fc); err != nil {
			t.Fatal(err)
		}
		fd := fc.Flags.Flagd
		f := findContainer(t, spec.InitContainers, flagdContainer)
		if f.RestartPolicy == nil || *f.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Error("flagd is not a sidecar (an init container with restartPolicy Always): Strangler could start before it, and it would block the Pod")
		}
		if f.StartupProbe == nil {
			t.Error("flagd has no startupProbe: Strangler would start before flagd serves")
		}
		if fd.Host != "127.0.0.1" && fd.Host != "localhost" {
			t.Errorf("flags.flagd.host %q: want the sidecar on 127.0.0.1", fd.Host)
		}
		// flagd serves evaluation (rpc mode) and sync (in-process mode) on
		// two ports; the config must name the one its mode uses.
		want := map[string]string{"in-process": "flagd-sync", "rpc": "flagd-eval"}[fd.Mode]
		if want == "" {
			t.Fatalf("flags.flagd.mode %q: want in-process or rpc", fd.Mode)
		}
		if n, ok := containerPort(f, intstr.FromString(want)); !ok || n != fd.Port {
			t.Errorf("flags.flagd.port %d is not flagd's %s port (%d)", fd.Port, want, n)
		}
		for _, a := range f.Args {
			if strings.HasPrefix(a, "--sync-port") || strings.HasPrefix(a, "--port") || a == "-g" || a == "-p" {
				t.Errorf("flagd args move its ports (%s): update its container ports and flags.flagd.port together", a)
			}
		}

		// flagd's --uri file is the base's flag file, from the ConfigMap
		// that kubelet updates in place.
		i := slices.Index(f.Args, "--uri")
		if i < 0 || i+1 >= len(f.Args) {
			t.Fatalf("flagd args %q: no --uri", f.Args)
		}
		p, ok := strings.CutPrefix(f.Args[i+1], "file:")
		if !ok {
			t.Fatalf("flagd --uri %q: want file:PATH", f.Args[i+1])
		}
		flagFiles := configFolder(t, r, f, path.Dir(p))
		data, ok := flagFiles[path.Base(p)]
		if !ok {
			t.Fatalf("flagd reads %s, which its mount does not hold", p)
		}
		checkHashSuffix(t, r, kustomization(t, baseDir), path.Base(p), false)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, path.Base(p)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		ff, err := flags.Load(filepath.Join(dir, path.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range baseCfg.Routes {
			if err := ff.CheckPercent(rt.Flag); err != nil {
				t.Errorf("route %s: %v", rt.Name, err)
			}
		}
	})

	// The proxy's config does not take flags.flagd yet: until it does, the
	// checks above stand in for ParseConfig and Validate.
	t.Run("ParseConfig", func(t *testing.T) {
		if !hasYAMLField(reflect.TypeFor[proxy.FlagsConfig](), "flagd") {
			t.Skip("proxy.FlagsConfig has no flagd field yet")
		}
		patched, _ := withTestToken(t, raw)
		cfg, err := proxy.ParseConfig(patched, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

func hasYAMLField(t reflect.Type, name string) bool {
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag == name {
			return true
		}
	}
	return false
}
