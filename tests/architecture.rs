//! The dependency rule of ARCHITECTURE.md, checked on the sources of `src/`:
//!
//! 1. Only the GraphQL layer (`src/graphql/`) and the edges that assemble the program
//!    (`app.rs`, `cli.rs`, `main.rs`, `lib.rs`) import `crate::graphql` or
//!    `async_graphql::{Context, ID, connection}`.
//! 2. A domain reaches another domain only through that domain's `mod.rs` exports, never
//!    through one of its files (`crate::nodes::register`, not `crate::nodes::service::…`).
//! 3. Only a domain's store (`src/<domain>/store.rs` or `src/<domain>/store/`) touches its
//!    tables: sea-orm entities (other than passing `entity::<table>::Model` around) and
//!    raw SQL naming the table.
//! 4. No file has more than 600 lines before its `#[cfg(test)]` module.
//!
//! Code under `#[cfg(test)]` is not checked: unit tests may reach anything.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::{Path, PathBuf},
};

use syn::visit::Visit;

/// The domains: folders of `src/` with a `mod.rs` face and a store.
const DOMAINS: &[&str] = &[
    "alerts",
    "audit",
    "auth",
    "ips",
    "mailflow",
    "metrics",
    "nodes",
    "notifications",
    "overview",
    "users",
];

/// Folders of `src/` that are not domains: the GraphQL layer and the infrastructure.
const NOT_DOMAINS: &[&str] = &[
    "config",
    "db",
    "graphql",
    "jobs",
    "realtime",
    "remote_write",
    "seed",
    "telemetry",
];

/// Files that assemble the program and may see every layer.
const EDGES: &[&str] = &["app.rs", "cli.rs", "main.rs", "lib.rs"];

/// What the GraphQL layer keeps to itself.
const GRAPHQL_ONLY: &[&str] = &["Context", "ID", "connection"];

/// Which domain owns each entity module (`entity::<module>`).
const ENTITY_OWNERS: &[(&str, &str)] = &[
    ("alert", "alerts"),
    ("alert_notice", "alerts"),
    ("alert_rule", "alerts"),
    ("alert_silence", "alerts"),
    ("audit_log", "audit"),
    ("contact_point", "notifications"),
    ("dnsbl_check_job", "ips"),
    ("dnsbl_result", "ips"),
    ("dnsbl_transition", "ips"),
    ("enrollment_key", "nodes"),
    ("ip_address", "ips"),
    ("mail_event", "mailflow"),
    ("mail_event_batch", "mailflow"),
    ("metric_batch", "metrics"),
    ("metric_sample", "metrics"),
    ("metric_series", "metrics"),
    ("node", "nodes"),
    ("node_key", "nodes"),
    ("node_label", "nodes"),
    ("node_status_change", "nodes"),
    ("notification", "notifications"),
    ("notification_attempt", "notifications"),
    ("notification_group", "notifications"),
    ("notification_group_alert", "notifications"),
    ("notification_policy", "notifications"),
    ("refresh_token", "auth"),
    ("user", "users"),
];

/// Tables written only through raw SQL, with no entity.
const RAW_TABLES: &[(&str, &str)] = &[
    ("mail_flow_1m", "mailflow"),
    ("mail_flow_1h", "mailflow"),
    ("metric_rollups_1m", "metrics"),
    ("metric_rollups_1h", "metrics"),
];

const MAX_LINES_BEFORE_TESTS: usize = 600;

#[derive(Default)]
struct Rules {
    /// entity module → owning domain.
    entities: HashMap<String, String>,
    /// table name → owning domain.
    tables: HashMap<String, String>,
    /// domain → the names of its files and folders (its private modules).
    domain_modules: HashMap<String, Vec<String>>,
    /// domain → the names its `mod.rs` exports with `pub use` (which may be spelled like
    /// one of its modules: `mailflow::ingest` is a function).
    domain_exports: HashMap<String, Vec<String>>,
}

impl Rules {
    fn load(root: &Path) -> Rules {
        let mut rules = Rules::default();
        for (module, owner) in ENTITY_OWNERS {
            rules.entities.insert(module.to_string(), owner.to_string());
            let source = fs::read_to_string(root.join(format!("entity/src/{module}.rs")))
                .unwrap_or_else(|e| panic!("entity/src/{module}.rs: {e}"));
            let table = source
                .split("table_name = \"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("entity/src/{module}.rs names no table"));
            rules.tables.insert(table.to_string(), owner.to_string());
        }
        for (table, owner) in RAW_TABLES {
            rules.tables.insert(table.to_string(), owner.to_string());
        }
        for domain in DOMAINS {
            let mut modules = Vec::new();
            for entry in fs::read_dir(root.join("src").join(domain)).expect("domain folder") {
                let name = entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                let name = name.trim_end_matches(".rs").to_string();
                if name != "mod" {
                    modules.push(name);
                }
            }
            rules.domain_modules.insert(domain.to_string(), modules);
            let face = fs::read_to_string(root.join("src").join(domain).join("mod.rs"))
                .expect("domain mod.rs");
            let mut exports = Vec::new();
            for item in syn::parse_file(&face).expect("mod.rs parses").items {
                if let syn::Item::Use(item) = item
                    && matches!(item.vis, syn::Visibility::Public(_))
                {
                    let mut imports = Vec::new();
                    flatten_use(&item.tree, &mut Vec::new(), &mut imports);
                    exports.extend(imports.into_iter().filter_map(|(_, alias, _)| alias));
                }
            }
            rules.domain_exports.insert(domain.to_string(), exports);
        }
        rules
    }
}

/// Where a file sits in the architecture.
#[derive(Clone, Debug)]
struct Place {
    /// Path below `src/`, e.g. `nodes/service.rs`.
    file: String,
    /// Its module path, e.g. `["nodes", "service"]`.
    module: Vec<String>,
}

impl Place {
    fn new(file: &str) -> Place {
        let mut module: Vec<String> = file
            .trim_end_matches(".rs")
            .split('/')
            .map(String::from)
            .collect();
        if module
            .last()
            .is_some_and(|last| last == "mod" || last == "lib" || last == "main")
        {
            module.pop();
        }
        Place {
            file: file.to_string(),
            module,
        }
    }

    fn in_graphql_layer(&self) -> bool {
        self.module.first().is_some_and(|first| first == "graphql")
    }

    fn is_edge(&self) -> bool {
        EDGES.contains(&self.file.as_str())
    }

    fn domain(&self) -> Option<&str> {
        self.module
            .first()
            .map(String::as_str)
            .filter(|first| DOMAINS.contains(first))
    }

    fn is_store_of(&self, domain: &str) -> bool {
        self.file == format!("{domain}/store.rs")
            || self.file.starts_with(&format!("{domain}/store/"))
    }
}

struct Checker<'a> {
    rules: &'a Rules,
    place: Place,
    /// Names brought into scope by `use`, with the path each stands for.
    aliases: HashMap<String, Vec<String>>,
    violations: Vec<String>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Meta>()
                .is_ok_and(|meta| meta.path().is_ident("test"))
    })
}

/// Every path a `use` tree imports, with the name it is known by.
fn flatten_use(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>, usize)>,
) {
    match tree {
        syn::UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            flatten_use(&path.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(name) => {
            let ident = name.ident.to_string();
            let mut path = prefix.clone();
            let alias = if ident == "self" {
                prefix.last().cloned()
            } else {
                path.push(ident.clone());
                Some(ident)
            };
            out.push((path, alias, name.ident.span().start().line));
        }
        syn::UseTree::Rename(rename) => {
            let mut path = prefix.clone();
            if rename.ident != "self" {
                path.push(rename.ident.to_string());
            }
            out.push((
                path,
                Some(rename.rename.to_string()),
                rename.ident.span().start().line,
            ));
        }
        syn::UseTree::Glob(glob) => {
            let mut path = prefix.clone();
            path.push("*".into());
            out.push((path, None, glob.star_token.span.start().line));
        }
        syn::UseTree::Group(group) => {
            for item in &group.items {
                flatten_use(item, prefix, out);
            }
        }
    }
}

impl<'a> Checker<'a> {
    fn new(rules: &'a Rules, place: Place) -> Checker<'a> {
        Checker {
            rules,
            place,
            aliases: HashMap::new(),
            violations: Vec::new(),
        }
    }

    /// The path as seen from the crate root: `crate::…`, or an external crate's path.
    fn absolute(&self, segments: &[String]) -> Vec<String> {
        let Some(first) = segments.first() else {
            return Vec::new();
        };
        match first.as_str() {
            "crate" | "mailops" => {
                let mut path = vec!["crate".to_string()];
                path.extend(segments[1..].iter().cloned());
                path
            }
            "self" => {
                let mut path = vec!["crate".to_string()];
                path.extend(self.place.module.iter().cloned());
                path.extend(segments[1..].iter().cloned());
                path
            }
            "super" => {
                let mut module = self.place.module.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    module.pop();
                    rest = &rest[1..];
                }
                let mut path = vec!["crate".to_string()];
                path.extend(module);
                path.extend(rest.iter().cloned());
                path
            }
            _ => match self.aliases.get(first) {
                Some(target)
                    if segments.len() > 1 || target.first().is_some_and(|t| t == "crate") =>
                {
                    let mut path = target.clone();
                    path.extend(segments[1..].iter().cloned());
                    path
                }
                _ => segments.to_vec(),
            },
        }
    }

    fn report(&mut self, line: usize, message: String) {
        self.violations
            .push(format!("src/{}:{line}: {message}", self.place.file));
    }

    fn check_path(&mut self, path: &[String], line: usize) {
        let path = self.absolute(path);
        let shown = path.join("::");
        let may_see_graphql = self.place.in_graphql_layer() || self.place.is_edge();
        if !may_see_graphql {
            if path.len() >= 2 && path[0] == "crate" && path[1] == "graphql" {
                self.report(
                    line,
                    format!(
                        "`{shown}`: only the GraphQL layer and the edges import crate::graphql"
                    ),
                );
            }
            if path.len() >= 2
                && path[0] == "async_graphql"
                && GRAPHQL_ONLY.contains(&path[1].as_str())
            {
                self.report(
                    line,
                    format!(
                        "`{shown}`: async_graphql::{} belongs to the GraphQL layer",
                        path[1]
                    ),
                );
            }
        }
        if path.len() >= 3 && path[0] == "crate" && DOMAINS.contains(&path[1].as_str()) {
            let target = path[1].as_str();
            let inside = self.place.domain() == Some(target);
            let is_module = self.rules.domain_modules[target].contains(&path[2])
                && !self.rules.domain_exports[target].contains(&path[2]);
            if !inside && is_module {
                self.report(
                    line,
                    format!(
                        "`{shown}` reaches into {target}/{}: use what {target}/mod.rs exports",
                        path[2]
                    ),
                );
            }
        }
        if path.len() >= 2
            && path[0] == "entity"
            && let Some(owner) = self.rules.entities.get(&path[1])
        {
            let passes_a_row = path.len() == 3 && path[2] == "Model";
            if !passes_a_row && !self.place.is_store_of(owner) {
                let owner = owner.clone();
                self.report(
                    line,
                    format!("`{shown}`: the {} table belongs to {owner}/store", path[1]),
                );
            }
        }
    }

    fn check_text(&mut self, text: &str, line: usize) {
        let upper = text.to_ascii_uppercase();
        let words: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        let upper_words: Vec<&str> = upper
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        let names_table = |table: &str| {
            // A literal that is a table's name passes it to a generic helper (`db::batch`,
            // `db::retention`); single words ("nodes") are too often plain text to count.
            if text == table && table.contains('_') {
                return true;
            }
            words.iter().enumerate().any(|(i, word)| {
                *word == table
                    && i > 0
                    && matches!(
                        upper_words[i - 1],
                        "FROM" | "INTO" | "UPDATE" | "JOIN" | "TABLE"
                    )
            })
        };
        let mut owners: Vec<(String, String)> = self
            .rules
            .tables
            .iter()
            .filter(|(table, _)| names_table(table))
            .map(|(table, owner)| (table.clone(), owner.clone()))
            .collect();
        owners.sort();
        for (table, owner) in owners {
            if !self.place.is_store_of(&owner) {
                self.report(
                    line,
                    format!("SQL names the {table} table, which belongs to {owner}/store"),
                );
            }
        }
    }

    fn check_tokens(&mut self, tokens: proc_macro2::TokenStream) {
        for token in tokens {
            match token {
                proc_macro2::TokenTree::Literal(literal) => {
                    let line = literal.span().start().line;
                    if let Ok(syn::Lit::Str(text)) =
                        syn::parse_str::<syn::Lit>(&literal.to_string())
                    {
                        self.check_text(&text.value(), line);
                    }
                }
                proc_macro2::TokenTree::Group(group) => self.check_tokens(group.stream()),
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Checker<'_> {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if is_cfg_test(&item.attrs) {
            return;
        }
        let mut imports = Vec::new();
        flatten_use(&item.tree, &mut Vec::new(), &mut imports);
        for (path, alias, line) in imports {
            self.check_path(&path, line);
            if let Some(alias) = alias {
                let absolute = self.absolute(&path);
                self.aliases.insert(alias, absolute);
            }
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_cfg_test(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_cfg_test(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if !is_cfg_test(&item.attrs) {
            syn::visit::visit_item_impl(self, item);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = path
            .segments
            .first()
            .map_or(0, |segment| segment.ident.span().start().line);
        self.check_path(&segments, line);
        syn::visit::visit_path(self, path);
    }

    fn visit_lit_str(&mut self, literal: &'ast syn::LitStr) {
        self.check_text(&literal.value(), literal.span().start().line);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.check_tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// Violations of rules 1–3 in one file's source.
fn check_source(rules: &Rules, file: &str, source: &str) -> Vec<String> {
    let syntax = syn::parse_file(source).unwrap_or_else(|e| panic!("src/{file}: {e}"));
    let mut checker = Checker::new(rules, Place::new(file));
    // Aliases first, so a path used above its `use` still resolves.
    for item in &syntax.items {
        if let syn::Item::Use(item) = item {
            let mut imports = Vec::new();
            flatten_use(&item.tree, &mut Vec::new(), &mut imports);
            for (path, alias, _) in imports {
                if let Some(alias) = alias {
                    let absolute = checker.absolute(&path);
                    checker.aliases.insert(alias, absolute);
                }
            }
        }
    }
    checker.visit_file(&syntax);
    checker.violations
}

/// Rule 4 for one file.
fn check_length(file: &str, source: &str) -> Option<String> {
    let before_tests = source
        .lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .count();
    (before_tests > MAX_LINES_BEFORE_TESTS).then(|| {
        format!("src/{file}: {before_tests} lines before its tests; split it (at most {MAX_LINES_BEFORE_TESTS})")
    })
}

fn sources(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).expect("readable source folder") {
        let path: PathBuf = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path
                .strip_prefix(root)
                .expect("below src")
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(
                relative,
                fs::read_to_string(&path).expect("readable source"),
            );
        }
    }
}

#[test]
fn the_sources_follow_the_dependency_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = Rules::load(root);
    let mut files = BTreeMap::new();
    sources(&root.join("src"), &root.join("src"), &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut violations = Vec::new();
    for (file, source) in &files {
        violations.extend(check_source(&rules, file, source));
        violations.extend(check_length(file, source));
    }
    assert!(
        violations.is_empty(),
        "{} violations of the dependency rule (see ARCHITECTURE.md):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn every_entity_has_an_owner_and_every_folder_is_placed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let names = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(root.join(dir))
            .expect("folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    for file in names("entity/src") {
        let module = file.trim_end_matches(".rs");
        assert!(
            module == "lib" || ENTITY_OWNERS.iter().any(|(m, _)| *m == module),
            "entity/src/{file} has no owning domain in ENTITY_OWNERS"
        );
    }
    for entry in names("src") {
        if root.join("src").join(&entry).is_dir() {
            assert!(
                DOMAINS.contains(&entry.as_str()) || NOT_DOMAINS.contains(&entry.as_str()),
                "src/{entry}/ is neither a domain (DOMAINS) nor a layer (NOT_DOMAINS)"
            );
        }
    }
}

fn rules_for_tests() -> Rules {
    Rules::load(Path::new(env!("CARGO_MANIFEST_DIR")))
}

#[test]
fn a_service_importing_the_graphql_layer_is_reported() {
    let found = check_source(
        &rules_for_tests(),
        "nodes/service.rs",
        "use crate::graphql::pagination::Page;\nfn f(ctx: &async_graphql::Context<'_>) {}\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("only the GraphQL layer"));
    assert!(found[1].contains("async_graphql::Context"));
}

#[test]
fn the_graphql_layer_may_use_context_and_id() {
    let found = check_source(
        &rules_for_tests(),
        "graphql/nodes/resolvers.rs",
        "use async_graphql::{Context, ID};\nuse crate::graphql::guards::RoleGuard;\n",
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn reaching_into_another_domains_file_is_reported() {
    let rules = rules_for_tests();
    let found = check_source(
        &rules,
        "alerts/rules.rs",
        "use crate::nodes::{self, validate::validate_labels};\nfn f() { nodes::status::sweep(); }\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|v| v.contains("reaches into nodes/")));
    let own = check_source(
        &rules,
        "nodes/service.rs",
        "use crate::nodes::status::NodeStatus;\n",
    );
    assert!(own.is_empty(), "{own:?}");
}

#[test]
fn another_domains_table_outside_its_store_is_reported() {
    let rules = rules_for_tests();
    let found = check_source(
        &rules,
        "overview/service.rs",
        "use entity::node;\nfn f() { let _ = node::Entity::find(); let _ = \"SELECT count(*) FROM alerts\"; }\n",
    );
    assert_eq!(found.len(), 3, "{found:?}");
    let in_store = check_source(
        &rules,
        "nodes/store.rs",
        "use entity::node;\nfn f() { let _ = node::Entity::find(); let _ = format!(\"UPDATE nodes SET x = 1\"); }\n",
    );
    assert!(in_store.is_empty(), "{in_store:?}");
    let row = check_source(
        &rules,
        "graphql/nodes/types.rs",
        "fn f(m: entity::node::Model) {}\n",
    );
    assert!(row.is_empty(), "{row:?}");
}

#[test]
fn a_long_file_is_reported_and_its_tests_do_not_count() {
    let long = "fn f() {}\n".repeat(601);
    assert!(check_length("x.rs", &long).is_some());
    let tested = format!(
        "{}#[cfg(test)]\nmod tests {{}}\n{}",
        "fn f() {}\n".repeat(600),
        "// t\n".repeat(900)
    );
    assert!(check_length("x.rs", &tested).is_none());
}
