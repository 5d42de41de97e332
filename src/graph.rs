//! The dependency graph between jobs.
//!
//! A job is linked to others two ways: `schedule: {after: [a, b]}` makes it fire when every
//! listed job has succeeded since its last fire (a fan-in: `rules::fan_in`), and `depends_on:
//! [a, b]` gates the runs its own triggers create (a run waits `blocked` until each
//! dependency's latest run has succeeded: `rules::gate`). [`Graph`] holds both kinds of edge in
//! both directions, so that a run's end finds what it may release without a scan. Rendering
//! for `jobctl graph` (a text tree, Graphviz) lives here too.
//!
//! Pure: the rules live in `rules`; the ledger gathers their facts and writes their decisions;
//! cycles and unknown names were rejected by `catalog` before a graph is built.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::schedule::Schedule;
use crate::spec::{Concurrency, JobSpec};

/// One job in the graph.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    /// The jobs whose successes release this one (`schedule: {after: …}`).
    pub after: Vec<String>,
    /// The jobs whose latest runs gate this one's runs (`depends_on`).
    pub depends_on: Vec<String>,
    /// The jobs that fire `after` this one.
    pub downstream: Vec<String>,
    /// The jobs that list this one in `depends_on`.
    pub gated: Vec<String>,
    pub starting_deadline: Option<Duration>,
    pub concurrency: Concurrency,
    /// The schedule in its short form (`0 2 * * *`, `after a, b`, `manual`).
    pub schedule: String,
}

/// The jobs and the links between them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    nodes: BTreeMap<String, Node>,
    /// The jobs with `after` links, and those with `depends_on`: what a sweep or the
    /// executor's deadline check looks at, without walking every job each time.
    fan_ins: Vec<String>,
    gated_jobs: Vec<String>,
}

impl Graph {
    /// Builds the graph of `specs` (the active jobs). A link to a job not among them is kept
    /// on the side that names it only.
    pub fn new<'a>(specs: impl IntoIterator<Item = &'a JobSpec>) -> Graph {
        let nodes: BTreeMap<String, Node> = specs
            .into_iter()
            .map(|spec| {
                let after = match &spec.schedule {
                    Schedule::After(jobs) => jobs.iter().map(ToString::to_string).collect(),
                    _ => Vec::new(),
                };
                let node = Node {
                    after,
                    depends_on: spec.depends_on.iter().map(ToString::to_string).collect(),
                    starting_deadline: spec.starting_deadline,
                    concurrency: spec.concurrency,
                    schedule: spec.schedule.to_string(),
                    ..Node::default()
                };
                (spec.name.to_string(), node)
            })
            .collect();
        Graph::linked(nodes)
    }

    /// A graph for display from its jobs (`(name, short schedule)`) and links, as
    /// `GET /v1/graph` gives them.
    pub fn from_parts(jobs: &[(String, String)], edges: &[Edge]) -> Graph {
        let mut nodes: BTreeMap<String, Node> = jobs
            .iter()
            .map(|(name, schedule)| {
                let node = Node {
                    schedule: schedule.clone(),
                    ..Node::default()
                };
                (name.clone(), node)
            })
            .collect();
        for edge in edges {
            if let Some(node) = nodes.get_mut(&edge.to) {
                match edge.kind {
                    EdgeKind::After => node.after.push(edge.from.clone()),
                    EdgeKind::DependsOn => node.depends_on.push(edge.from.clone()),
                }
            }
        }
        Graph::linked(nodes)
    }

    /// Completes nodes that know their upstream links with the links in the other direction.
    fn linked(mut nodes: BTreeMap<String, Node>) -> Graph {
        let links: Vec<(String, String, EdgeKind)> = nodes
            .iter()
            .flat_map(|(name, node)| {
                let after = node.after.iter().map(|up| (up, EdgeKind::After));
                let gates = node.depends_on.iter().map(|up| (up, EdgeKind::DependsOn));
                after
                    .chain(gates)
                    .map(|(up, kind)| (up.clone(), name.clone(), kind))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (up, down, kind) in links {
            if let Some(node) = nodes.get_mut(&up) {
                match kind {
                    EdgeKind::After => node.downstream.push(down),
                    EdgeKind::DependsOn => node.gated.push(down),
                }
            }
        }
        let having = |has: fn(&Node) -> bool| -> Vec<String> {
            nodes
                .iter()
                .filter(|(_, n)| has(n))
                .map(|(name, _)| name.clone())
                .collect()
        };
        let fan_ins = having(|n| !n.after.is_empty());
        let gated_jobs = having(|n| !n.depends_on.is_empty());
        Graph {
            nodes,
            fan_ins,
            gated_jobs,
        }
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(name, node)| (name.as_str(), node))
    }

    /// The jobs that fire `after` others.
    pub fn fan_ins(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.named(&self.fan_ins)
    }

    /// The jobs with a `depends_on` gate.
    pub fn gated_jobs(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.named(&self.gated_jobs)
    }

    fn named<'a>(&'a self, names: &'a [String]) -> impl Iterator<Item = (&'a str, &'a Node)> {
        names
            .iter()
            .filter_map(|name| Some((name.as_str(), self.nodes.get(name)?)))
    }

    /// Every link, upstream first.
    pub fn edges(&self) -> Vec<Edge> {
        let mut edges = Vec::new();
        for (name, node) in &self.nodes {
            for up in &node.after {
                edges.push(Edge {
                    from: up.clone(),
                    to: name.clone(),
                    kind: EdgeKind::After,
                });
            }
            for up in &node.depends_on {
                edges.push(Edge {
                    from: up.clone(),
                    to: name.clone(),
                    kind: EdgeKind::DependsOn,
                });
            }
        }
        edges
    }
}

/// A link from an upstream job to the job that waits for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// `schedule: {after: …}`: the upstream's success fires the job.
    After,
    /// `depends_on`: the upstream's latest run gates the job's runs.
    DependsOn,
}

impl EdgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::After => "after",
            EdgeKind::DependsOn => "depends_on",
        }
    }
}

/// The graph as a text tree: each job with no upstream is a root, and each job appears under
/// every job it waits for, marked with how (`after` or `depends_on`). A job shown once in
/// full is shown again as `…` under its other upstreams.
pub fn render_tree(graph: &Graph) -> String {
    let mut out = String::new();
    let mut shown: BTreeSet<&str> = BTreeSet::new();
    let roots: Vec<&str> = graph
        .nodes()
        .filter(|(_, n)| n.after.is_empty() && n.depends_on.is_empty())
        .map(|(name, _)| name)
        .collect();
    for root in roots {
        let node = graph.node(root).expect("a root is a node");
        let _ = writeln!(out, "{root}  ({})", node.schedule);
        shown.insert(root);
        render_children(graph, root, "", &mut shown, &mut out);
    }
    out
}

fn children<'a>(graph: &'a Graph, name: &str) -> Vec<(&'a str, EdgeKind)> {
    let Some(node) = graph.node(name) else {
        return Vec::new();
    };
    let mut kids: Vec<(&str, EdgeKind)> = node
        .downstream
        .iter()
        .map(|d| (d.as_str(), EdgeKind::After))
        .chain(node.gated.iter().map(|d| (d.as_str(), EdgeKind::DependsOn)))
        .collect();
    kids.sort();
    kids
}

fn render_children<'a>(
    graph: &'a Graph,
    name: &str,
    prefix: &str,
    shown: &mut BTreeSet<&'a str>,
    out: &mut String,
) {
    let kids = children(graph, name);
    for (i, (kid, kind)) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let branch = if last { "└── " } else { "├── " };
        let again = !shown.insert(kid);
        let _ = writeln!(
            out,
            "{prefix}{branch}{kid}  ({}{})",
            kind.as_str(),
            if again { ", shown above" } else { "" }
        );
        if !again {
            let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
            render_children(graph, kid, &deeper, shown, out);
        }
    }
}

/// The graph in Graphviz's `dot` language: `after` links solid, `depends_on` dashed.
pub fn render_dot(graph: &Graph) -> String {
    let mut out = String::from("digraph jobs {\n  rankdir=LR;\n  node [shape=box];\n");
    for (name, node) in graph.nodes() {
        let _ = writeln!(
            out,
            "  {} [label={}];",
            dot_id(name),
            dot_id(&format!("{name}\n{}", node.schedule))
        );
    }
    for edge in graph.edges() {
        let style = match edge.kind {
            EdgeKind::After => "",
            EdgeKind::DependsOn => " [style=dashed, label=\"depends_on\"]",
        };
        let _ = writeln!(
            out,
            "  {} -> {}{style};",
            dot_id(&edge.from),
            dot_id(&edge.to)
        );
    }
    out.push_str("}\n");
    out
}

fn dot_id(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Context, Defaults, parse};
    use jiff::Timestamp;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn graph(files: &[(&str, &str)]) -> Graph {
        let defaults = Defaults::default();
        let context = Context {
            defaults: &defaults,
            now: ts("2026-10-31T12:00:00Z"),
        };
        let specs: Vec<JobSpec> = files
            .iter()
            .map(|(path, text)| parse(path, text.as_bytes(), context).spec.expect(path))
            .collect();
        Graph::new(&specs)
    }

    #[test]
    fn links_are_kept_in_both_directions() {
        let g = graph(&[
            ("extract.yaml", "schedule: '0 2 * * *'\ncommand: [true]\n"),
            (
                "transform.yaml",
                "schedule: {after: [extract]}\ncommand: [true]\n",
            ),
            (
                "report.yaml",
                "schedule: {after: [extract, transform]}\ncommand: [true]\n",
            ),
            ("deploy.yaml", "depends_on: [report]\ncommand: [true]\n"),
        ]);
        let extract = g.node("extract").unwrap();
        assert_eq!(extract.downstream, ["report", "transform"]);
        assert_eq!(g.node("report").unwrap().gated, ["deploy"]);
        assert_eq!(g.node("deploy").unwrap().depends_on, ["report"]);
        assert_eq!(g.fan_ins().count(), 2);
        assert_eq!(
            g.gated_jobs().map(|(n, _)| n).collect::<Vec<_>>(),
            ["deploy"]
        );
    }

    #[test]
    fn the_tree_shows_each_job_under_what_it_waits_for() {
        let g = graph(&[
            ("extract.yaml", "schedule: '0 2 * * *'\ncommand: [true]\n"),
            (
                "transform.yaml",
                "schedule: {after: [extract]}\ncommand: [true]\n",
            ),
            (
                "report.yaml",
                "schedule: {after: [extract, transform]}\ncommand: [true]\n",
            ),
            ("deploy.yaml", "depends_on: [report]\ncommand: [true]\n"),
            ("lonely.yaml", "command: [true]\n"),
        ]);
        assert_eq!(
            render_tree(&g),
            "extract  (0 2 * * *)\n\
             ├── report  (after)\n\
             │   └── deploy  (depends_on)\n\
             └── transform  (after)\n    \
                 └── report  (after, shown above)\n\
             lonely  (manual)\n"
        );
        let dot = render_dot(&g);
        assert!(dot.contains("\"extract\" -> \"transform\";"), "{dot}");
        assert!(
            dot.contains("\"report\" -> \"deploy\" [style=dashed"),
            "{dot}"
        );
    }
}
