//! The source tree keeps the shape a newcomer relies on: every module says
//! its one job in an opening comment, and no modules import each other in a
//! circle, of two or more (neither top-level modules nor the files of one
//! folder), so data moves one way. Read from the files themselves, outside
//! their tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module of `src/` (`flush::by_hand`, `policy`) with its text, from
/// the start to its tests, without comments.
fn modules() -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let mut raw = BTreeMap::new();
    let mut folders = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
            let mut name: Vec<String> = rel
                .with_extension("")
                .iter()
                .skip(1)
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if name.last().is_some_and(|last| last == "mod") {
                name.pop();
            }
            if matches!(name.as_slice(), [lib] if lib == "lib") || name.last().unwrap() == "tests" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("//! "),
                "{} does not open with a comment saying its job",
                rel.display()
            );
            let lines: Vec<&str> = text.lines().collect();
            let end = lines
                .windows(2)
                .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].contains("mod tests"))
                .unwrap_or(lines.len());
            let code: Vec<&str> = lines[..end]
                .iter()
                .copied()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            all.insert(name.join("::"), code.join("\n"));
            raw.insert(name.join("::"), text);
        }
    }
    // A module its parent declares under `#[cfg(test)]` is a test, not part
    // of the library's layout.
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"));
    raw.insert("lib".to_owned(), lib.unwrap());
    all.retain(|name, _| {
        let (parent, last) = name.rsplit_once("::").unwrap_or(("lib", name));
        let declared = format!("#[cfg(test)]\nmod {last};");
        !raw[parent].contains(&declared)
    });
    all
}

/// The names `src/lib.rs` re-exports (`pub use capture::layer::EmailLayer`),
/// each with the top-level module it comes from: `crate::EmailLayer` in a
/// module imports `capture`.
fn reexports() -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"));
    let mut names = BTreeMap::new();
    for line in lib.unwrap().lines() {
        if let Some(used) = line.strip_prefix("pub use ") {
            for path in spelled_out(used) {
                if let (Some(name), Some(module)) = (path.last(), path.first()) {
                    names.insert(name.clone(), module.clone());
                }
            }
        }
    }
    names
}

/// Who imports whom: between top-level modules, and between the files of
/// one folder, by `crate::…` or `super::…`, grouped imports spelled out
/// (`use crate::{a, b::{c, d}}` names `a`, `b::c` and `b::d`), and names
/// re-exported at the root (`crate::EmailLayer`) taken to their module.
fn imports(
    modules: &BTreeMap<String, String>,
    reexports: &BTreeMap<String, String>,
) -> BTreeSet<(String, String)> {
    let mut edges = BTreeSet::new();
    for (name, code) in modules {
        let segments: Vec<&str> = name.split("::").collect();
        let top = segments[0];
        let own = segments.get(1).copied();
        let parent: Vec<String> = segments[..segments.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut paths = Vec::new();
        for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
            for (i, _) in code.match_indices(prefix) {
                let before = code[..i].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                for tail in spelled_out(&code[i + prefix.len()..]) {
                    paths.push(base.iter().cloned().chain(tail).collect::<Vec<_>>());
                }
            }
        }
        for mut path in paths {
            if let Some(module) = path.first().and_then(|name| reexports.get(name)) {
                path.insert(0, module.clone());
            }
            let Some(first) = path.first() else { continue };
            if first != top {
                if modules.contains_key(first) {
                    edges.insert((top.to_owned(), first.clone()));
                }
            } else if let (Some(file), Some(own)) = (path.get(1), own) {
                let sibling = format!("{top}::{file}");
                if file != own && modules.contains_key(&sibling) {
                    edges.insert((name.clone(), sibling));
                }
            }
        }
    }
    edges
}

/// The paths that `text` starts with, braces spelled out: `a::{b, c::{d,
/// self}} …` gives `a::b`, `a::c::d` and `a::c` (`self` and what follows a
/// name, such as `as X` or `(…)`, left out).
fn spelled_out(text: &str) -> Vec<Vec<String>> {
    let mut path = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(inner) = rest.strip_prefix('{') {
            let group = &inner[..closing_brace(inner)];
            return top_level_items(group)
                .into_iter()
                .flat_map(spelled_out)
                .map(|tail| path.iter().cloned().chain(tail).collect())
                .collect();
        }
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        if &rest[..len] != "self" {
            path.push(rest[..len].to_owned());
        }
        match rest[len..].strip_prefix("::") {
            Some(after) => rest = after,
            None => break,
        }
    }
    vec![path]
}

/// Where the group that `inner` (the text after a `{`) opens ends.
fn closing_brace(inner: &str) -> usize {
    let mut depth = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    inner.len()
}

/// The items of a group, split at its own commas, not its inner groups'.
fn top_level_items(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

/// Every circle of imports, of two modules or more, each named whole and
/// starting at its first module by name: `a → b → c → a`. The strongly
/// connected parts of the graph (Tarjan's algorithm), then in each one a
/// shortest way from its first module back to it, and the part's other
/// modules if that way misses some.
fn circles(edges: &BTreeSet<(String, String)>) -> Vec<String> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges {
        next.entry(from).or_default().push(to);
        next.entry(to).or_default();
    }
    let mut tarjan = Tarjan::default();
    for node in next.keys() {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node, &next);
        }
    }
    tarjan
        .parts
        .iter()
        .filter(|part| part.len() > 1)
        .map(|part| {
            let first = part.iter().min().unwrap();
            let way = shortest_way_back(first, part, &next);
            let mut circle = way.join(" → ");
            if part.len() + 1 > way.len() {
                let all: Vec<&str> = part.iter().copied().collect();
                circle += &format!(" (in one knot with all of {})", all.join(", "));
            }
            circle
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The state of Tarjan's strongly connected components.
#[derive(Default)]
struct Tarjan<'a> {
    index: BTreeMap<&'a str, usize>,
    low: BTreeMap<&'a str, usize>,
    stack: Vec<&'a str>,
    parts: Vec<BTreeSet<&'a str>>,
}

impl<'a> Tarjan<'a> {
    fn visit(&mut self, node: &'a str, next: &BTreeMap<&'a str, Vec<&'a str>>) {
        let n = self.index.len();
        self.index.insert(node, n);
        self.low.insert(node, n);
        self.stack.push(node);
        for &to in &next[node] {
            if !self.index.contains_key(to) {
                self.visit(to, next);
                let low = self.low[node].min(self.low[to]);
                self.low.insert(node, low);
            } else if self.stack.contains(&to) {
                let low = self.low[node].min(self.index[to]);
                self.low.insert(node, low);
            }
        }
        if self.low[node] == self.index[node] {
            let mut part = BTreeSet::new();
            while let Some(top) = self.stack.pop() {
                part.insert(top);
                if top == node {
                    break;
                }
            }
            self.parts.push(part);
        }
    }
}

/// The modules on a shortest way from `first` back to itself inside `part`,
/// `first` at both ends.
fn shortest_way_back<'a>(
    first: &'a str,
    part: &BTreeSet<&'a str>,
    next: &BTreeMap<&'a str, Vec<&'a str>>,
) -> Vec<&'a str> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([first]);
    while let Some(at) = queue.pop_front() {
        for &to in &next[at] {
            if to == first {
                let mut way = vec![first, at];
                while let Some(&before) = came_from.get(way.last().unwrap()) {
                    way.push(before);
                }
                way.reverse();
                return way;
            }
            if part.contains(to) && !came_from.contains_key(to) {
                came_from.insert(to, at);
                queue.push_back(to);
            }
        }
    }
    unreachable!("{first} is in a circle")
}

#[test]
fn every_module_says_its_job_and_no_circle_of_imports() {
    let modules = modules();
    assert!(modules.contains_key("flush::by_hand") && modules.contains_key("settings"));
    let edges = imports(&modules, &reexports());
    // The reading finds what is there: the builder uses the settings, and
    // the Alertmanager destination as the root re-exports it.
    assert!(edges.contains(&("builder".into(), "settings".into())));
    assert!(edges.contains(&("builder".into(), "alerts".into())));
    assert!(edges.contains(&("flush::flusher".into(), "flush::outcome".into())));
    let circles = circles(&edges);
    assert!(
        circles.is_empty(),
        "modules that import each other, in a circle: {circles:#?}"
    );
}

#[test]
fn the_reading_sees_grouped_imports_and_names_each_whole_circle() {
    let modules: BTreeMap<String, String> = [
        ("a", "pub mod w;"),
        // a::x → a::y, a::z; a → b
        ("a::x", "use crate::{a::{y, z::Thing}, b};"),
        // a::y → a::w, through `super::` and a group with `self`
        ("a::y", "use super::{w::{self, More}};\nfn f() {}"),
        // a::w → a::x, by a path in code
        ("a::w", "fn f() { crate::a::x::g(); }"),
        ("a::z", "pub struct Thing;"),
        // b → c → b; `my_crate::b` is not this crate's
        ("b", "use crate::c::{self};\nuse my_crate::b;"),
        ("c", "fn f() -> crate::b::Item { todo!() }"),
        // d → a, through a name the root re-exports
        ("d", "fn f() -> crate::Thing { todo!() }"),
    ]
    .into_iter()
    .map(|(name, code)| (name.to_owned(), code.to_owned()))
    .collect();
    let reexports = BTreeMap::from([("Thing".to_owned(), "a".to_owned())]);
    let edges = imports(&modules, &reexports);
    let expected = [
        ("a", "b"),
        ("a::w", "a::x"),
        ("a::x", "a::y"),
        ("a::x", "a::z"),
        ("a::y", "a::w"),
        ("b", "c"),
        ("c", "b"),
        ("d", "a"),
    ];
    let expected: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(edges, expected);
    assert_eq!(circles(&edges), ["a::w → a::x → a::y → a::w", "b → c → b"]);
}
