use std::collections::BTreeSet;

use serde_json::{Value, json};

use testkit::on_both_backends;
use testkit::{TestApp, error_code};

#[test]
fn schema_graphql_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let current = mailops::graphql::sdl();
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed != current {
        std::fs::write(path, &current).expect("rewrite schema.graphql");
        panic!("schema.graphql was stale; it has been rewritten, rerun the tests and commit it");
    }
}

/// Who may call a root field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Public,
    /// Users holding at least this role.
    AtLeast(Caller),
    /// Users holding at least this role, and node agents (for their own node).
    AtLeastOrAgent(Caller),
    /// Node keys only.
    Agent,
    /// Enrollment keys only.
    Enrollment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    Anonymous,
    Viewer,
    Operator,
    Admin,
    Agent,
    EnrollmentKey,
}

const ZERO_ID: &str = "00000000-0000-7000-8000-000000000000";
const MATRIX_NODE: &str = "matrix.example.com";

/// Every root field, the decision on who may call it, and an operation that calls it
/// without changing anything that matters. A field missing here fails the test.
fn decisions() -> Vec<(&'static str, Access, String)> {
    use Access::*;
    use Caller::*;
    vec![
        ("Query.me", AtLeast(Viewer), "{ me { id } }".into()),
        ("Query.users", AtLeast(Admin), "{ users(first: 1) { totalCount } }".into()),
        ("Query.user", AtLeast(Admin), format!("{{ user(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Query.auditLog", AtLeast(Admin), "{ auditLog(first: 1) { totalCount } }".into()),
        ("Query.nodes", AtLeast(Viewer), "{ nodes(first: 1) { totalCount } }".into()),
        ("Query.node", AtLeastOrAgent(Viewer), format!("{{ node(hostname: \"{MATRIX_NODE}\") {{ id }} }}")),
        ("Query.enrollmentKeys", AtLeast(Admin), "{ enrollmentKeys(first: 1) { totalCount } }".into()),
        ("Query.metrics", AtLeast(Viewer), "{ metrics(names: [\"system.load1\"], range: H1) { step } }".into()),
        ("Query.metricCatalog", AtLeastOrAgent(Viewer), "{ metricCatalog { name } }".into()),
        ("Query.ips", AtLeast(Viewer), "{ ips(first: 1) { totalCount } }".into()),
        ("Query.mailFlow", AtLeast(Viewer), "{ mailFlow(range: H1) { step } }".into()),
        ("Query.mailEvents", AtLeast(Viewer), "{ mailEvents(first: 1) { totalCount } }".into()),
        ("Query.overview", AtLeast(Viewer), "{ overview { health } }".into()),
        ("Query.ip", AtLeast(Viewer), "{ ip(address: \"192.0.2.1\") { id } }".into()),
        ("Query.blacklistedIps", AtLeast(Viewer), "{ blacklistedIps(first: 1) { totalCount } }".into()),
        ("Query.ipCheckJob", AtLeast(Viewer), format!("{{ ipCheckJob(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Mutation.addIps", AtLeast(Admin), "mutation { addIps(input: { addresses: [\"not an ip\"] }) { id } }".into()),
        ("Mutation.removeIp", AtLeast(Admin), "mutation { removeIp(address: \"192.0.2.1\") { id } }".into()),
        ("Mutation.assignIp", AtLeast(Admin), "mutation { assignIp(address: \"192.0.2.1\") { id } }".into()),
        ("Mutation.updateIp", AtLeast(Operator), "mutation { updateIp(address: \"192.0.2.1\", input: {}) { id } }".into()),
        ("Mutation.setIpStatus", AtLeast(Operator), "mutation { setIpStatus(address: \"192.0.2.1\", status: PAUSED) { id } }".into()),
        ("Mutation.bulkIpAction", AtLeast(Operator), "mutation { bulkIpAction(input: { addresses: [\"192.0.2.1\"], action: PAUSE, dryRun: true }) { changed } }".into()),
        ("Mutation.checkIpBlacklists", AtLeast(Operator), "mutation { checkIpBlacklists(addresses: [\"not an ip\"]) { id } }".into()),
        ("Mutation.ingestMetrics", Access::Agent, "mutation { ingestMetrics(batch: { batchId: \"\", samples: [] }) { accepted } }".into()),
        ("Mutation.ingestMailEvents", Access::Agent, "mutation { ingestMailEvents(batch: { batchId: \"\", events: [] }) { accepted } }".into()),
        ("Mutation.login", Public, "mutation { login(username: \"\", password: \"x\") { accessToken } }".into()),
        ("Mutation.refreshToken", Public, "mutation { refreshToken(refreshToken: \"unknown\") { accessToken } }".into()),
        ("Mutation.logout", Public, "mutation { logout(refreshToken: \"unknown\") }".into()),
        ("Mutation.changePassword", AtLeast(Viewer), "mutation { changePassword(currentPassword: \"wrong password\", newPassword: \"x\") }".into()),
        ("Mutation.createUser", AtLeast(Admin), "mutation { createUser(input: { username: \"\", password: \"x\", role: VIEWER }) { id } }".into()),
        ("Mutation.updateUser", AtLeast(Admin), format!("mutation {{ updateUser(id: \"{ZERO_ID}\", input: {{}}) {{ id }} }}")),
        ("Mutation.resetUserPassword", AtLeast(Admin), format!("mutation {{ resetUserPassword(id: \"{ZERO_ID}\", password: \"x\") {{ id }} }}")),
        ("Mutation.registerNode", Enrollment, "mutation { registerNode(input: { hostname: \"not valid\", roles: [MTA] }) { apiKey } }".into()),
        ("Mutation.agentHeartbeat", Access::Agent, "mutation { agentHeartbeat { id } }".into()),
        ("Mutation.updateNode", AtLeast(Operator), format!("mutation {{ updateNode(id: \"{ZERO_ID}\", input: {{}}) {{ id }} }}")),
        ("Mutation.setNodeMaintenance", AtLeast(Operator), format!("mutation {{ setNodeMaintenance(id: \"{ZERO_ID}\", enabled: true) {{ id }} }}")),
        ("Mutation.decommissionNode", AtLeast(Admin), format!("mutation {{ decommissionNode(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Mutation.rotateNodeKey", AtLeast(Admin), format!("mutation {{ rotateNodeKey(nodeId: \"{ZERO_ID}\") {{ apiKey }} }}")),
        ("Mutation.revokeNodeKey", AtLeast(Admin), format!("mutation {{ revokeNodeKey(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Mutation.createEnrollmentKey", AtLeast(Admin), "mutation { createEnrollmentKey(input: { name: \"\" }) { key } }".into()),
        ("Query.alertRules", AtLeast(Viewer), "{ alertRules { id } }".into()),
        ("Query.alertRule", AtLeast(Viewer), format!("{{ alertRule(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Query.alerts", AtLeast(Viewer), "{ alerts(first: 1) { totalCount } }".into()),
        ("Query.alert", AtLeast(Viewer), format!("{{ alert(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Query.alertSilences", AtLeast(Viewer), "{ alertSilences(active: true) { id } }".into()),
        ("Mutation.createAlertRule", AtLeast(Operator), "mutation { createAlertRule(input: { name: \"\", condition: NODE_DOWN }) { id } }".into()),
        ("Mutation.updateAlertRule", AtLeast(Operator), format!("mutation {{ updateAlertRule(id: \"{ZERO_ID}\", input: {{}}) {{ id }} }}")),
        ("Mutation.deleteAlertRule", AtLeast(Operator), format!("mutation {{ deleteAlertRule(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Mutation.acknowledgeAlert", AtLeast(Operator), format!("mutation {{ acknowledgeAlert(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Mutation.silenceAlerts", AtLeast(Operator), "mutation { silenceAlerts(matcher: {}, until: \"2020-01-01T00:00:00Z\", reason: \"x\") { covered } }".into()),
        ("Mutation.expireSilence", AtLeast(Operator), format!("mutation {{ expireSilence(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Subscription.metricsUpdated", AtLeast(Viewer), "subscription { metricsUpdated { batchId } }".into()),
        ("Subscription.nodeStatusChanged", AtLeast(Viewer), "subscription { nodeStatusChanged { nodeId } }".into()),
        ("Subscription.ipReputationChanged", AtLeast(Viewer), "subscription { ipReputationChanged { address } }".into()),
        ("Subscription.alertEvents", AtLeast(Viewer), "subscription { alertEvents { alertId } }".into()),
        ("Subscription.mailFlow", AtLeast(Viewer), "subscription { mailFlow { counts { queued } } }".into()),
        ("Subscription.agentConfigChanged", Access::Agent, "subscription { agentConfigChanged { version } }".into()),
        ("Query.agentConfig", Access::Agent, "{ agentConfig { version } }".into()),
        ("Subscription.auditEvents", AtLeast(Admin), "subscription { auditEvents { sequence } }".into()),
        ("Query.jobs", AtLeast(Admin), "{ jobs { recurring { name } } }".into()),
        ("Mutation.retryIpCheckJob", AtLeast(Admin), format!("mutation {{ retryIpCheckJob(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Mutation.cancelIpCheckJob", AtLeast(Admin), format!("mutation {{ cancelIpCheckJob(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Mutation.createReenrollmentKey", AtLeast(Admin), format!("mutation {{ createReenrollmentKey(nodeId: \"{ZERO_ID}\") {{ key }} }}")),
        ("Mutation.revokeEnrollmentKey", AtLeast(Admin), format!("mutation {{ revokeEnrollmentKey(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Query.contactPoints", AtLeast(Viewer), "{ contactPoints { id } }".into()),
        ("Query.contactPoint", AtLeast(Viewer), format!("{{ contactPoint(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Query.notificationPolicy", AtLeast(Viewer), "{ notificationPolicy { groupBy } }".into()),
        ("Query.notifications", AtLeast(Viewer), "{ notifications(first: 1) { totalCount } }".into()),
        ("Query.notification", AtLeast(Viewer), format!("{{ notification(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Mutation.createContactPoint", AtLeast(Operator), "mutation { createContactPoint(input: { name: \"\", kind: WEBHOOK }) { id } }".into()),
        ("Mutation.updateContactPoint", AtLeast(Operator), format!("mutation {{ updateContactPoint(id: \"{ZERO_ID}\", input: {{}}) {{ id }} }}")),
        ("Mutation.deleteContactPoint", AtLeast(Operator), format!("mutation {{ deleteContactPoint(id: \"{ZERO_ID}\") {{ id }} }}")),
        ("Mutation.testContactPoint", AtLeast(Operator), format!("mutation {{ testContactPoint(id: \"{ZERO_ID}\") {{ outcome }} }}")),
        ("Mutation.setNotificationPolicy", AtLeast(Operator), "mutation { setNotificationPolicy(input: { groupWaitSeconds: -1 }) { groupBy } }".into()),
    ]
}

fn admits(access: Access, caller: Caller) -> bool {
    let is_user = matches!(caller, Caller::Viewer | Caller::Operator | Caller::Admin);
    match access {
        Access::Public => true,
        Access::AtLeast(role) => is_user && caller >= role,
        Access::AtLeastOrAgent(role) => caller == Caller::Agent || (is_user && caller >= role),
        Access::Agent => caller == Caller::Agent,
        Access::Enrollment => caller == Caller::EnrollmentKey,
    }
}

async fn root_fields(app: &TestApp) -> BTreeSet<String> {
    let body = app
        .gql(
            None,
            "{ __schema {
            queryType { fields { name } }
            mutationType { fields { name } }
            subscriptionType { fields { name } } } }",
            json!({}),
        )
        .await;
    let mut fields = BTreeSet::new();
    for (root, key) in [
        ("Query", "queryType"),
        ("Mutation", "mutationType"),
        ("Subscription", "subscriptionType"),
    ] {
        for field in body["data"]["__schema"][key]["fields"]
            .as_array()
            .into_iter()
            .flatten()
        {
            fields.insert(format!("{root}.{}", field["name"].as_str().unwrap()));
        }
    }
    fields
}

/// The refusal a guard gave, if any: resolvers' own errors (bad input, not found) do
/// not count.
fn refused_by_guard(body: &Value) -> Option<&'static str> {
    let code = error_code(body);
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    match code.as_str() {
        "FORBIDDEN" => Some("FORBIDDEN"),
        "UNAUTHENTICATED"
            if message.starts_with("sign in first") || message.starts_with("send ") =>
        {
            Some("UNAUTHENTICATED")
        }
        _ => None,
    }
}

/// Starts a subscription on a WebSocket; a refusal comes back as `{ "errors": … }`, a
/// subscription that started as `{}`.
async fn over_websocket(app: &TestApp, authorization: Option<String>, operation: &str) -> Value {
    let mut client = testkit::ws::WsClient::ready(app.addr, authorization).await;
    client.subscribe("m", operation, json!({})).await;
    // The server answers an operation's refusal before the ping that followed it.
    let answer = client.next_message().await;
    match answer["type"].as_str() {
        Some("error") => json!({ "errors": answer["payload"] }),
        // A subscription that starts with the current state answers before the ping.
        Some("pong") | Some("next") => json!({}),
        _ => panic!("unexpected answer to {operation}: {answer}"),
    }
}

on_both_backends! {
    async fn every_root_field_admits_exactly_the_callers_decided_for_it(backend) {
        let app = TestApp::spawn(backend).await;
        let decided: BTreeSet<String> = decisions().iter().map(|(f, ..)| f.to_string()).collect();
        assert_eq!(root_fields(&app).await, decided, "a root field has no access decision here");

        let (_, viewer) = app.user_with_role("matrix-viewer", "VIEWER").await;
        let (_, operator) = app.user_with_role("matrix-operator", "OPERATOR").await;
        let admin = app.admin_token().await;
        let enrollment = app.enrollment_key(None).await;
        let (_, node_key) = app.register_node(&enrollment, MATRIX_NODE, &[]).await;
        let callers = [
            (Caller::Anonymous, None),
            (Caller::Viewer, Some(format!("Bearer {viewer}"))),
            (Caller::Operator, Some(format!("Bearer {operator}"))),
            (Caller::Admin, Some(format!("Bearer {admin}"))),
            (Caller::Agent, Some(format!("ApiKey {node_key}"))),
            (Caller::EnrollmentKey, Some(format!("ApiKey {enrollment}"))),
        ];
        for (field, access, operation) in decisions() {
            for (caller, authorization) in &callers {
                let body = if field.starts_with("Subscription.") {
                    over_websocket(&app, authorization.clone(), &operation).await
                } else {
                    app.gql_as(authorization.clone(), &operation, json!({})).await
                };
                let expected = if admits(access, *caller) {
                    None
                } else if *caller == Caller::Anonymous {
                    Some("UNAUTHENTICATED")
                } else {
                    Some("FORBIDDEN")
                };
                assert_eq!(refused_by_guard(&body), expected, "{field} as {caller:?}: {body}");
            }
        }
    }
}
