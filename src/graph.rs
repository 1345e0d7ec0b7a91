//! Service dependency graph: start and stop ordering, cycle detection and the
//! closures used to select services (`up web`, `stop db`).
//!
//! Edges point from a dependent to its dependency (`web -> db` means web waits
//! for db), the direction compose-go uses when it prints a cycle.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::{self, Write as _};

use petgraph::Direction::{self, Incoming, Outgoing};
use petgraph::graph::{DiGraph, EdgeReference, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::Serialize;

/// How a dependency must be satisfied before its dependent starts.
///
/// Variants are declared weakest first, so `Ord` ranks them by how long the
/// dependent has to wait; merging duplicate edges keeps the maximum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Condition {
    /// The dependency's container has been started (compose's default).
    #[default]
    #[serde(rename = "service_started")]
    Started,
    /// The dependency's healthcheck reports healthy.
    #[serde(rename = "service_healthy")]
    Healthy,
    /// The dependency ran to completion and exited with status 0.
    #[serde(rename = "service_completed_successfully")]
    CompletedSuccessfully,
}

impl Condition {
    /// The compose spelling, e.g. `service_healthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "service_started",
            Self::Healthy => "service_healthy",
            Self::CompletedSuccessfully => "service_completed_successfully",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The compose key that produced an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeOrigin {
    /// An explicit `depends_on` entry.
    DependsOn,
    /// A legacy `links` entry.
    Links,
    /// A `volumes_from` entry naming a service.
    VolumesFrom,
    /// `network_mode: service:x`.
    NetworkMode,
    /// `pid: service:x`.
    Pid,
    /// `ipc: service:x`.
    Ipc,
    /// `uts: service:x` (compose-go treats it like the other namespaces).
    Uts,
    /// `cgroup: service:x` (compose-go treats it like the other namespaces).
    Cgroup,
}

impl EdgeOrigin {
    /// The compose key, e.g. `network_mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DependsOn => "depends_on",
            Self::Links => "links",
            Self::VolumesFrom => "volumes_from",
            Self::NetworkMode => "network_mode",
            Self::Pid => "pid",
            Self::Ipc => "ipc",
            Self::Uts => "uts",
            Self::Cgroup => "cgroup",
        }
    }
}

impl fmt::Display for EdgeOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One edge of the graph: `service` must wait for `dependency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// The dependent service.
    pub service: String,
    /// The service it waits for.
    pub dependency: String,
    /// What "ready" means for the dependency.
    pub condition: Condition,
    /// When false, a missing dependency is ignored instead of being an error.
    pub required: bool,
    /// Restart the dependent when compose restarts the dependency.
    pub restart: bool,
    /// The compose key the edge came from.
    pub origin: EdgeOrigin,
}

impl Dependency {
    /// An explicit `depends_on` edge with compose's defaults: started, required, no restart.
    pub fn new(service: impl Into<String>, dependency: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            dependency: dependency.into(),
            condition: Condition::Started,
            required: true,
            restart: false,
            origin: EdgeOrigin::DependsOn,
        }
    }

    /// An implicit edge as compose-go's normalizer adds it.
    ///
    /// Links and namespace sharing restart with their target because the
    /// dependent holds a reference into the old container; `volumes_from` does not.
    pub fn implicit(service: impl Into<String>, dependency: impl Into<String>, origin: EdgeOrigin) -> Self {
        Self {
            restart: !matches!(origin, EdgeOrigin::VolumesFrom | EdgeOrigin::DependsOn),
            origin,
            ..Self::new(service, dependency)
        }
    }

    fn merge(&mut self, other: &Self) {
        self.condition = self.condition.max(other.condition);
        self.required |= other.required;
        self.restart |= other.restart;
        self.origin = self.origin.min(other.origin);
    }
}

/// Why a dependency graph could not be built or queried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Services wait on each other in a loop.
    #[error("dependency cycle detected: {}", cycle_text(path))]
    Cycle {
        /// The services on the cycle in edge order, starting from the smallest
        /// name; the first element is not repeated at the end.
        path: Vec<String>,
    },
    /// A required edge names a service that does not exist.
    #[error("service {service:?} depends on undefined service {dependency:?}{}", hint(suggestion))]
    UnknownDependency {
        /// The dependent service.
        service: String,
        /// The missing service.
        dependency: String,
        /// The closest existing name, if any is close enough.
        suggestion: Option<String>,
    },
    /// A service name given by the caller does not exist.
    #[error("no such service: {name:?}{}", hint(suggestion))]
    UnknownService {
        /// The name that was asked for.
        name: String,
        /// The closest existing name, if any is close enough.
        suggestion: Option<String>,
    },
}

fn cycle_text(path: &[String]) -> String {
    let mut text = path.join(" -> ");
    if let Some(first) = path.first() {
        text.push_str(" -> ");
        text.push_str(first);
    }
    text
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default()
}

/// Names longer than this get no suggestion: edit distance is quadratic and no
/// real service name is this long, so a fuzzer cannot make error paths slow.
const MAX_SUGGEST_LEN: usize = 128;

/// The candidate closest to `name` by edit distance, if it is close enough to be a typo.
///
/// A candidate qualifies when it differs only in ASCII case, or when its
/// optimal-string-alignment distance is at most a third of `name`'s length
/// (at least 1). Ties go to the lexicographically smallest candidate.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let len = name.chars().count();
    if len > MAX_SUGGEST_LEN {
        return None;
    }
    let threshold = (len / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let distance = if candidate.eq_ignore_ascii_case(name) {
            0
        } else if candidate.chars().count().abs_diff(len) > threshold {
            continue;
        } else {
            strsim::osa_distance(name, candidate)
        };
        if distance <= threshold && best.is_none_or(|b| (distance, candidate) < b) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate.to_owned())
}

/// The services of a project and the edges between them, validated to be acyclic.
#[derive(Debug, Clone)]
pub struct DependencyGraph {
    /// Sorted and deduplicated; node `i` of `graph` is `names[i]`.
    names: Vec<String>,
    graph: DiGraph<(), Dependency>,
    /// Zero-based start wave of each node.
    start_wave: Vec<usize>,
    /// Every node, dependencies before their dependents.
    topo: Vec<NodeIndex>,
    ignored: Vec<Dependency>,
}

impl DependencyGraph {
    /// Builds and validates the graph.
    ///
    /// Duplicate edges between one pair merge into one that never waits less:
    /// the strongest [`Condition`] wins, `required` and `restart` are ORed, and
    /// the origin is `depends_on` if any edge was explicit, else the first in
    /// [`EdgeOrigin`] order. (compose-go lets an explicit entry replace implicit ones.)
    ///
    /// A missing dependency is an error on a required edge and is dropped to
    /// [`Self::ignored_dependencies`] otherwise, as in compose-go. Errors name
    /// the smallest offending (service, dependency) pair, whatever the input order.
    pub fn new(
        services: impl IntoIterator<Item = String>,
        deps: impl IntoIterator<Item = Dependency>,
    ) -> Result<Self, GraphError> {
        let mut names: Vec<String> = services.into_iter().collect();
        names.sort_unstable();
        names.dedup();
        // Hashing beats binary search on strings here, and sorting index pairs
        // instead of names keeps a 500-service build in the microseconds.
        let index: HashMap<&str, NodeIndex> =
            (names.iter().enumerate()).map(|(i, n)| (n.as_str(), NodeIndex::new(i))).collect();
        let (mut edges, mut ignored, mut unresolved) = (Vec::new(), Vec::new(), Vec::new());
        for dep in deps {
            match (index.get(&*dep.service), index.get(&*dep.dependency)) {
                (Some(&from), Some(&to)) => edges.push((from, to, dep)),
                (Some(_), None) if !dep.required => ignored.push(dep),
                _ => unresolved.push(dep),
            }
        }
        let by_pair = |a: &Dependency, b: &Dependency| (&a.service, &a.dependency).cmp(&(&b.service, &b.dependency));
        if let Some(dep) = unresolved.into_iter().min_by(by_pair) {
            let suggestion = |name| did_you_mean(name, index.keys().copied());
            return Err(if index.contains_key(&*dep.service) {
                GraphError::UnknownDependency {
                    suggestion: suggestion(&dep.dependency),
                    service: dep.service,
                    dependency: dep.dependency,
                }
            } else {
                GraphError::UnknownService { suggestion: suggestion(&dep.service), name: dep.service }
            });
        }
        ignored.sort_by(by_pair);
        // Merging is commutative, so the order among duplicates does not matter.
        edges.sort_unstable_by_key(|&(from, to, _)| (from, to));
        edges.dedup_by(|(f, t, dup), (kf, kt, kept)| {
            let same = (f, t) == (kf, kt);
            if same {
                kept.merge(dup);
            }
            same
        });

        let mut graph = DiGraph::with_capacity(names.len(), edges.len());
        for _ in &names {
            graph.add_node(());
        }
        // Kahn's algorithm: `pending[i]` counts dependencies of `i` not yet placed.
        let mut pending = vec![0usize; names.len()];
        for (from, to, dep) in edges {
            pending[from.index()] += 1;
            graph.add_edge(from, to, dep);
        }
        let mut start_wave = vec![0usize; names.len()];
        let mut topo = Vec::with_capacity(names.len());
        let mut queue: VecDeque<NodeIndex> =
            (0..names.len()).filter(|&i| pending[i] == 0).map(NodeIndex::new).collect();
        while let Some(node) = queue.pop_front() {
            topo.push(node);
            let next = start_wave[node.index()] + 1;
            for dependent in graph.neighbors_directed(node, Incoming) {
                let i = dependent.index();
                start_wave[i] = start_wave[i].max(next);
                pending[i] = pending[i].saturating_sub(1);
                if pending[i] == 0 {
                    queue.push_back(dependent);
                }
            }
        }
        if topo.len() < names.len() {
            return Err(GraphError::Cycle { path: find_cycle(&graph, &names) });
        }
        Ok(Self { names, graph, start_wave, topo, ignored })
    }

    /// All services, sorted by name.
    pub fn services(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.names.iter().map(String::as_str)
    }

    /// Whether `service` is part of the graph.
    pub fn contains(&self, service: &str) -> bool {
        lookup(&self.names, service).is_some()
    }

    /// Non-required edges dropped because their dependency does not exist, sorted.
    pub fn ignored_dependencies(&self) -> &[Dependency] {
        &self.ignored
    }

    /// The direct dependencies of `service`, sorted by dependency name; empty if unknown.
    pub fn dependencies_of(&self, service: &str) -> Vec<&Dependency> {
        let edges = lookup(&self.names, service).map(|node| self.edges_of(node));
        edges.into_iter().flatten().map(|e| e.weight()).collect()
    }

    /// The services that directly depend on `service`, sorted; empty if unknown.
    pub fn dependents_of(&self, service: &str) -> Vec<&str> {
        let Some(node) = lookup(&self.names, service) else {
            return Vec::new();
        };
        let mut sources: Vec<NodeIndex> = self.graph.neighbors_directed(node, Incoming).collect();
        sources.sort_unstable();
        sources.into_iter().map(|n| self.name(n)).collect()
    }

    /// Start order: wave `k` holds the services whose dependencies are all in
    /// earlier waves, each wave sorted by name.
    pub fn start_waves(&self) -> Vec<Vec<String>> {
        self.named_waves(&self.start_wave)
    }

    /// Stop order: each service stops as soon as everything that depends on
    /// it has stopped, so a service nothing depends on is in the first wave
    /// even if it started last. Each wave is sorted by name.
    pub fn stop_waves(&self) -> Vec<Vec<String>> {
        self.named_waves(&self.stop_levels())
    }

    /// `roots` plus everything they transitively depend on, optional edges included.
    pub fn with_dependencies(&self, roots: &[String]) -> Result<BTreeSet<String>, GraphError> {
        let nodes = roots.iter().map(|root| {
            lookup(&self.names, root).ok_or_else(|| GraphError::UnknownService {
                name: root.clone(),
                suggestion: did_you_mean(root, self.services()),
            })
        });
        Ok(self.closure(nodes.collect::<Result<Vec<_>, _>>()?, Outgoing, |_| true))
    }

    /// `roots` plus everything that transitively depends on them; unknown roots are skipped.
    pub fn with_dependents(&self, roots: &[String]) -> BTreeSet<String> {
        let nodes = roots.iter().filter_map(|r| lookup(&self.names, r));
        self.closure(nodes, Incoming, |_| true)
    }

    /// `roots` plus the dependents that `compose restart` takes along: those
    /// reaching a root through edges with `restart: true` only. Unknown roots are skipped.
    pub fn restart_dependents(&self, roots: &[String]) -> BTreeSet<String> {
        let nodes = roots.iter().filter_map(|r| lookup(&self.names, r));
        self.closure(nodes, Incoming, |dep| dep.restart)
    }

    /// A plain-text view of the start waves with each service's edges.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for (k, wave) in self.wave_nodes(&self.start_wave).iter().enumerate() {
            let prefix = format!("wave {}  ", k + 1);
            // Wave 1 is exactly the services without edges; later ones all have some.
            if k == 0 {
                let names: Vec<&str> = wave.iter().map(|&n| self.name(n)).collect();
                let _ = writeln!(out, "{prefix}{}", names.join(", "));
                continue;
            }
            let indent = " ".repeat(prefix.len());
            let width = wave.iter().map(|&n| self.name(n).chars().count()).max();
            let width = width.unwrap_or(0);
            for (i, &node) in wave.iter().enumerate() {
                let lead = if i == 0 { &prefix } else { &indent };
                let edges: Vec<String> = (self.edges_of(node).iter())
                    .map(|e| e.weight())
                    .map(|d| {
                        format!("{} ({})", d.dependency, notes(d, d.condition.as_str().trim_start_matches("service_")))
                    })
                    .collect();
                let name = self.name(node);
                let _ = writeln!(out, "{lead}{name:<width$}  ← {}", edges.join(", "));
            }
        }
        out
    }

    /// A Graphviz digraph: edges run from dependent to dependency labelled
    /// with the condition, optional edges are dashed, each start wave shares a rank.
    pub fn render_dot(&self) -> String {
        let mut out = String::from("digraph dependencies {\n  node [shape=box];\n");
        for wave in self.wave_nodes(&self.start_wave) {
            let ids: String = wave.iter().map(|&n| dot_id(self.name(n)) + "; ").collect();
            let _ = writeln!(out, "  {{ rank=same; {ids}}}");
        }
        for edge in self.graph.node_indices().flat_map(|n| self.edges_of(n)) {
            let dep = edge.weight();
            let (from, to) = (dot_id(&dep.service), dot_id(&dep.dependency));
            let label = dot_id(&notes(dep, dep.condition.as_str()));
            let style = if dep.required { "" } else { ", style=dashed" };
            let _ = writeln!(out, "  {from} -> {to} [label={label}{style}];");
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid `graph TD` with one subgraph per start wave; optional edges are dotted.
    pub fn render_mermaid(&self) -> String {
        let mut out = String::from("graph TD\n");
        for (k, wave) in self.wave_nodes(&self.start_wave).iter().enumerate() {
            let _ = writeln!(out, "  subgraph wave{}[\"wave {}\"]", k + 1, k + 1);
            for &node in wave {
                // Generated ids keep names like `end` or `a.b` from breaking the syntax.
                let label = mermaid_text(self.name(node));
                let _ = writeln!(out, "    s{}[\"{label}\"]", node.index());
            }
            out.push_str("  end\n");
        }
        for edge in self.graph.node_indices().flat_map(|n| self.edges_of(n)) {
            let dep = edge.weight();
            let (from, to) = (edge.source().index(), edge.target().index());
            let label = mermaid_text(&notes(dep, dep.condition.as_str()));
            let arrow = if dep.required { "-->" } else { "-.->" };
            let _ = writeln!(out, "  s{from} {arrow}|\"{label}\"| s{to}");
        }
        out
    }

    fn name(&self, node: NodeIndex) -> &str {
        self.names.get(node.index()).map_or("", String::as_str)
    }

    /// Outgoing edges sorted by dependency name (petgraph yields them newest first).
    fn edges_of(&self, node: NodeIndex) -> Vec<EdgeReference<'_, Dependency>> {
        let mut edges: Vec<_> = self.graph.edges_directed(node, Outgoing).collect();
        edges.sort_unstable_by_key(|e| e.target());
        edges
    }

    /// Zero-based stop wave of each node: one past the latest stop wave of its dependents.
    fn stop_levels(&self) -> Vec<usize> {
        let mut level = vec![0usize; self.names.len()];
        // Reverse topological order visits every dependent before its dependencies.
        for &node in self.topo.iter().rev() {
            level[node.index()] =
                self.graph.neighbors_directed(node, Incoming).map(|d| level[d.index()] + 1).max().unwrap_or(0);
        }
        level
    }

    fn wave_nodes(&self, levels: &[usize]) -> Vec<Vec<NodeIndex>> {
        let count = levels.iter().max().map_or(0, |max| max + 1);
        let mut waves = vec![Vec::new(); count];
        // Nodes are numbered in name order, so every wave comes out sorted.
        for (i, &level) in levels.iter().enumerate() {
            if let Some(wave) = waves.get_mut(level) {
                wave.push(NodeIndex::new(i));
            }
        }
        waves
    }

    fn named_waves(&self, levels: &[usize]) -> Vec<Vec<String>> {
        let waves = self.wave_nodes(levels).into_iter();
        waves.map(|w| w.into_iter().map(|n| self.name(n).to_owned()).collect()).collect()
    }

    fn closure(
        &self,
        roots: impl IntoIterator<Item = NodeIndex>,
        direction: Direction,
        follow: impl Fn(&Dependency) -> bool,
    ) -> BTreeSet<String> {
        let mut seen = vec![false; self.names.len()];
        let mut visit = |n: NodeIndex| !std::mem::replace(&mut seen[n.index()], true);
        let mut stack: Vec<NodeIndex> = roots.into_iter().filter(|&n| visit(n)).collect();
        while let Some(node) = stack.pop() {
            for edge in self.graph.edges_directed(node, direction) {
                let next = match direction {
                    Outgoing => edge.target(),
                    Incoming => edge.source(),
                };
                if follow(edge.weight()) && visit(next) {
                    stack.push(next);
                }
            }
        }
        self.names.iter().zip(seen).filter(|(_, keep)| *keep).map(|(name, _)| name.clone()).collect()
    }
}

fn lookup(names: &[String], name: &str) -> Option<NodeIndex> {
    names.binary_search_by(|probe| probe.as_str().cmp(name)).ok().map(NodeIndex::new)
}

/// One cycle through the smallest service that lies on any cycle, shortest
/// first and ties broken by name, so the error message is stable.
fn find_cycle(graph: &DiGraph<(), Dependency>, names: &[String]) -> Vec<String> {
    let n = graph.node_count();
    // kosaraju_scc is iterative, unlike tarjan_scc, so deep chains cannot overflow the stack.
    let sccs = petgraph::algo::kosaraju_scc(graph);
    let mut component = vec![0usize; n];
    for (c, scc) in sccs.iter().enumerate() {
        for node in scc {
            component[node.index()] = c;
        }
    }
    let on_cycle = |v: NodeIndex| sccs[component[v.index()]].len() > 1 || graph.contains_edge(v, v);
    let Some(start) = graph.node_indices().find(|&v| on_cycle(v)) else {
        return Vec::new();
    };
    let mut parent: Vec<Option<NodeIndex>> = vec![None; n];
    let mut seen = vec![false; n];
    seen[start.index()] = true;
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let mut targets: Vec<NodeIndex> = graph.neighbors_directed(node, Outgoing).collect();
        targets.sort_unstable();
        if targets.contains(&start) {
            let mut path: Vec<String> = std::iter::successors(Some(node), |v| parent[v.index()])
                .filter_map(|v| names.get(v.index()).cloned())
                .collect();
            path.reverse();
            return path;
        }
        for next in targets {
            if component[next.index()] == component[start.index()] && !std::mem::replace(&mut seen[next.index()], true)
            {
                parent[next.index()] = Some(node);
                queue.push_back(next);
            }
        }
    }
    Vec::new()
}

/// The condition followed by what sets the edge apart from a plain `depends_on`.
fn notes(dep: &Dependency, condition: &str) -> String {
    let mut notes = vec![condition.to_owned()];
    if !dep.required {
        notes.push("optional".to_owned());
    }
    if dep.restart {
        notes.push("restart".to_owned());
    }
    if dep.origin != EdgeOrigin::DependsOn {
        notes.push(format!("via {}", dep.origin));
    }
    notes.join(", ")
}

/// Rust's `Debug` quoting escapes `"`, `\` and control characters, which makes a valid DOT id.
fn dot_id(text: &str) -> String {
    format!("{text:?}")
}

/// Mermaid entity codes; `#` goes first so the later codes are not escaped twice.
fn mermaid_text(text: &str) -> String {
    text.replace('#', "#35;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
        .replace(['\n', '\r'], " ")
}
#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &str) -> Vec<String> {
        list.split_whitespace().map(str::to_owned).collect()
    }

    /// `edges` is written "a>b c>d": a depends on b, c on d.
    fn build(services: &str, edges: &str) -> Result<DependencyGraph, GraphError> {
        let deps = edges.split_whitespace().filter_map(|e| e.split_once('>'));
        let deps = deps.map(|(a, b)| Dependency::new(a, b));
        DependencyGraph::new(strings(services), deps)
    }

    /// Waves written "a b | c".
    fn flat(waves: Vec<Vec<String>>) -> String {
        let waves: Vec<String> = waves.iter().map(|w| w.join(" ")).collect();
        waves.join(" | ")
    }

    #[test]
    fn start_and_stop_waves() {
        for (services, edges, start, stop) in [
            ("a b c", "a>b b>c", "c | b | a", "a | b | c"),
            ("w db app api", "app>w app>api api>db w>db", "db | api w | app", "app | api w | db"),
            ("c a b a", "", "a b c", "a b c"),
            // x is unrelated, so it stops at once rather than mirroring its start.
            ("a b c x", "a>b b>c", "c x | b | a", "a x | b | c"),
            ("", "", "", ""),
        ] {
            let g = build(services, edges).unwrap();
            assert_eq!(flat(g.start_waves()), start, "start of {services}");
            assert_eq!(flat(g.stop_waves()), stop, "stop of {services}");
        }
    }

    #[test]
    fn cycles_print_one_loop_from_its_smallest_service() {
        for (services, edges, cycle) in [
            ("a b", "b>a a>a", "a -> a"),
            ("b a", "b>a a>b", "a -> b -> a"),
            (
                "service1 service2 service3",
                "service1>service2 service2>service3 service3>service1",
                "service1 -> service2 -> service3 -> service1",
            ),
            ("app db m q x zz", "app>x x>q q>m m>x zz>m m>db", "m -> x -> q -> m"),
            // The shortest loop through `a` wins over the longer one and over y/z.
            ("a b c y z", "a>b b>c c>a b>a y>z z>y", "a -> b -> a"),
        ] {
            let err = build(services, edges).unwrap_err().to_string();
            assert_eq!(err, format!("dependency cycle detected: {cycle}"));
        }
    }

    #[test]
    fn unknown_names_are_reported_with_suggestions() {
        for (edges, msg) in [
            ("web>dbb", r#"service "web" depends on undefined service "dbb" (did you mean "db"?)"#),
            ("web>zookeeper", r#"service "web" depends on undefined service "zookeeper""#),
            ("wbe>web", r#"no such service: "wbe" (did you mean "web"?)"#),
        ] {
            assert_eq!(build("web db", edges).unwrap_err().to_string(), msg);
        }
        // The reported error does not depend on input order.
        let (forward, backward) = (build("a b", "a>x b>y"), build("a b", "b>y a>x"));
        assert_eq!(forward.unwrap_err(), backward.unwrap_err());
    }

    #[test]
    fn unknown_optional_dependency_is_dropped() {
        let mut optional = Dependency::new("web", "cache");
        optional.required = false;
        let g = DependencyGraph::new(strings("web"), [optional.clone()]).unwrap();
        assert!(g.dependencies_of("web").is_empty());
        assert_eq!(g.ignored_dependencies(), [optional]);
    }

    #[test]
    fn closures_select_dependencies_and_dependents() {
        let edges = "web>api api>db admin>db worker>queue";
        let g = build("web api db admin worker queue lone", edges).unwrap();
        let picked = g.with_dependencies(&strings("web worker")).unwrap();
        assert_eq!(Vec::from_iter(picked), strings("api db queue web worker"));
        let err = g.with_dependencies(&strings("web wrker")).unwrap_err().to_string();
        assert_eq!(err, r#"no such service: "wrker" (did you mean "worker"?)"#);
        let dependents = g.with_dependents(&strings("db nope"));
        assert_eq!(Vec::from_iter(dependents), strings("admin api db web"));
        assert_eq!(Vec::from_iter(g.with_dependents(&strings("web"))), ["web"]);
    }

    #[test]
    fn restart_dependents_follow_only_restart_edges() {
        let mut api = Dependency::new("api", "db");
        api.restart = true;
        let proxy = Dependency::implicit("proxy", "api", EdgeOrigin::NetworkMode);
        let deps = [api, Dependency::new("web", "api"), proxy];
        let g = DependencyGraph::new(strings("db api web proxy"), deps).unwrap();
        let restarted = g.restart_dependents(&strings("db"));
        assert_eq!(Vec::from_iter(restarted), strings("api db proxy"));
        assert!(!Dependency::implicit("a", "b", EdgeOrigin::VolumesFrom).restart);
    }

    #[test]
    fn duplicate_edges_merge_to_the_strongest() {
        let mut explicit = Dependency::new("api", "db");
        (explicit.required, explicit.condition) = (false, Condition::Healthy);
        let mut done = Dependency::new("api", "db");
        (done.required, done.condition) = (false, Condition::CompletedSuccessfully);
        let link = Dependency::implicit("api", "db", EdgeOrigin::Links);
        let g = DependencyGraph::new(strings("api db"), [link, explicit, done]).unwrap();
        let merged = g.dependencies_of("api");
        assert_eq!(merged.len(), 1);
        let d = merged[0];
        assert_eq!(d.condition, Condition::CompletedSuccessfully);
        assert_eq!(d.origin, EdgeOrigin::DependsOn);
        assert!(d.required && d.restart);
    }

    #[test]
    fn direct_neighbours_are_sorted() {
        let g = build("app b c m y z", "app>z app>b app>m y>b c>b").unwrap();
        let deps: Vec<&str> = g.dependencies_of("app").iter().map(|d| &*d.dependency).collect();
        assert_eq!(deps, ["b", "m", "z"]);
        assert_eq!(g.dependents_of("b"), ["app", "c", "y"]);
        assert!(g.dependencies_of("nope").is_empty() && g.dependents_of("nope").is_empty());
        assert!(g.contains("m") && !g.contains("n"));
    }

    #[test]
    fn did_you_mean_picks_best_close_match() {
        let names = ["db", "web", "worker", "postgres"];
        for (typo, expected) in
            [("dbb", Some("db")), ("DB", Some("db")), ("postgrse", Some("postgres")), ("redis", None), ("db", None)]
        {
            assert_eq!(did_you_mean(typo, names).as_deref(), expected, "{typo}");
        }
        assert_eq!(did_you_mean("ab", ["bb", "ac"]).as_deref(), Some("ac"));
        assert_eq!(did_you_mean(&"x".repeat(1000), ["x"]), None);
    }

    fn sample() -> DependencyGraph {
        let mut api_db = Dependency::new("api", "db");
        api_db.condition = Condition::Healthy;
        let mut worker_cache = Dependency::new("worker", "cache");
        worker_cache.required = false;
        let network = Dependency::implicit("worker", "api", EdgeOrigin::NetworkMode);
        let deps = [api_db, Dependency::new("api", "cache"), worker_cache, network];
        DependencyGraph::new(strings("db cache api worker"), deps).unwrap()
    }

    #[test]
    fn render_text_lists_waves_and_edges() {
        let expected = "wave 1  cache, db\nwave 2  api  ← cache (started), db (healthy)\nwave 3  \
            worker  ← api (started, restart, via network_mode), cache (started, optional)\n";
        assert_eq!(sample().render_text(), expected);
        let g = build("a longname db", "a>db longname>db").unwrap();
        let text = g.render_text();
        assert!(text.ends_with("wave 2  a         ← db (started)\n        longname  ← db (started)\n"));
        assert_eq!(build("", "").unwrap().render_text(), "");
    }

    #[test]
    fn render_dot_and_mermaid_carry_waves_and_conditions() {
        let dot = sample().render_dot();
        for line in [
            "digraph dependencies {\n",
            "  { rank=same; \"cache\"; \"db\"; }\n",
            "  \"api\" -> \"db\" [label=\"service_healthy\"];\n",
            "  \"worker\" -> \"cache\" [label=\"service_started, optional\", style=dashed];\n",
            "  \"worker\" -> \"api\" [label=\"service_started, restart, via network_mode\"];\n",
        ] {
            assert!(dot.contains(line), "{line} in {dot}");
        }
        let mermaid = sample().render_mermaid();
        for line in [
            "graph TD\n  subgraph wave1[\"wave 1\"]\n    s1[\"cache\"]\n    s2[\"db\"]\n  end\n",
            "  s0 -->|\"service_healthy\"| s2\n",
            "  s3 -.->|\"service_started, optional\"| s1\n",
        ] {
            assert!(mermaid.contains(line), "{line} in {mermaid}");
        }
        assert_eq!(mermaid_text("a\"#<b>"), "a#quot;#35;#lt;b#gt;");
        assert_eq!(dot_id("a\"b\\"), r#""a\"b\\""#);
    }

    #[test]
    fn serializes_with_compose_spellings() {
        let mut d = Dependency::implicit("web", "db", EdgeOrigin::VolumesFrom);
        d.condition = Condition::CompletedSuccessfully;
        let expected = r#"{"service":"web","dependency":"db","condition":"service_completed_successfully","required":true,"restart":false,"origin":"volumes_from"}"#;
        assert_eq!(serde_json::to_string(&d).unwrap(), expected);
        let healthy = serde_json::to_string(&Condition::Healthy).unwrap();
        assert_eq!(healthy, r#""service_healthy""#);
        assert_eq!(Condition::Started.to_string(), "service_started");
        assert_eq!(EdgeOrigin::NetworkMode.to_string(), "network_mode");
    }

    /// `n` services where service i depends on i/2 and, unless 3 divides i, on i/3.
    fn generated(n: usize) -> (Vec<String>, Vec<Dependency>) {
        let names: Vec<String> = (0..n).map(|i| format!("svc{i:03}")).collect();
        let mut deps = Vec::new();
        for i in 1..n {
            deps.push(Dependency::new(&names[i], &names[i / 2]));
            if i % 3 != 0 {
                deps.push(Dependency::new(&names[i], &names[i / 3]));
            }
        }
        (names, deps)
    }

    #[test]
    fn large_generated_graph_is_fast_and_ordered() {
        let (names, deps) = generated(500);
        assert!(deps.len() > 800);
        let clock = std::time::Instant::now();
        let g = DependencyGraph::new(names, deps.clone()).unwrap();
        let (start, stop) = (g.start_waves(), g.stop_waves());
        // Generous for debug builds; a release build takes well under 1 ms.
        let elapsed = clock.elapsed();
        assert!(elapsed.as_millis() < 50, "took {elapsed:?}");
        assert_eq!(start.iter().map(Vec::len).sum::<usize>(), 500);
        let wave = |waves: &[Vec<String>], s| waves.iter().position(|w| w.contains(s));
        for d in &deps {
            assert!(wave(&start, &d.dependency) < wave(&start, &d.service));
            assert!(wave(&stop, &d.service) < wave(&stop, &d.dependency));
        }
    }

    #[test]
    fn large_graph_cycle_is_an_actual_cycle() {
        let (names, mut deps) = generated(500);
        deps.push(Dependency::new("svc001", "svc499"));
        let Err(GraphError::Cycle { path }) = DependencyGraph::new(names, deps.clone()) else {
            panic!("expected a cycle");
        };
        assert_eq!(path[0], "svc001");
        for (i, from) in path.iter().enumerate() {
            let to = &path[(i + 1) % path.len()];
            let edge = |d: &Dependency| (&d.service, &d.dependency) == (from, to);
            assert!(deps.iter().any(edge));
        }
    }

    #[test]
    fn deep_chain_does_not_overflow_the_stack() {
        let names: Vec<String> = (0..20_000).map(|i| format!("s{i:05}")).collect();
        let chain = names.windows(2).map(|w| Dependency::new(&w[1], &w[0]));
        let mut deps: Vec<Dependency> = chain.collect();
        let g = DependencyGraph::new(names.clone(), deps.clone()).unwrap();
        assert_eq!(g.start_waves().len(), 20_000);
        deps.push(Dependency::new("s00000", "s19999"));
        let err = DependencyGraph::new(names, deps).unwrap_err();
        assert!(matches!(err, GraphError::Cycle { path } if path.len() == 20_000));
    }
}
