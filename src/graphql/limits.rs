//! Limits on what one GraphQL document may ask for, beyond the depth and complexity
//! limits async-graphql checks itself.

use std::sync::Arc;

use async_graphql::{
    Name, Positioned, Request, ServerError, ServerResult, ValidationResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation},
    parser::types::{ExecutableDocument, FragmentDefinition, Selection, SelectionSet},
};

use crate::error::{code, server_error};

pub const MAX_DEPTH: usize = 12;
/// Introspection queries (GraphiQL's, code generators') nest `ofType` deeper than any
/// data query needs, so the subtree under `__schema` or `__type` may go this deep.
pub const MAX_INTROSPECTION_DEPTH: usize = 20;
/// Selection sets one document may make the limit checks visit (fragments spread many
/// times are visited each time).
const MAX_VISITS: usize = 20_000;
pub const MAX_COMPLEXITY: usize = 5_000;
pub const MAX_ALIASES: usize = 30;
pub const MAX_DIRECTIVES: usize = 50;
pub const MAX_QUERY_BYTES: usize = 32 * 1024;
pub const MAX_BATCH: usize = 10;
/// Request bodies larger than this are refused before they are parsed.
/// A metrics batch of 10,000 samples with labels fits.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The complexity of a `metrics` field: the series it may read, each name once per node
/// asked for (or 10 for every node), 10 apiece; so one field of 50 names costs 500 and
/// thirty such aliases are refused before anything runs.
pub fn metrics_complexity(names: usize, nodes: Option<usize>) -> usize {
    names
        .max(1)
        .saturating_mul(nodes.unwrap_or(10).max(1))
        .saturating_mul(10)
}

/// The complexity of a `mailFlow` field: 10 per group it may return.
pub fn mail_flow_complexity(grouped: bool, split_again: bool, top: Option<i32>) -> usize {
    let top = top.unwrap_or(20).clamp(1, 100) as usize;
    let groups = match (grouped, split_again) {
        (false, _) => 1,
        (true, false) => top,
        // Each group with up to `top` groups of its own.
        (true, true) => top * (1 + top),
    };
    groups * 10
}

/// Measures a parsed document and refuses one that nests too deep or uses too many
/// aliases or directives. Documents that pass and then validate against the schema are
/// kept by their text, so the queries a dashboard sends again and again are parsed and
/// measured once; documents that fail validation are never kept, so junk cannot fill the
/// cache, which is bounded in bytes besides.
///
/// `POST /graphql` applies it before execution (see `HttpSchema`); WebSocket operations
/// through [`DocumentLimitsExtension`].
#[derive(Default)]
pub struct DocumentLimits {
    parsed: ParsedDocuments,
}

/// A request's document as [`DocumentLimits::prepare`] found it.
pub struct Prepared {
    /// The type of the operation the request runs, and its name.
    pub operation: (&'static str, Option<String>),
    /// Set when the document was parsed now: it is kept once it has validated.
    parsed: Option<(String, Arc<ExecutableDocument>)>,
}

impl DocumentLimits {
    /// Parses the request's query, or takes it from the documents kept, and refuses it
    /// when over a limit; the parsed document travels with the request.
    pub fn prepare(&self, request: &mut Request) -> ServerResult<Prepared> {
        let (document, parsed) = self.parse(&request.query)?;
        let operation =
            super::operations::operation_of(&document, request.operation_name.as_deref());
        request.set_parsed_query(document);
        Ok(Prepared { operation, parsed })
    }

    /// Keeps a freshly parsed document once its response shows it validated: no error
    /// outside a field (validation and variable errors have no path).
    pub fn keep_if_valid(&self, prepared: Prepared, response: &async_graphql::Response) {
        if let Some((query, document)) = prepared.parsed
            && response.errors.iter().all(|e| !e.path.is_empty())
        {
            self.parsed.keep(&query, document);
        }
    }

    /// The document of `query`, and the text and document to keep once it has validated
    /// (`None` when it was kept already).
    #[allow(clippy::type_complexity)]
    fn parse(
        &self,
        query: &str,
    ) -> ServerResult<(
        ExecutableDocument,
        Option<(String, Arc<ExecutableDocument>)>,
    )> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(server_error(
                code::BAD_USER_INPUT,
                format!(
                    "query is {} bytes; the limit is {MAX_QUERY_BYTES}",
                    query.len()
                ),
            ));
        }
        if let Some(document) = self.parsed.get(query) {
            return Ok((ExecutableDocument::clone(&document), None));
        }
        let document = async_graphql::parser::parse_query(query)?;
        check(&document)?;
        let keep = (query.to_owned(), Arc::new(document.clone()));
        Ok((document, Some(keep)))
    }
}

/// The same limits as a schema extension, for operations that arrive over the WebSocket.
#[derive(Default)]
pub struct DocumentLimitsExtension {
    limits: Arc<DocumentLimits>,
}

impl ExtensionFactory for DocumentLimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsOnParse {
            limits: self.limits.clone(),
            parsed: std::sync::Mutex::new(None),
        })
    }
}

/// One operation's pass through the limits: the document parsed for it, kept once the
/// schema has validated it.
struct LimitsOnParse {
    limits: Arc<DocumentLimits>,
    parsed: std::sync::Mutex<Option<(String, Arc<ExecutableDocument>)>>,
}

#[async_trait::async_trait]
impl Extension for LimitsOnParse {
    async fn parse_query(
        &self,
        _ctx: &ExtensionContext<'_>,
        query: &str,
        _variables: &Variables,
        _next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let (document, keep) = self.limits.parse(query)?;
        *self.parsed.lock().unwrap_or_else(|e| e.into_inner()) = keep;
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await;
        if result.is_ok()
            && let Some((query, document)) =
                self.parsed.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            self.limits.parsed.keep(&query, document);
        }
        result
    }
}

/// Bytes of query text the documents kept may come from; a parsed document takes a few
/// times its text. When full, it starts over, which keeps it bounded without bookkeeping
/// on the hot path.
const PARSED_CAPACITY_BYTES: usize = 1024 * 1024;
/// Longer query texts are not kept.
const PARSED_MAX_QUERY_BYTES: usize = 8 * 1024;

#[derive(Default)]
struct ParsedDocuments(std::sync::Mutex<Kept>);

#[derive(Default)]
struct Kept {
    documents: std::collections::HashMap<Box<str>, Arc<ExecutableDocument>>,
    bytes: usize,
}

impl ParsedDocuments {
    fn get(&self, query: &str) -> Option<Arc<ExecutableDocument>> {
        self.0.lock().ok()?.documents.get(query).cloned()
    }

    fn keep(&self, query: &str, document: Arc<ExecutableDocument>) {
        if query.len() > PARSED_MAX_QUERY_BYTES {
            return;
        }
        if let Ok(mut kept) = self.0.lock() {
            if kept.bytes + query.len() > PARSED_CAPACITY_BYTES {
                kept.documents.clear();
                kept.bytes = 0;
            }
            if kept.documents.insert(query.into(), document).is_none() {
                kept.bytes += query.len();
            }
        }
    }
}

#[derive(Default)]
struct Counts {
    aliases: usize,
    directives: usize,
}

impl Counts {
    /// Aliases and directives as written: a fragment counts once however often it is spread.
    fn walk(&mut self, set: &SelectionSet) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    self.aliases += usize::from(field.node.alias.is_some());
                    self.directives += field.node.directives.len();
                    self.walk(&field.node.selection_set.node);
                }
                Selection::InlineFragment(fragment) => {
                    self.directives += fragment.node.directives.len();
                    self.walk(&fragment.node.selection_set.node);
                }
                Selection::FragmentSpread(spread) => {
                    self.directives += spread.node.directives.len();
                }
            }
        }
    }

    fn of(document: &ExecutableDocument) -> Counts {
        let mut counts = Counts::default();
        for (_, operation) in document.operations.iter() {
            counts.directives += operation.node.directives.len();
            counts.walk(&operation.node.selection_set.node);
        }
        for fragment in document.fragments.values() {
            counts.directives += fragment.node.directives.len();
            counts.walk(&fragment.node.selection_set.node);
        }
        counts
    }
}

/// How deep a document nests, with fragments expanded where they are spread. Data fields
/// and introspection subtrees are measured apart, since they have different limits.
struct Depth<'a> {
    fragments: &'a std::collections::HashMap<Name, Positioned<FragmentDefinition>>,
    expanding: Vec<&'a Name>,
    data: usize,
    introspection: usize,
    visits: usize,
}

impl<'a> Depth<'a> {
    fn exceeded(&self) -> bool {
        self.data > MAX_DEPTH || self.introspection > MAX_INTROSPECTION_DEPTH
    }

    fn walk(&mut self, set: &'a SelectionSet, level: usize, introspection: bool) {
        self.visits += 1;
        if self.exceeded() || self.visits > MAX_VISITS {
            return;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let introspection = introspection || name == "__schema" || name == "__type";
                    if introspection {
                        self.introspection = self.introspection.max(level);
                    } else {
                        self.data = self.data.max(level);
                    }
                    self.walk(&field.node.selection_set.node, level + 1, introspection);
                }
                Selection::InlineFragment(fragment) => {
                    self.walk(&fragment.node.selection_set.node, level, introspection);
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    // A fragment cycle is reported by validation; here it just stops.
                    if self.expanding.contains(&name) {
                        continue;
                    }
                    if let Some(fragment) = self.fragments.get(name) {
                        self.expanding.push(name);
                        self.walk(&fragment.node.selection_set.node, level, introspection);
                        self.expanding.pop();
                    }
                }
            }
        }
    }

    fn check(document: &ExecutableDocument) -> Result<(), String> {
        let mut depth = Depth {
            fragments: &document.fragments,
            expanding: Vec::new(),
            data: 0,
            introspection: 0,
            visits: 0,
        };
        for (_, operation) in document.operations.iter() {
            depth.walk(&operation.node.selection_set.node, 1, false);
        }
        if depth.visits > MAX_VISITS {
            return Err("query spreads its fragments too often".into());
        }
        if depth.data > MAX_DEPTH {
            return Err(format!(
                "query is nested too deep; the limit is {MAX_DEPTH} levels"
            ));
        }
        if depth.introspection > MAX_INTROSPECTION_DEPTH {
            return Err(format!(
                "introspection query is nested too deep; the limit is {MAX_INTROSPECTION_DEPTH} levels"
            ));
        }
        Ok(())
    }
}

fn check(document: &ExecutableDocument) -> ServerResult<()> {
    Depth::check(document).map_err(|reason| server_error(code::BAD_USER_INPUT, reason))?;
    let counts = Counts::of(document);
    for (what, used, limit) in [
        ("aliases", counts.aliases, MAX_ALIASES),
        ("directives", counts.directives, MAX_DIRECTIVES),
    ] {
        if used > limit {
            return Err(server_error(
                code::BAD_USER_INPUT,
                format!("query uses {used} {what}; the limit is {limit}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(errors: Vec<ServerError>) -> async_graphql::Response {
        async_graphql::Response::from_errors(errors)
    }

    #[test]
    fn only_documents_that_validated_are_kept_and_the_cache_stays_within_its_bytes() {
        let limits = DocumentLimits::default();
        let mut request = Request::new("{ nosuchfield }");
        let prepared = limits.prepare(&mut request).expect("parses");
        // A validation error has no path: the document is not kept.
        limits.keep_if_valid(
            prepared,
            &response(vec![ServerError::new("unknown field", None)]),
        );
        assert!(limits.parsed.get("{ nosuchfield }").is_none());

        let mut request = Request::new("{ me { id } }");
        let prepared = limits.prepare(&mut request).expect("parses");
        limits.keep_if_valid(
            prepared,
            &async_graphql::Response::new(async_graphql::Value::Null),
        );
        assert!(limits.parsed.get("{ me { id } }").is_some());
        let mut again = Request::new("{ me { id } }");
        assert!(limits.prepare(&mut again).is_ok_and(|p| p.parsed.is_none()));

        // Distinct valid documents past the byte budget start it over.
        let padding = " ".repeat(7_000);
        for i in 0..200 {
            let query = format!("{{ me {{ id }} }}{padding}# {i}");
            let mut request = Request::new(query.as_str());
            let prepared = limits.prepare(&mut request).expect("parses");
            limits.keep_if_valid(
                prepared,
                &async_graphql::Response::new(async_graphql::Value::Null),
            );
        }
        let kept = limits.parsed.0.lock().unwrap();
        assert!(
            kept.bytes <= PARSED_CAPACITY_BYTES,
            "{} bytes kept",
            kept.bytes
        );
    }
}
