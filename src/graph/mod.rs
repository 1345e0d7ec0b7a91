//! Service dependency graph: start and stop ordering, cycle detection and the
//! closures used to select services (`up web`, `stop db`).
//!
//! Edges point from a dependent to its dependency (`web -> db` means web waits
//! for db), the direction compose-go uses when it prints a cycle.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;

use petgraph::Direction::{self, Incoming, Outgoing};
use petgraph::graph::{DiGraph, EdgeReference, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::Serialize;

mod render;

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

#[cfg(test)]
mod tests;
