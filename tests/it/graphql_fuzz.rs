//! A bounded fuzz run over the whole schema, as a careless or hostile client: every query and
//! mutation the service introspects is called, as every role and without a token, with
//! arguments drawn from the extremes of their types (the ends of the calendar, 32-bit limits,
//! long and odd strings, ids that exist, do not exist or are malformed, nested inputs), a few
//! rounds each. Every answer must be a GraphQL answer below 500, every error must carry a code
//! and none may be `INTERNAL`; the service must log no panic and stay ready.
//!
//! Bounded by `ANQUAN_FUZZ_ROUNDS` (default 3) rounds per field and caller; the seed is fixed per
//! round, so a failure names the request that reproduces it.

use serde_json::{Map, Value, json};

use crate::agency_flow::register_agency;
use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, data, spawn_app};

const INTROSPECTION: &str = "query {
  __schema {
    queryType { name }
    mutationType { name }
    types {
      kind name
      fields { name args { name type { ...Ref } } type { ...Ref } }
      inputFields { name type { ...Ref } }
      enumValues { name }
    }
  }
}
fragment Ref on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

/// A small deterministic generator (xorshift64*), so a failing request can be replayed.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What the generator knows of the world: ids that exist.
struct Known {
    enterprise: String,
    agency: String,
}

struct Schema {
    types: Map<String, Value>,
}

impl Schema {
    fn of(introspection: &Value) -> Schema {
        let types = introspection["__schema"]["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ty| (ty["name"].as_str().unwrap().to_owned(), ty.clone()))
            .collect();
        Schema { types }
    }

    fn root_name(&self, introspection: &Value, root: &str) -> String {
        introspection["__schema"][root]["name"].as_str().unwrap().to_owned()
    }

    fn root_fields(&self, root: &str) -> Vec<Value> {
        self.types[root]["fields"].as_array().unwrap().clone()
    }

    /// The GraphQL spelling of a type reference (`[ID!]!`).
    fn spell(reference: &Value) -> String {
        match reference["kind"].as_str().unwrap() {
            "NON_NULL" => format!("{}!", Self::spell(&reference["ofType"])),
            "LIST" => format!("[{}]", Self::spell(&reference["ofType"])),
            _ => reference["name"].as_str().unwrap().to_owned(),
        }
    }

    /// A value for a type reference, drawn from its extremes.
    fn value(&self, reference: &Value, draw: &mut Draw, known: &Known, depth: usize) -> Value {
        match reference["kind"].as_str().unwrap() {
            "NON_NULL" => return self.value_of(&reference["ofType"], draw, known, depth),
            _ if draw.below(6) == 0 => return Value::Null,
            _ => {}
        }
        self.value_of(reference, draw, known, depth)
    }

    fn value_of(&self, reference: &Value, draw: &mut Draw, known: &Known, depth: usize) -> Value {
        match reference["kind"].as_str().unwrap() {
            "NON_NULL" => self.value_of(&reference["ofType"], draw, known, depth),
            "LIST" => {
                let items = if depth > 3 { 0 } else { draw.below(4) };
                Value::Array(
                    (0..items)
                        .map(|_| self.value(&reference["ofType"], draw, known, depth + 1))
                        .collect(),
                )
            }
            "ENUM" => {
                let values = self.types[reference["name"].as_str().unwrap()]["enumValues"]
                    .as_array()
                    .unwrap();
                values[draw.below(values.len())]["name"].clone()
            }
            "INPUT_OBJECT" => {
                let mut object = Map::new();
                if depth <= 4 {
                    let fields = self.types[reference["name"].as_str().unwrap()]["inputFields"]
                        .as_array()
                        .unwrap();
                    for field in fields {
                        let value = self.value(&field["type"], draw, known, depth + 1);
                        object.insert(field["name"].as_str().unwrap().to_owned(), value);
                    }
                }
                Value::Object(object)
            }
            _ => scalar(reference["name"].as_str().unwrap(), draw, known),
        }
    }

    /// The scalar and enum fields of an object type that need no argument, to select.
    fn selection(&self, reference: &Value) -> String {
        let mut reference = reference;
        while !reference["ofType"].is_null() {
            reference = &reference["ofType"];
        }
        let ty = &self.types[reference["name"].as_str().unwrap()];
        if !matches!(ty["kind"].as_str(), Some("OBJECT" | "INTERFACE")) {
            return String::new();
        }
        let mut fields = vec!["__typename".to_owned()];
        for field in ty["fields"].as_array().unwrap() {
            let mut inner = &field["type"];
            while !inner["ofType"].is_null() {
                inner = &inner["ofType"];
            }
            let leaf = matches!(inner["kind"].as_str(), Some("SCALAR" | "ENUM"));
            let required_args = field["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|arg| arg["type"]["kind"] == "NON_NULL");
            if leaf && !required_args {
                fields.push(field["name"].as_str().unwrap().to_owned());
            }
        }
        format!("{{ {} }}", fields.join(" "))
    }
}

fn scalar(name: &str, draw: &mut Draw, known: &Known) -> Value {
    match name {
        "Int" => json!(*draw.pick(&[0_i64, 1, -1, 20, 100, i64::from(i32::MAX), i64::from(i32::MIN), 5000])),
        "Int64" => draw
            .pick(&[
                json!("0"),
                json!("1"),
                json!("5000"),
                json!("9223372036854775807"),
                json!("18446744073709551615"),
                json!("-1"),
                json!("1e3"),
                json!(3),
            ])
            .clone(),
        "Float" => json!(*draw.pick(&[0.0_f64, -1.5, 1e308, -1e308, 3.5])),
        "Boolean" => json!(draw.below(2) == 0),
        "ID" => {
            let random = uuid::Uuid::new_v4().to_string();
            let choices = [
                known.enterprise.clone(),
                known.agency.clone(),
                random,
                "not-a-uuid".to_owned(),
                String::new(),
                "00000000-0000-0000-0000-000000000000".to_owned(),
            ];
            json!(draw.pick(&choices))
        }
        "DateTime" => json!(*draw.pick(&[
            "0001-01-01T00:00:00Z",
            "1949-09-30T15:59:59Z",
            "1949-10-01T00:00:00+08:00",
            "2026-06-30T16:00:00Z",
            "2199-12-31T15:59:59Z",
            "9999-12-31T23:59:59.999999Z",
            "+262143-12-31T23:59:59Z",
            "-262143-01-01T00:00:00Z",
            "yesterday",
        ])),
        "Upload" => Value::Null,
        _ => {
            let long = "长".repeat(5000);
            json!(*draw.pick(&[
                "",
                "许村",
                "长安",
                "R10.drill",
                "R04.leader_certificates",
                "2019-H1",
                "9999-12",
                "v1",
                "v999",
                "' OR 1=1 --",
                "\u{0000}",
                long.as_str(),
                "91330481MA28A0XX07",
            ]))
        }
    }
}

#[tokio::test]
async fn every_query_and_mutation_answers_with_codes_and_no_panic() {
    for backend in backends() {
        fuzz(backend).await;
    }
}

fn rounds() -> u64 {
    std::env::var("ANQUAN_FUZZ_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(3)
}

async fn fuzz(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let enterprise = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let agency = register_agency(&app, &admin).await;
    let known = Known {
        enterprise: enterprise.clone(),
        agency: agency.clone(),
    };
    let callers = [
        None,
        Some(admin.clone()),
        Some(app.token(&["--role", "enterprise", "--enterprise", &enterprise])),
        Some(app.token(&["--role", "town_officer", "--town", "许村"])),
        Some(app.token(&["--role", "city_inspector"])),
        Some(app.token(&["--role", "agency", "--agency", &agency])),
        Some(app.token(&["--role", "auditor", "--town", "许村"])),
        Some(app.token(&["--role", "analyst"])),
    ];
    let introspection = data(&app.graphql(Some(&admin), INTROSPECTION, json!({})).await).clone();
    let schema = Schema::of(&introspection);
    let mut requests = 0_usize;
    let roots = [
        ("query", schema.root_name(&introspection, "queryType")),
        ("mutation", schema.root_name(&introspection, "mutationType")),
    ];
    for (operation, root) in roots {
        for field in schema.root_fields(&root) {
            let name = field["name"].as_str().unwrap();
            for round in 0..rounds() {
                for (caller, token) in callers.iter().enumerate() {
                    let seed = (round + 1) * 1_000_003 + caller as u64 * 7919 + name.len() as u64;
                    let mut draw = Draw(seed);
                    let mut declarations = Vec::new();
                    let mut arguments = Vec::new();
                    let mut variables = Map::new();
                    for (index, arg) in field["args"].as_array().unwrap().iter().enumerate() {
                        let variable = format!("a{index}");
                        declarations.push(format!("${variable}: {}", Schema::spell(&arg["type"])));
                        arguments.push(format!("{}: ${variable}", arg["name"].as_str().unwrap()));
                        variables.insert(variable, schema.value(&arg["type"], &mut draw, &known, 0));
                    }
                    let declarations = if declarations.is_empty() {
                        String::new()
                    } else {
                        format!("({})", declarations.join(", "))
                    };
                    let arguments = if arguments.is_empty() {
                        String::new()
                    } else {
                        format!("({})", arguments.join(", "))
                    };
                    let query = format!(
                        "{operation}{declarations} {{ {name}{arguments} {} }}",
                        schema.selection(&field["type"])
                    );
                    let variables = Value::Object(variables);
                    check(&app, token.as_deref(), &query, &variables).await;
                    requests += 1;
                }
            }
        }
    }
    assert!(requests > 500, "only {requests} requests: is the schema introspected?");
    assert_eq!(app.panics(), 0, "the service logged a panic");
    let ready = reqwest::get(format!("{}/readyz", app.base_url)).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200, "{}", ready.text().await.unwrap());
    // The read side still follows the log.
    let late = register(&app, &admin, "91330100799655058B", "长安").await;
    let file = app
        .graphql(
            Some(&admin),
            "query($id: ID!) { enterprise(id: $id) { name } }",
            json!({ "id": late }),
        )
        .await;
    assert!(data(&file)["enterprise"]["name"].is_string(), "{file}");
    app.stop().await;
}

async fn check(app: &TestApp, token: Option<&str>, query: &str, variables: &Value) {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("no answer to {query} {variables}: {error}"));
    let status = response.status().as_u16();
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|error| panic!("not JSON ({status}) for {query} {variables}: {error}"));
    assert!(status < 500, "{status} for {query} {variables}: {body}");
    for error in body["errors"].as_array().into_iter().flatten() {
        let code = error["extensions"]["code"].as_str();
        assert!(
            code.is_some(),
            "an error without a code for {query} {variables}: {error}"
        );
        assert_ne!(code, Some("INTERNAL"), "INTERNAL for {query} {variables}: {error}");
    }
}
