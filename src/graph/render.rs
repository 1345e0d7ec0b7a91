//! Text, Graphviz and Mermaid views of a [`DependencyGraph`].

use std::fmt::Write as _;

use petgraph::visit::EdgeRef;

use super::{Dependency, DependencyGraph, EdgeOrigin};

impl DependencyGraph {
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
pub(super) fn dot_id(text: &str) -> String {
    format!("{text:?}")
}

/// Mermaid entity codes; `#` goes first so the later codes are not escaped twice.
pub(super) fn mermaid_text(text: &str) -> String {
    text.replace('#', "#35;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
        .replace(['\n', '\r'], " ")
}
