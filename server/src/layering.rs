//! The layering rule, checked on the source: no module of this crate may
//! depend, through `crate::`, `super::` or `self::` paths, on one that
//! depends back on it. Layers then only point down, and a new kind of state
//! cannot quietly tie the control plane back to the API or the metrics.
//!
//! Two graphs are checked: files (a parent module may always use its own
//! children; every other edge counts) and top-level modules (`api`,
//! `control`, `cluster`, …: every edge between two of them counts). Test
//! code is left out: it may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["cluster", "sync"]`) of every library source file.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut found = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let Ok(relative) = path.strip_prefix(src) else {
                continue;
            };
            let mut segments: Vec<String> = relative
                .iter()
                .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_owned())
                .collect();
            match segments.last().map(String::as_str) {
                Some("main") if segments.len() == 1 => continue,
                Some("lib") if segments.len() == 1 => segments.clear(),
                Some("mod") => {
                    segments.pop();
                }
                _ => {}
            }
            if segments.iter().any(|s| s == "tests") {
                continue;
            }
            found.insert(segments, path);
        }
    }
    found
}

/// The source with every `#[cfg(test)]` item removed.
fn without_tests(source: &str) -> String {
    let mut kept = String::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            kept.push_str(line);
            kept.push('\n');
            continue;
        }
        // Skip the item: up to its `;` or until its braces close.
        let mut depth = 0i32;
        for line in lines.by_ref() {
            let trimmed = line.trim();
            if trimmed.starts_with("#[") {
                continue;
            }
            depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            if depth <= 0 && (trimmed.ends_with(';') || trimmed.ends_with('}')) {
                break;
            }
        }
    }
    kept
}

/// Line comments removed, so prose that names a path is not an edge.
fn code_only(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path rooted at `crate`, `super` or `self`, with `use` trees
/// expanded (`use crate::{a::B, c::{D, E}}` gives three paths).
fn paths(source: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = source.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &source[at..];
        let boundary = at == 0 || !is_ident(bytes[at - 1]) && bytes[at - 1] != b':';
        let root = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|r| rest.starts_with(r));
        match root {
            Some(root) if boundary => {
                let (tree, used) = use_tree(rest);
                found.extend(expand(&tree));
                at += used.max(root.len());
            }
            _ => at += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    found
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The text of one path or `use` tree starting at `text`, and its length.
fn use_tree(text: &str) -> (String, usize) {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return (text[..i].to_owned(), i),
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (text[..=i].to_owned(), i + 1);
                }
            }
            _ if depth > 0 || c.is_alphanumeric() || c == '_' || c == ':' => {}
            _ => return (text[..i].to_owned(), i),
        }
    }
    (text.to_owned(), text.len())
}

/// `a::{b, c::d as e}` → `[a, b]`, `[a, c, d]`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        return vec![
            path.split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let inner = tree[open + 1..].trim_end().trim_end_matches('}');
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let mut out = Vec::new();
    for part in parts.into_iter().filter(|p| !p.trim().is_empty()) {
        for tail in expand(part) {
            let mut path = prefix.clone();
            path.extend(tail.into_iter().filter(|s| s != "self"));
            out.push(path);
        }
    }
    out
}

/// The module a path names, as the longest prefix that is a source file.
fn resolve(
    from: &[String],
    path: &[String],
    files: &BTreeMap<Vec<String>, PathBuf>,
) -> Option<Vec<String>> {
    let mut absolute: Vec<String> = Vec::new();
    let mut segments = path.iter().peekable();
    match segments.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segments.next();
        }
        Some("self") => {
            segments.next();
            absolute = from.to_vec();
        }
        Some("super") => {
            absolute = from.to_vec();
            while segments.peek().is_some_and(|s| *s == "super") {
                segments.next();
                absolute.pop();
            }
        }
        _ => return None,
    }
    absolute.extend(segments.cloned());
    (0..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|prefix| files.contains_key(prefix))
}

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Each file's edges, and each top-level module's.
fn graphs(src: &Path) -> (Graph, Graph) {
    let files = modules(src);
    let mut by_file = Graph::new();
    let mut by_module = Graph::new();
    for (module, path) in &files {
        let Ok(source) = std::fs::read_to_string(path) else {
            continue;
        };
        let name = module.join("::");
        by_file.entry(name.clone()).or_default();
        for path in paths(&code_only(&without_tests(&source))) {
            let Some(target) = resolve(module, &path, &files) else {
                continue;
            };
            // A parent may use its children; the crate root declares all.
            if target.starts_with(module) {
                continue;
            }
            by_file
                .entry(name.clone())
                .or_default()
                .insert(target.join("::"));
            if let (Some(a), Some(b)) = (module.first(), target.first())
                && a != b
            {
                by_module.entry(a.clone()).or_default().insert(b.clone());
            }
        }
    }
    (by_file, by_module)
}

/// Every cycle, as the nodes on it; empty when the graph points one way.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components, iteratively small enough to
    // recurse: the graph has tens of nodes.
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a str) {
        let i = s.index.len();
        s.index.insert(node, i);
        s.low.insert(node, i);
        s.stack.push(node);
        s.on_stack.insert(node);
        for next in s.graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !s.index.contains_key(next) {
                visit(s, next);
                let low = s.low[node].min(s.low[next]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(next) {
                let low = s.low[node].min(s.index[next]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = Vec::new();
            while let Some(top) = s.stack.pop() {
                s.on_stack.remove(top);
                component.push(top.to_owned());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// The edges inside one cycle, to say exactly which imports close it.
fn describe(graph: &Graph, cycle: &[String]) -> String {
    let members: BTreeSet<&String> = cycle.iter().collect();
    let mut lines = Vec::new();
    for from in cycle {
        for to in graph.get(from).into_iter().flatten() {
            if members.contains(to) {
                lines.push(format!("    {from} -> {to}"));
            }
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    #[test]
    fn no_import_circles_between_files_or_top_level_modules() {
        let (files, modules) = graphs(&src());
        assert!(files.len() > 20, "the source tree was not found");
        let mut report = String::new();
        for (what, graph) in [("files", &files), ("top-level modules", &modules)] {
            for cycle in cycles(graph) {
                report.push_str(&format!(
                    "import circle between {what}: {}\n{}\n",
                    cycle.join(", "),
                    describe(graph, &cycle)
                ));
            }
        }
        assert!(report.is_empty(), "layers must only point down:\n{report}");
    }

    #[test]
    fn use_trees_expand_and_resolve() {
        let found =
            paths("use crate::{a::B, c::{self, D}};\nfn f() { super::e::F(); x::crate_y(); }\n");
        let found: Vec<String> = found.iter().map(|p| p.join("::")).collect();
        assert_eq!(
            found,
            ["crate::a::B", "crate::c", "crate::c::D", "super::e::F"]
        );
        let files: BTreeMap<Vec<String>, PathBuf> = [vec![], vec!["a".into()], vec!["e".into()]]
            .into_iter()
            .map(|m| (m, PathBuf::new()))
            .collect();
        let from = vec!["c".to_owned()];
        let path = |s: &str| s.split("::").map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            resolve(&from, &path("super::e::F"), &files),
            Some(vec!["e".into()])
        );
        assert_eq!(
            resolve(&from, &path("crate::a::B"), &files),
            Some(vec!["a".into()])
        );
    }

    #[test]
    fn a_circle_is_found_and_named() {
        let graph: Graph = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec!["a"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
        .collect();
        let found = cycles(&graph);
        assert_eq!(found, [vec!["a", "b", "c"]]);
        assert!(describe(&graph, &found[0]).contains("c -> a"));
    }

    #[test]
    fn test_items_are_left_out() {
        let source = "use crate::a::B;\n#[cfg(test)]\nmod tests {\n    use crate::z::Y;\n}\nuse crate::c::D;\n";
        let kept = without_tests(source);
        assert!(kept.contains("crate::a::B") && kept.contains("crate::c::D"));
        assert!(!kept.contains("crate::z"));
    }
}
