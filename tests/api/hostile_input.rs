//! Every argument of every query and mutation, found by introspection, driven with values
//! a careless or hostile caller sends: zero, −1, the 32- and 64-bit extremes, huge floats,
//! empty, very long, NUL-carrying and control-character strings, empty and long lists.
//! Each must be answered (never a dropped connection) with data or a client error, never
//! `INTERNAL` or `TIMEOUT`; refusals of audited mutations are in the audit log.

use std::collections::HashMap;

use serde_json::{Value, json};

use testkit::on_both_backends;
use testkit::{TestApp, error_code};

const SCHEMA: &str = r#"{ __schema {
  queryType { name } mutationType { name }
  types { kind name
    fields { name type { ...T } args { name defaultValue type { ...T } } }
    inputFields { name defaultValue type { ...T } }
    enumValues { name }
  } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }"#;

#[derive(Clone, Debug)]
struct TypeRef {
    kind: String,
    name: Option<String>,
    of: Option<Box<TypeRef>>,
}

impl TypeRef {
    fn of(value: &Value) -> TypeRef {
        TypeRef {
            kind: value["kind"].as_str().unwrap_or_default().to_string(),
            name: value["name"].as_str().map(str::to_string),
            of: value["ofType"]
                .is_object()
                .then(|| Box::new(TypeRef::of(&value["ofType"]))),
        }
    }

    /// As written in a variable definition: `[String!]!`.
    fn render(&self) -> String {
        match self.kind.as_str() {
            "NON_NULL" => format!("{}!", self.inner().render()),
            "LIST" => format!("[{}]", self.inner().render()),
            _ => self.name.clone().unwrap_or_default(),
        }
    }

    fn inner(&self) -> &TypeRef {
        self.of.as_deref().expect("wrapper type has an inner type")
    }

    fn required(&self) -> bool {
        self.kind == "NON_NULL"
    }

    /// The named type under the wrappers.
    fn named(&self) -> &TypeRef {
        match self.kind.as_str() {
            "NON_NULL" | "LIST" => self.inner().named(),
            _ => self,
        }
    }
}

struct Schema {
    types: HashMap<String, Value>,
    /// Makes every plain text unique, so that ids and names a call stores do not make the
    /// next call a duplicate refused before it reaches the code under test.
    serial: std::cell::Cell<u64>,
}

impl Schema {
    fn input_fields(&self, name: &str) -> Vec<(String, TypeRef, bool)> {
        self.types[name]["inputFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_string(),
                    TypeRef::of(&f["type"]),
                    !f["defaultValue"].is_null(),
                )
            })
            .collect()
    }

    /// A value of the type a well-behaved caller might send.
    fn plain(&self, ty: &TypeRef) -> Value {
        match ty.kind.as_str() {
            "NON_NULL" => self.plain(ty.inner()),
            "LIST" => json!([self.plain(ty.inner())]),
            "ENUM" => {
                let name = ty.name.as_deref().unwrap();
                json!(self.types[name]["enumValues"][0]["name"])
            }
            "INPUT_OBJECT" => {
                let mut object = serde_json::Map::new();
                for (field, field_ty, has_default) in self.input_fields(ty.name.as_deref().unwrap())
                {
                    if field_ty.required() && !has_default {
                        object.insert(field, self.plain(&field_ty));
                    }
                }
                Value::Object(object)
            }
            _ => match ty.name.as_deref().unwrap_or_default() {
                "Int" => json!(1),
                "Float" => json!(1.0),
                "Boolean" => json!(true),
                "ID" => json!("00000000-0000-7000-8000-000000000000"),
                "DateTime" => json!(chrono::Utc::now().to_rfc3339()),
                "JSON" => json!({}),
                _ => {
                    self.serial.set(self.serial.get() + 1);
                    json!(format!("x{}", self.serial.get()))
                }
            },
        }
    }
}

/// What a hostile caller puts where a value of scalar `name` goes.
fn hostile_scalars(name: &str) -> Vec<Value> {
    match name {
        "Int" => vec![
            json!(0),
            json!(-1),
            json!(i32::MAX),
            json!(i32::MIN),
            json!(i64::MAX),
            json!(i64::MIN),
        ],
        "Float" => vec![
            json!(0.0),
            json!(-1.0),
            json!(f64::MAX),
            json!(f64::MIN),
            json!(1e-308),
        ],
        "Boolean" => vec![json!(false)],
        "DateTime" => vec![
            json!("9999-12-31T23:59:59Z"),
            json!("0001-01-01T00:00:00Z"),
            json!("1970-01-01T00:00:00Z"),
            json!(""),
        ],
        _ => vec![
            json!(""),
            json!("\u{0}"),
            json!("name\u{0}with a NUL"),
            json!("bell\u{7} and\r\nnewline"),
            json!("x".repeat(100_000)),
            json!("::/0"),
            json!("0.0.0.0/0"),
            json!("\u{202e}right-to-left"),
        ],
    }
}

/// Every (path, hostile value) of an argument: scalars directly, inputs field by field
/// (one level down), lists empty, holding the hostile value, or 2,000 long.
fn cases(schema: &Schema, ty: &TypeRef, depth: usize) -> Vec<(Vec<String>, Value)> {
    let named = ty.named();
    let mut out = Vec::new();
    match named.kind.as_str() {
        "INPUT_OBJECT" if depth < 2 => {
            for (field, field_ty, _) in schema.input_fields(named.name.as_deref().unwrap()) {
                for (mut path, value) in cases(schema, &field_ty, depth + 1) {
                    path.insert(0, field.clone());
                    out.push((path, value));
                }
            }
        }
        "SCALAR" => {
            for value in hostile_scalars(named.name.as_deref().unwrap_or_default()) {
                out.push((Vec::new(), value));
            }
        }
        _ => {}
    }
    // A list where a single value is expected, or a single value where a list is.
    let unwrapped = if ty.required() { ty.inner() } else { ty };
    if unwrapped.kind == "LIST" {
        let item = schema.plain(unwrapped.inner());
        out.push((Vec::new(), json!([])));
        out.push((Vec::new(), Value::Array(vec![item; 2_000])));
        // Each hostile value of the list's item type, in a one-element list.
        let wrapped: Vec<_> = out
            .iter()
            .filter(|(path, v)| path.is_empty() && !v.is_array())
            .map(|(_, v)| (Vec::new(), json!([v])))
            .collect();
        out.retain(|(path, v)| !path.is_empty() || v.is_array());
        out.extend(wrapped);
    }
    out
}

fn set_path(target: &mut Value, path: &[String], value: Value) {
    match path.split_first() {
        None => *target = value,
        Some((first, rest)) => {
            if target.is_array() {
                // Descend into the list's first item.
                let item = &mut target[0];
                return set_path(item, path, value);
            }
            if !target.is_object() {
                *target = json!({});
            }
            let slot = target
                .as_object_mut()
                .unwrap()
                .entry(first.clone())
                .or_insert(Value::Null);
            if slot.is_null() && !rest.is_empty() {
                *slot = json!({});
            }
            set_path(slot, rest, value);
        }
    }
}

struct Field {
    root: &'static str,
    name: String,
    args: Vec<(String, TypeRef, bool)>,
    object_result: bool,
}

fn root_fields(schema: &Schema, root: &'static str, type_name: &str) -> Vec<Field> {
    schema.types[type_name]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Field {
            root,
            name: f["name"].as_str().unwrap().to_string(),
            args: f["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["name"].as_str().unwrap().to_string(),
                        TypeRef::of(&a["type"]),
                        !a["defaultValue"].is_null(),
                    )
                })
                .collect(),
            object_result: matches!(
                TypeRef::of(&f["type"]).named().kind.as_str(),
                "OBJECT" | "INTERFACE" | "UNION"
            ),
        })
        .collect()
}

fn operation(field: &Field) -> String {
    let definitions: Vec<String> = field
        .args
        .iter()
        .map(|(name, ty, _)| format!("${name}: {}", ty.render()))
        .collect();
    let arguments: Vec<String> = field
        .args
        .iter()
        .map(|(name, _, _)| format!("{name}: ${name}"))
        .collect();
    let selection = if field.object_result {
        " { __typename }"
    } else {
        ""
    };
    let (open, close) = if definitions.is_empty() {
        (String::new(), String::new())
    } else {
        (
            format!("({})", definitions.join(", ")),
            format!("({})", arguments.join(", ")),
        )
    };
    format!(
        "{}{open} {{ {}{close}{selection} }}",
        field.root, field.name
    )
}

on_both_backends! {
    async fn every_argument_survives_hostile_values(backend) {
        let app = TestApp::spawn(backend).await;
        let admin = format!("Bearer {}", app.admin_token().await);
        let enrollment = app.enrollment_key(None).await;
        let (_, node_key) = app.register_node(&enrollment, "fuzz.example.com", &["192.0.2.200"]).await;
        let callers = [admin.clone(), format!("ApiKey {node_key}"), format!("ApiKey {enrollment}")];

        let introspection = app.gql_as(Some(admin.clone()), SCHEMA, json!({})).await;
        let raw = &introspection["data"]["__schema"];
        let schema = Schema {
            types: raw["types"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
                .collect(),
            serial: Default::default(),
        };
        let mut fields = root_fields(&schema, "query", raw["queryType"]["name"].as_str().unwrap());
        fields.extend(root_fields(&schema, "mutation", raw["mutationType"]["name"].as_str().unwrap()));

        let mut calls = 0;
        let mut failures = Vec::new();
        for field in &fields {
            let query = operation(field);
            let plain: serde_json::Map<String, Value> = field
                .args
                .iter()
                .filter(|(_, ty, has_default)| ty.required() && !has_default)
                .map(|(name, ty, _)| (name.clone(), schema.plain(ty)))
                .collect();
            // The first caller the field lets in; a field that admits nobody here is
            // exercised as the admin.
            let mut caller = admin.clone();
            for candidate in &callers {
                let body = app.gql_as(Some(candidate.clone()), &query, Value::Object(plain.clone())).await;
                if !matches!(error_code(&body).as_str(), "FORBIDDEN" | "UNAUTHENTICATED") {
                    caller = candidate.clone();
                    break;
                }
            }
            for (arg, ty, _) in &field.args {
                for ((path, hostile), every_arg) in cases(&schema, ty, 0)
                    .into_iter()
                    .flat_map(|case| [(case.clone(), false), (case, true)])
                {
                    // Once with only the required arguments, once with every argument
                    // given a plain value, so checks behind optional ones are reached.
                    let mut variables = Value::Object(plain.clone());
                    if every_arg {
                        for (name, other, _) in &field.args {
                            variables[name] = schema.plain(other);
                        }
                    }
                    let mut full_path = vec![arg.clone()];
                    full_path.extend(path.iter().cloned());
                    if !path.is_empty() && variables.get(arg).is_none_or(Value::is_null) {
                        variables[arg] = schema.plain(ty);
                    }
                    set_path(&mut variables, &full_path, hostile.clone());
                    let response = app
                        .client
                        .post(app.url("/graphql"))
                        .header("authorization", &caller)
                        .json(&json!({ "query": query, "variables": variables }))
                        .send()
                        .await;
                    calls += 1;
                    let shown = hostile.to_string().chars().take(60).collect::<String>();
                    let what = format!("{}.{}({}) = {shown}", field.root, field.name, full_path.join("."));
                    let Ok(response) = response else {
                        failures.push(format!("{what}: connection dropped"));
                        continue;
                    };
                    let status = response.status();
                    let Ok(body) = response.json::<Value>().await else {
                        failures.push(format!("{what}: HTTP {status} without a JSON body"));
                        continue;
                    };
                    for error in body["errors"].as_array().into_iter().flatten() {
                        let code = error["extensions"]["code"].as_str().unwrap_or_default();
                        if matches!(code, "INTERNAL" | "TIMEOUT" | "") {
                            failures.push(format!("{what}: {code}: {}", error["message"]));
                        }
                    }
                }
            }
        }
        assert!(calls > 2_000, "only {calls} calls were made");
        assert!(failures.is_empty(), "{} of {calls} calls failed:\n{}", failures.len(), failures.join("\n"));

        // Refusals of audited mutations are recorded, NUL-carrying text included.
        for audited in ["enrollment_key.create", "alert_rule.create", "ip.add", "node.register"] {
            let log = app
                .gql_as(
                    Some(admin.clone()),
                    "query($a: String) { auditLog(filter: { action: $a, outcome: FAILURE }) { totalCount } }",
                    json!({ "a": audited }),
                )
                .await;
            let refusals = log["data"]["auditLog"]["totalCount"].as_u64().unwrap_or(0);
            assert!(refusals > 0, "no refusal of {audited} in the audit log: {log}");
        }
    }
}
