//! Subscriptions that many sockets run alike are executed once.
//!
//! Dashboards open the same subscription by the thousand: same document, same variables,
//! same role. Such subscriptions join one group per instance; the group runs the operation
//! once, serializes each response once, and every member receives the same text. A member
//! has its own bounded view of the group's channel: one that falls behind is told it lagged
//! and leaves, the others carry on.
//!
//! Only live subscriptions share: a document naming `after` replays from its own point and
//! runs alone, and so do queries and mutations, whose answers depend on the caller.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use async_graphql::{Request, Response, parser::types::OperationType};
use futures_util::{FutureExt as _, Stream, StreamExt as _, stream::BoxStream};
use tokio::sync::broadcast;

use crate::{auth::Principal, graphql::AppSchema};

/// One response of a group: the response, and its JSON when it holds no error (errors get
/// the member's own request id, so those are serialized per member).
#[derive(Debug)]
pub struct SharedResponse {
    pub response: Response,
    pub json: Option<Arc<str>>,
}

/// What one operation of a socket yields.
pub enum Item {
    Own(Box<Response>),
    Shared(Arc<SharedResponse>),
}

enum GroupItem {
    Response(Arc<SharedResponse>),
    End,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    caller: String,
    query: String,
    operation_name: Option<String>,
    variables: String,
}

struct Group {
    items: broadcast::Sender<Arc<GroupItem>>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// The groups of this instance.
#[derive(Clone)]
pub struct SharedSubscriptions {
    groups: Arc<Mutex<HashMap<GroupKey, Weak<Group>>>>,
    member_buffer: usize,
}

impl SharedSubscriptions {
    pub fn new(member_buffer: usize) -> Self {
        SharedSubscriptions {
            groups: Arc::default(),
            member_buffer: member_buffer.max(1),
        }
    }

    /// The responses of `request` for one socket: from a group when the operation can be
    /// shared, else executed for this socket alone. Either way the operation has started
    /// (and is listening for events) when this returns.
    pub fn execute(
        &self,
        schema: &AppSchema,
        principal: &Principal,
        request: Request,
    ) -> BoxStream<'static, Item> {
        let Some(key) = shareable(principal, &request) else {
            return schema
                .execute_stream(request)
                .map(|response| Item::Own(Box::new(response)))
                .boxed();
        };
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(group) = groups.get(&key).and_then(Weak::upgrade) {
            let receiver = group.items.subscribe();
            return member(group, receiver).boxed();
        }
        groups.retain(|_, group| group.strong_count() > 0);
        let (sender, receiver) = broadcast::channel(self.member_buffer);
        let group = Arc::new(Group {
            items: sender.clone(),
            task: Mutex::new(None),
        });
        groups.insert(key, Arc::downgrade(&group));
        drop(groups);

        let mut source = schema.execute_stream(request).boxed();
        // The first poll runs the resolver, which starts listening; what it answers at once
        // (a refusal, say) goes to the first member like anything later.
        match source.next().now_or_never() {
            Some(Some(response)) => publish(&sender, response),
            Some(None) => {
                let _ = sender.send(Arc::new(GroupItem::End));
                return member(group, receiver).boxed();
            }
            None => {}
        }
        let task = tokio::spawn(async move {
            while let Some(response) = source.next().await {
                publish(&sender, response);
            }
            let _ = sender.send(Arc::new(GroupItem::End));
        });
        *group.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        member(group, receiver).boxed()
    }
}

fn publish(sender: &broadcast::Sender<Arc<GroupItem>>, response: Response) {
    let json = if response.errors.is_empty() {
        serde_json::to_string(&response).ok().map(Arc::from)
    } else {
        None
    };
    let _ = sender.send(Arc::new(GroupItem::Response(Arc::new(SharedResponse {
        response,
        json,
    }))));
}

/// A member's view of its group; holding it keeps the group running.
fn member(
    group: Arc<Group>,
    mut receiver: broadcast::Receiver<Arc<GroupItem>>,
) -> impl Stream<Item = Item> + Send + 'static {
    async_stream::stream! {
        let _group = group;
        let mut last_sequence = None;
        loop {
            match receiver.recv().await {
                Ok(item) => match &*item {
                    GroupItem::Response(shared) => {
                        last_sequence = sequence_of(&shared.response).or(last_sequence);
                        yield Item::Shared(shared.clone());
                    }
                    GroupItem::End => return,
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    yield Item::Own(Box::new(super::realtime::resolvers::lag_response(last_sequence, missed)));
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// The `sequence` the subscription's payload carries, when it selects it.
fn sequence_of(response: &Response) -> Option<u64> {
    let async_graphql::Value::Object(root) = &response.data else {
        return None;
    };
    let (_, async_graphql::Value::Object(payload)) = root.iter().next()? else {
        return None;
    };
    match payload.get("sequence")? {
        async_graphql::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn shareable(principal: &Principal, request: &Request) -> Option<GroupKey> {
    if request.query.contains("after") {
        return None;
    }
    let document = async_graphql::parser::parse_query(&request.query).ok()?;
    let only_subscriptions = document
        .operations
        .iter()
        .all(|(_, op)| op.node.ty == OperationType::Subscription);
    if !only_subscriptions {
        return None;
    }
    let caller = match principal {
        // Subscription resolvers depend on the caller's role only (through guards); an
        // agent or key would be scoped to itself, so those run alone.
        Principal::User(user) => format!("user:{}", user.role.as_str()),
        Principal::Anonymous => "anonymous".to_string(),
        Principal::Agent(_) | Principal::Enrollment(_) | Principal::Refused(_) => return None,
    };
    Some(GroupKey {
        caller,
        query: request.query.clone(),
        operation_name: request.operation_name.clone(),
        variables: serde_json::to_string(&request.variables).ok()?,
    })
}
