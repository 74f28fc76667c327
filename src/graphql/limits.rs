//! Limits on what one GraphQL document may ask for, beyond the depth and complexity
//! limits async-graphql checks itself.

use std::sync::Arc;

use async_graphql::{
    ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use crate::error::{code, server_error};

pub const MAX_DEPTH: usize = 12;
pub const MAX_COMPLEXITY: usize = 5_000;
pub const MAX_ALIASES: usize = 30;
pub const MAX_DIRECTIVES: usize = 50;
pub const MAX_QUERY_BYTES: usize = 32 * 1024;
pub const MAX_BATCH: usize = 10;
/// The largest `first` a list accepts.
pub const MAX_PAGE: usize = 500;
/// Request bodies larger than this are refused before they are parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Counts aliases and directives in a parsed document and refuses one with too many.
pub struct DocumentLimits;

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimits)
    }
}

#[derive(Default)]
struct Counts {
    aliases: usize,
    directives: usize,
}

impl Counts {
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

#[async_trait::async_trait]
impl Extension for DocumentLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(server_error(
                code::BAD_USER_INPUT,
                format!(
                    "query is {} bytes; the limit is {MAX_QUERY_BYTES}",
                    query.len()
                ),
            ));
        }
        let document = next.run(ctx, query, variables).await?;
        let counts = Counts::of(&document);
        if counts.aliases > MAX_ALIASES {
            return Err(server_error(
                code::BAD_USER_INPUT,
                format!(
                    "query uses {} aliases; the limit is {MAX_ALIASES}",
                    counts.aliases
                ),
            ));
        }
        if counts.directives > MAX_DIRECTIVES {
            return Err(server_error(
                code::BAD_USER_INPUT,
                format!(
                    "query uses {} directives; the limit is {MAX_DIRECTIVES}",
                    counts.directives
                ),
            ));
        }
        Ok(document)
    }
}
