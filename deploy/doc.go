// Package deploy holds what runs Strangler in production, as data: no code
// of its own, only tests that check the data against the proxy's code.
//
// kubernetes/base is a kustomize base (kubectl apply -k; Kubernetes 1.30 or
// later for the preStop sleep action) that runs Strangler as a sidecar in
// front of a monolith in one Pod: clients reach the Service on port 80,
// which goes to Strangler's listen port 8080; Strangler forwards each
// request to the monolith on 127.0.0.1:8081 or to the route's extracted
// service. The admin port 9090 serves the probes (/readyz, /healthz) and
// /metrics (which a ServiceMonitor scrapes) to anyone; /api/routes and
// /api/diffs (which holds response bodies) need the bearer token in
// admin_token_file, mounted from the Secret strangler-admin-token. That
// Secret is not in the kustomization (it stays out of git, and an apply
// never resets it): create it once, with kubectl create secret generic
// strangler-admin-token --from-literal=token=..., before the Pod can start;
// kubelet updates it in place, so a rotated token needs no restart.
// runAsNonRoot is set on Strangler's containers, not the Pod, so that it
// does not bind the monolith's image, which often runs as root.
// strangler.yaml and flags.json come from two ConfigMaps projected into
// /etc/strangler: the config's name carries a content hash, so changing it
// rolls the Pods; the flags' name does not, so kubelet swaps the file in
// place (its ..data symlink) and the running proxies apply a ramp within
// about a minute, without a restart. To ramp, run `strangler ramp --config
// strangler.yaml ROUTE PERCENT` in that folder, then apply the flags
// ConfigMap alone: `kubectl apply -k . -l
// app.kubernetes.io/component=strangler-flags`. On
// shutdown, Strangler sleeps 5 s (endpoints forget the Pod), then drains for
// shutdown_timeout; the monolith sleeps until that is over.
//
// kubernetes/overlays/flagd adds a flagd daemon as a native sidecar, serving
// the same flags.json; Strangler then syncs its flags from flagd (in-process
// mode, port 8015) instead of reading the file.
//
// prometheus/rules.yml records per-route request rates, 5xx ratios,
// divergence (mismatch / (match + mismatch)) and latency quantiles, and
// alerts on divergence, on the service erring more than the monolith, on
// shadow copies dropped for overload, on flag and config errors, on an
// ejected service and on panics; each alert says what to do, usually
// `strangler ramp ... ROUTE 0` (on Kubernetes, applied within about a
// minute, as above). rules_test.yml makes each fire and not fire.
// grafana/strangler.json is the dashboard: flags across routes, the safety
// net (ejections and fallbacks to the monolith), then one row per route.
//
// The tests render both kustomizations with kustomize's Go API, decode every
// object strictly (an unknown field is an error) into the Kubernetes API
// types, and cross-check them: the ConfigMap's strangler.yaml is a valid
// config (proxy.ParseConfig and Validate) whose listen, admin and monolith
// ports are the containers' ports, probes, Service and ServiceMonitor;
// flags.json loads (flags.Load) and has every route's flag; `strangler
// validate` would warn of nothing; admin_token_file is in a Secret's mount;
// Strangler's containers are locked down (non-root, read-only root, no
// capabilities) and every container, the monolith's too, drops all
// capabilities and cannot escalate; the grace period covers the drain. They run promtool check and test on the rules
// (skipped when promtool is missing, except under CI=true), and check that
// every PromQL expression in the rules and the dashboard names only metrics
// and labels that proxy.NewMetrics registers.
package deploy
