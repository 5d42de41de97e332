//! The dependency graph between jobs, and the two rules that use it.
//!
//! A job is linked to others two ways: `schedule: {after: [a, b]}` makes it fire when every
//! listed job has succeeded since its last fire (a fan-in: [`fan_in`]), and `depends_on:
//! [a, b]` gates the runs its own triggers create (a run waits `blocked` until each
//! dependency's latest run has succeeded: [`gate`]). [`Graph`] holds both kinds of edge in
//! both directions, so that a run's end finds what it may release without a scan. Rendering
//! for `jobctl graph` (a text tree, Graphviz) lives here too.
//!
//! Pure: the ledger gathers the facts (latest runs, finish times) and applies the decisions;
//! cycles and unknown names were rejected by `catalog` before a graph is built.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::run::RunState;
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

/// A dependency's latest run that was not skipped, as the gate sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latest {
    pub run_id: i64,
    pub state: RunState,
    pub finished_at: Option<Timestamp>,
}

/// What a `depends_on` gate says about a run created at `created`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Every dependency's latest run has succeeded: the run may start. The runs that let it.
    Open { released_by: Vec<(String, i64)> },
    /// Some dependencies have not succeeded (yet): the run waits for them.
    Wait { waiting_for: Vec<String> },
    /// A dependency's run failed after the run came due: it will not start.
    Fail { reason: String },
}

/// The `depends_on` rule. `deps` pairs each dependency with its latest run that was not
/// skipped (`None`: it never ran). A failure that ended before the run came due is old news:
/// the run waits for a new run of that dependency; one that ended after it came due ends the
/// wait with [`Gate::Fail`].
pub fn gate(created: Timestamp, deps: &[(&str, Option<Latest>)]) -> Gate {
    let mut waiting_for = Vec::new();
    let mut released_by = Vec::new();
    for (job, latest) in deps {
        match latest {
            Some(l) if l.state == RunState::Succeeded => {
                released_by.push((job.to_string(), l.run_id))
            }
            Some(l) if l.state.is_terminal() && l.finished_at.is_some_and(|f| f >= created) => {
                return Gate::Fail {
                    reason: format!("dependency {job} ended {} (run {})", l.state, l.run_id),
                };
            }
            _ => waiting_for.push(job.to_string()),
        }
    }
    if waiting_for.is_empty() {
        Gate::Open { released_by }
    } else {
        Gate::Wait { waiting_for }
    }
}

/// The `after` rule: the job fires when every upstream job has a succeeded run that finished
/// after `cursor` (the job's last fire, or when its schedule was applied). `successes` pairs
/// each upstream job with its latest succeeded run `(id, finished_at)`. Returns the runs that
/// release it, or `None` while one is missing.
pub fn fan_in(
    cursor: Timestamp,
    successes: &[(&str, Option<(i64, Timestamp)>)],
) -> Option<Vec<(String, i64)>> {
    successes
        .iter()
        .map(|(job, latest)| match latest {
            Some((id, finished)) if *finished > cursor => Some((job.to_string(), *id)),
            _ => None,
        })
        .collect()
}

/// `a#12, b#13`: the runs that released a run, for its event and the CLI.
pub fn describe_releases(released_by: &[(String, i64)]) -> String {
    released_by
        .iter()
        .map(|(job, id)| format!("{job} (run {id})"))
        .collect::<Vec<_>>()
        .join(", ")
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

    fn latest(run_id: i64, state: RunState, finished_at: Option<&str>) -> Option<Latest> {
        Some(Latest {
            run_id,
            state,
            finished_at: finished_at.map(ts),
        })
    }

    #[test]
    fn the_gate_opens_waits_or_fails() {
        use RunState::*;
        let created = ts("2026-10-31T12:00:00Z");
        type Case<'a> = (&'a str, Vec<(&'a str, Option<Latest>)>, Gate);
        let cases: Vec<Case> = vec![
            (
                "all succeeded",
                vec![
                    ("a", latest(1, Succeeded, Some("2026-10-31T11:00:00Z"))),
                    ("b", latest(2, Succeeded, Some("2026-10-31T12:30:00Z"))),
                ],
                Gate::Open {
                    released_by: vec![("a".into(), 1), ("b".into(), 2)],
                },
            ),
            (
                "one never ran",
                vec![
                    ("a", latest(1, Succeeded, Some("2026-10-31T11:00:00Z"))),
                    ("b", None),
                ],
                Gate::Wait {
                    waiting_for: vec!["b".into()],
                },
            ),
            (
                "one still running",
                vec![("a", latest(1, Running, None))],
                Gate::Wait {
                    waiting_for: vec!["a".into()],
                },
            ),
            (
                "an old failure waits for a new run",
                vec![("a", latest(1, Failed, Some("2026-10-31T11:59:59Z")))],
                Gate::Wait {
                    waiting_for: vec!["a".into()],
                },
            ),
            (
                "a failure after the run came due fails it",
                vec![("a", latest(7, TimedOut, Some("2026-10-31T12:00:01Z")))],
                Gate::Fail {
                    reason: "dependency a ended timed_out (run 7)".into(),
                },
            ),
            (
                "a blocked dependency is waited for",
                vec![("a", latest(3, Blocked, None))],
                Gate::Wait {
                    waiting_for: vec!["a".into()],
                },
            ),
        ];
        for (what, deps, expected) in cases {
            assert_eq!(gate(created, &deps), expected, "{what}");
        }
    }

    #[test]
    fn the_fan_in_needs_every_upstream_after_the_cursor() {
        let cursor = ts("2026-10-31T12:00:00Z");
        let before = ts("2026-10-31T11:00:00Z");
        let after = ts("2026-10-31T12:00:00.001Z");
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, Option<(i64, Timestamp)>)>,
            Option<Vec<(String, i64)>>,
        );
        let cases: Vec<Case> = vec![
            (
                "both after",
                vec![("a", Some((1, after))), ("b", Some((2, after)))],
                Some(vec![("a".into(), 1), ("b".into(), 2)]),
            ),
            (
                "one before",
                vec![("a", Some((1, after))), ("b", Some((2, before)))],
                None,
            ),
            ("one at the cursor", vec![("a", Some((1, cursor)))], None),
            (
                "one never",
                vec![("a", Some((1, after))), ("b", None)],
                None,
            ),
        ];
        for (what, successes, expected) in cases {
            assert_eq!(fan_in(cursor, &successes), expected, "{what}");
        }
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
