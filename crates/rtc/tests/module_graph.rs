//! The crate's files import each other in no cycle: `peer.rs` assembles the connection from
//! leaf handles (lifecycle, stats registry, send and receive links), and no leaf knows it.
//! Read from the sources (`use crate::…` and `crate::…::` paths, test modules included).
use std::collections::{BTreeMap, BTreeSet};

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files: BTreeMap<String, String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.extension()? == "rs" && name != "lib")
                .then(|| (name, std::fs::read_to_string(&path).unwrap()))
        })
        .collect();
    let modules: BTreeSet<&String> = files.keys().collect();
    let mut graph = BTreeMap::new();
    for (name, text) in &files {
        let mut uses = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            // `crate::{a, b::C}` names several; `crate::a::…` one.
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(0)]
                    .split(',')
                    .map(|part| part.trim().split("::").next().unwrap_or(""))
                    .collect(),
                None => vec![rest
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .next()
                    .unwrap()],
            };
            for used in names {
                if used != name && used != "test_time" && modules.contains(&used.to_owned()) {
                    uses.insert(used.to_owned());
                }
            }
        }
        graph.insert(name.clone(), uses);
    }
    graph
}

/// A path through the graph that comes back to where it started, if any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in &graph[node] {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_crates_files_import_each_other_in_no_cycle() {
    let graph = module_graph();
    assert!(
        graph["peer"].contains("track_local"),
        "the graph is read: {graph:?}"
    );
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let mut graph = module_graph();
    graph.get_mut("lifecycle").unwrap().insert("peer".into());
    let cycle = find_cycle(&graph).expect("lifecycle → peer → lifecycle");
    assert_eq!(cycle.first(), cycle.last());
}
