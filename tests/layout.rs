//! The source keeps the layout docs/ARCHITECTURE.md describes: no import
//! circle among the modules of `src/pool` and `src/spawn` (nor between the
//! two), and no source file over 1,000 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Module name -> the sibling modules (or the parent, "mod") it uses.
fn graph(dir: &str, parent: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    let files: Vec<_> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for path in &files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        // Code only: a test module may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let mut uses = BTreeSet::new();
        if name != "mod" {
            for (at, _) in code.match_indices("super::") {
                let rest = &code[at + "super::".len()..];
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if names.contains(&word) && word != "mod" {
                    uses.insert(word);
                } else if rest.starts_with('{') || !word.is_empty() {
                    // super::Item or super::{...}: something of the parent.
                    let list: String = rest.chars().take_while(|&c| c != ';').collect();
                    let all_modules = list
                        .trim_start_matches('{')
                        .split(|c: char| c == ',' || c == '}' || c.is_whitespace())
                        .filter(|w| !w.is_empty())
                        .all(|w| names.contains(w.split("::").next().unwrap()));
                    if !all_modules {
                        uses.insert("mod".to_string());
                    }
                }
            }
            for (at, _) in code.match_indices(&format!("crate::{parent}::")) {
                let rest = &code[at + parent.len() + 9..];
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                uses.insert(if names.contains(&word) {
                    word
                } else {
                    "mod".into()
                });
            }
        }
        uses.remove(&name);
        graph.insert(name, uses);
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_circle_in_pool_or_spawn() {
    for (dir, parent) in [("src/pool", "pool"), ("src/spawn", "spawn")] {
        let g = graph(dir, parent);
        assert!(g.len() > 3, "{dir}: modules found");
        assert_eq!(cycle(&g), None, "{dir}: import circle ({g:?})");
    }
    // And none between the two: spawn knows nothing of the pool.
    for entry in std::fs::read_dir(root().join("src/spawn"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        assert!(
            !text.contains("crate::pool"),
            "{} uses the pool",
            entry.path().display()
        );
    }
}

#[test]
fn the_circle_finder_finds_circles() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(cycle(&g).is_some());
    g.insert("b".to_string(), BTreeSet::new());
    assert!(cycle(&g).is_none());
}

#[test]
fn no_source_file_is_over_a_thousand_lines() {
    fn walk(dir: &Path, out: &mut Vec<(String, usize)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                out.push((path.display().to_string(), lines));
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    let long: Vec<_> = files.into_iter().filter(|(_, n)| *n > 1000).collect();
    assert!(long.is_empty(), "{long:?}");
}
