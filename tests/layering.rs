//! The crate's modules stand in layers and import only downwards:
//!
//! ```text
//! secret_scanning, management, test_util   on the handle
//! api_keys   the user's handle and its builder
//! layer      the tower middleware
//! engine     the shared state and its parts
//! error      what a management call fails with
//! store      the store traits and the backends; oauth, the token verifier
//! leaves     key, record, event, clock, rejection, bearer, query, limit,
//!            stats, identity, fetch
//! ```
//!
//! This test reads every `crate::` path in `src/` (outside comments) and
//! fails on an import that points up, or on a cycle among the leaves. A
//! path through a name that `lib.rs` re-exports (`crate::ManageError`, or
//! `crate::throttle::FailedAttemptLimit` through an inline module) counts
//! as an import of the module that defines it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first.
const LAYERS: &[&[&str]] = &[
    &[
        "key",
        "record",
        "event",
        "clock",
        "rejection",
        "bearer",
        "query",
        "limit",
        "stats",
        "identity",
        "fetch",
    ],
    &["store", "oauth"],
    &["error"],
    &["engine"],
    &["layer"],
    &["api_keys"],
    &["secret_scanning", "management", "test_util"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs`).
fn owner_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_owned())
}

/// The top-level modules a line of code names through `crate::` or
/// `$crate::`, including every name of a braced `use crate::{a, b::c}`.
fn named_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let names: Vec<&str> = match after.strip_prefix('{') {
            Some(group) => top_level_items(group),
            None => vec![after],
        };
        for name in names {
            let module: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !module.is_empty() {
                found.push(module);
            }
        }
        rest = after;
    }
    found
}

/// The comma-separated items of a `use` group up to its closing brace,
/// nested groups left whole.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0_usize, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(group[start..i].trim());
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(group[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(group[start..].trim());
    items
}

/// The code of `text` without its comment lines and trailing comments.
fn code_of(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|line| {
        let code = line.trim_start();
        if code.starts_with("//") {
            ""
        } else {
            code.split("//").next().unwrap_or(code)
        }
    })
}

/// The names by which `lib.rs` (its text `lib`) lets the crate reach into
/// a module from the root, each with the top-level modules it stands for:
/// what its `use crate::module::...` items bring to the root (by their
/// last name, or the name after `as`), and each inline `mod name {... }`
/// for the modules its own `use crate::...` items come from.
fn root_aliases(lib: &str) -> BTreeMap<String, BTreeSet<String>> {
    let code: String = code_of(lib).collect::<Vec<_>>().join("\n");
    // Inline modules: name and the span of their braces.
    let mut inline = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("mod ") {
        let start = from + at;
        from = start + "mod ".len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[from..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = rest[name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = from + name.len() + (rest[name.len()..].len() - after.len());
        let mut depth = 0_usize;
        for (i, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        inline.push((name.clone(), open, open + i));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    let mut aliases: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("use crate::") {
        let start = from + at;
        let body = start + "use crate::".len();
        let end = code[body..].find(';').map_or(code.len(), |i| body + i);
        from = end;
        let statement = &code[body..end];
        let module: String = statement
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if module.is_empty() {
            continue;
        }
        if let Some((name, ..)) = inline
            .iter()
            .find(|(_, open, close)| *open < start && start < *close)
        {
            aliases.entry(name.clone()).or_default().insert(module);
            continue;
        }
        // The leaves of the use tree: a name not followed by `::`, or the
        // name after `as`.
        let tokens: Vec<&str> = statement
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .flat_map(|word| word.split_inclusive("::"))
            .filter(|token| !token.is_empty())
            .collect();
        for (i, token) in tokens.iter().enumerate() {
            let leaf = !token.ends_with("::")
                && *token != "as"
                && *token != "self"
                && tokens.get(i + 1) != Some(&"as");
            if leaf && !(i == 0 && tokens.len() > 1 && *token == module) {
                aliases
                    .entry(token.to_string())
                    .or_default()
                    .insert(module.clone());
            }
        }
    }
    aliases
}

/// Module → the top-level modules it imports, with one place each.
fn imports() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let aliases =
        root_aliases(&fs::read_to_string(src.join("lib.rs")).expect("lib.rs is readable"));
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let Some(from) = owner_of(&src, &file) else {
            continue;
        };
        let text = fs::read_to_string(&file).expect("a source file is readable");
        for (n, code) in code_of(&text).enumerate() {
            for named in named_modules(code) {
                let targets = match rank(&named) {
                    Some(_) => BTreeSet::from([named]),
                    None => aliases.get(&named).cloned().unwrap_or_default(),
                };
                for to in targets {
                    if to == from || rank(&to).is_none() {
                        continue;
                    }
                    let place = format!("{}:{}", file.display(), n + 1);
                    graph
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_insert(place);
                }
            }
        }
    }
    graph
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let unknown: BTreeSet<String> = files
        .iter()
        .filter_map(|file| owner_of(&src, file))
        .filter(|module| rank(module).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "give these modules a layer in tests/layering.rs: {unknown:?}"
    );
}

#[test]
fn imports_point_down_only() {
    let mut upward = Vec::new();
    for (from, targets) in imports() {
        for (to, place) in targets {
            if rank(&to) > rank(&from) {
                upward.push(format!("{place}: {from} imports {to}, a layer above it"));
            }
        }
    }
    assert!(upward.is_empty(), "{}", upward.join("\n"));
}

#[test]
fn no_module_cycle() {
    let graph = imports();
    // Depth-first search from every module; a module met again on the
    // current path closes a cycle.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if !done.insert(module.to_owned()) {
            return None;
        }
        path.push(module.to_owned());
        for to in graph.get(module).into_iter().flat_map(|t| t.keys()) {
            if let Some(cycle) = visit(to, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(module, &graph, &mut path, &mut done) {
            panic!("modules import each other: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_reader_sees_what_an_import_names() {
    assert_eq!(
        named_modules("use crate::{key::KeyHash, record::{KeyId, Scopes}};"),
        ["key", "record"]
    );
    assert_eq!(named_modules("$crate::store::KeyStore"), ["store"]);
    assert!(named_modules("let crate_name = 1;").is_empty());
}

#[test]
fn a_root_path_counts_as_an_import_of_the_module_that_defines_it() {
    let lib = "
        pub mod throttle {
            pub use crate::engine::throttle::{ClientAddress, FailedAttemptLimit};
        }
        pub use crate::api_keys::{ApiKeys, ApiKeysBuilder as Builder};
        // pub use crate::layer::Commented;
        pub use crate::engine::ManageError; // and a comment
        #[cfg(feature = \"x\")]
        pub use crate::store::{KeyStore, memory::{MemoryStore}};
        use crate::record::self_named::{self};
    ";
    let aliases = root_aliases(lib);
    let of = |name: &str| -> Vec<&str> {
        aliases
            .get(name)
            .map(|modules| modules.iter().map(String::as_str).collect())
            .unwrap_or_default()
    };
    assert_eq!(of("throttle"), ["engine"]);
    assert_eq!(of("ApiKeys"), ["api_keys"]);
    assert_eq!(of("Builder"), ["api_keys"]);
    assert!(of("ApiKeysBuilder").is_empty(), "{aliases:?}");
    assert_eq!(of("ManageError"), ["engine"]);
    assert_eq!(of("KeyStore"), ["store"]);
    assert_eq!(of("MemoryStore"), ["store"]);
    assert!(of("Commented").is_empty(), "{aliases:?}");
    assert!(of("ClientAddress").is_empty(), "{aliases:?}");

    // And in the crate's own lib.rs.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let real = root_aliases(&fs::read_to_string(src.join("lib.rs")).unwrap());
    assert_eq!(
        real.get("ManageError"),
        Some(&BTreeSet::from(["error".to_owned()]))
    );
    assert_eq!(
        real.get("ApiKeys"),
        Some(&BTreeSet::from(["api_keys".to_owned()]))
    );
    assert_eq!(
        real.get("fuzzing"),
        Some(&BTreeSet::from(["bearer".to_owned(), "query".to_owned()]))
    );
}
