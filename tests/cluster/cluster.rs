//! Three `anquan serve` nodes on one fresh PostgreSQL database, as a city runs them.
//!
//! Under a load of more than 10,000 mutations spread over the three, the projection leader is
//! killed with SIGKILL (no drain, no lease released) in the middle of its batches; another node
//! must lead within 10 s and resume from the committed checkpoints. Afterwards every node
//! answers every enterprise the same, the read models equal a fresh single-node rebuild of the
//! same log, no checkpoint ever moved backwards, the counting read model (`log_tally`) equals
//! the log's length (no event applied twice or skipped), and `/metrics` shows one leader in
//! total. A second test subscribes on a follower and hears of a change written through another
//! node, rebuilds rule set v2 beside the live one while two nodes serve queries,
//! promotes it, and checks that every node switches, and that a node that cannot load v2 goes
//! not ready and decides no command.
//!
//! Needs PostgreSQL (`ANQUAN_TEST_POSTGRES_URL`); skips with a reason without it, and fails
//! when `.ci/run` requires it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::support::{
    Backend, TestApp, admin_sql, backends, credit_code, data, next_of, rules_root, spawn_app_with_env,
    spawn_beside_with_env, subscribe,
};

/// Mutations sent in all (each registers an enterprise).
const MUTATIONS: usize = 10_200;
/// The leader is killed once this many have succeeded.
const KILL_AFTER: usize = 4_000;
/// Clients sending at once.
const CLIENTS: usize = 24;
const REGISTER: &str = "mutation($input: RegisterEnterpriseInput!, $commandId: ID) {
  registerEnterprise(input: $input, commandId: $commandId) { enterprise { id } } }";
const PAGE: &str = "query($after: String) { enterprises(first: 100, after: $after) {
  nodes { id name town compliance { implemented notImplemented summary } }
  pageInfo { hasNextPage endCursor } } }";
/// No rate limits: the test's clients all come from one address.
const NODE_ARGS: [&str; 4] = [
    "--mutations-per-minute-per-token",
    "0",
    "--mutations-per-minute-per-address",
    "0",
];
/// The event store's own tables; every other table is a read model (or the leases).
/// The event store's own tables (its migrations), which no projection writes.
const STORE_TABLES: [&str; 5] = [
    "event_log",
    "event_log_head",
    "event_commands",
    "store_schema_version",
    "personal_data_keys",
];

/// The two tests run one at a time: seven nodes at once would need more connections than a
/// default PostgreSQL allows beside the other tests.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Connections per pool of each node: three nodes under load stay far within the server's
/// max_connections beside the other tests.
const POOL: [(&str, &str); 1] = [("ANQUAN_DATABASE_POOL_SIZE", "6")];

fn postgres() -> bool {
    if backends().contains(&Backend::Postgres) {
        true
    } else {
        eprintln!("skipping the multi-node tests: ANQUAN_TEST_POSTGRES_URL is not set");
        false
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn readyz(client: &reqwest::Client, base: &str) -> Option<Value> {
    let response = client.get(format!("{base}/readyz")).send().await.ok()?;
    response.json().await.ok()
}

/// The node (by index) that leads, asking each node's `/readyz`.
async fn leaders(client: &reqwest::Client, bases: &[String]) -> Vec<usize> {
    let mut leading = Vec::new();
    for (index, base) in bases.iter().enumerate() {
        if let Some(ready) = readyz(client, base).await
            && !ready["leading"].is_null()
        {
            leading.push(index);
        }
    }
    leading
}

/// Sends one registration until it succeeds, moving to the next live node after a failure
/// (the same command id, so a retry of a write that landed returns its first outcome).
async fn register_one(client: &reqwest::Client, alive: &RwLock<Vec<String>>, token: &str, serial: usize) {
    let town = ["许村", "长安", "斜桥"][serial % 3];
    let input = json!({
        "name": format!("海宁集群企业{serial}"), "creditCode": credit_code(serial), "town": town,
        "industry": "家纺", "profile": { "staffCount": 20, "annualRevenue10kYuan": 300, "flags": [] }
    });
    let command_id = uuid::Uuid::new_v4().to_string();
    let body = json!({ "query": REGISTER, "variables": { "input": input, "commandId": command_id } });
    let mut last = String::new();
    for attempt in 0..200 {
        let base = {
            let alive = alive.read().await;
            alive[(serial + attempt) % alive.len()].clone()
        };
        let sent = client
            .post(format!("{base}/graphql"))
            .bearer_auth(token)
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match sent {
            Ok(response) => match response.json::<Value>().await {
                Ok(reply) if reply["errors"].is_null() => return,
                Ok(reply) => last = reply.to_string(),
                Err(error) => last = error.to_string(),
            },
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("registration {serial} kept failing: {last}");
}

/// Every enterprise as one node lists it, page by page.
async fn every_enterprise(app: &TestApp, token: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = Value::Null;
    loop {
        let response = app.graphql(Some(token), PAGE, json!({ "after": after })).await;
        let page = &data(&response)["enterprises"];
        all.extend(page["nodes"].as_array().unwrap().iter().cloned());
        if page["pageInfo"]["hasNextPage"] != true {
            return all;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

/// A digest of every read-model table (the rows in a stable order), by table.
async fn read_model_digests(client: &tokio_postgres::Client) -> BTreeMap<String, String> {
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_type = 'BASE TABLE' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let mut digests = BTreeMap::new();
    for row in tables {
        let table: String = row.get(0);
        if STORE_TABLES.contains(&table.as_str())
            || table.starts_with("projection_")
            // A rule set's views and their builds, which `projections rebuild` also makes.
            || table.starts_with("rule_set_")
            // The metrics watcher's persisted figures (issue 19): computed from the read models
            // at instants of the service clock, not folded from the log; a rebuild clears them.
            || table.starts_with("metrics_")
        {
            continue;
        }
        let digest: String = client
            .query_one(
                &format!("SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {table} t"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        digests.insert(table, digest);
    }
    digests
}

/// Runs `anquan projections …` against a database and a rules root.
async fn projections(url: &str, root: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(crate::support::binary())
        .arg("projections")
        .args(args)
        .args(["--database", url, "--rules-root", root])
        .output()
        .await
        .unwrap()
}

/// Sums a gauge over the text of several `/metrics` scrapes.
fn gauge_sum(scrapes: &[String], name: &str) -> f64 {
    scrapes
        .iter()
        .flat_map(|scrape| scrape.lines())
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_fail_over_under_load_and_agree_with_a_fresh_rebuild() {
    if !postgres() {
        return;
    }
    let args = |node: &'static str| {
        let mut args = NODE_ARGS.to_vec();
        args.extend(["--node-id", node]);
        args
    };
    let _cluster = ONE_CLUSTER_AT_A_TIME.lock().await;
    let first = spawn_app_with_env(Backend::Postgres, &args("node-a"), &POOL).await;
    let url = first.database_url().unwrap();
    let mut nodes = vec![first];
    for node in ["node-b", "node-c"] {
        let beside = spawn_beside_with_env(&nodes[0], &args(node), &POOL).await;
        nodes.push(beside);
    }
    let bases: Vec<String> = nodes.iter().map(|node| node.base_url.clone()).collect();
    let client = reqwest::Client::new();
    let token = nodes[0].token(&["--role", "city_admin"]);

    // One leader before any load.
    let started = Instant::now();
    let leader = loop {
        let leading = leaders(&client, &bases).await;
        assert!(leading.len() <= 1, "two nodes lead at once: {leading:?}");
        if let [leader] = leading[..] {
            break leader;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no node leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Watch the shared checkpoints for a move backwards, the whole time.
    let watching = Arc::new(AtomicBool::new(true));
    let backwards = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (watching, backwards, url) = (watching.clone(), backwards.clone(), url.clone());
        tokio::spawn(async move {
            let store = connect(&url).await;
            let mut highest: BTreeMap<String, i64> = BTreeMap::new();
            while watching.load(Ordering::Relaxed) {
                if let Ok(rows) = store
                    .query("SELECT projection, commit FROM projection_checkpoints", &[])
                    .await
                {
                    for row in rows {
                        let (name, commit): (String, i64) = (row.get(0), row.get(1));
                        let seen = highest.entry(name).or_insert(commit);
                        if commit < *seen {
                            backwards.fetch_add(1, Ordering::Relaxed);
                        }
                        *seen = (*seen).max(commit);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // The load: every client takes the next registration and sends it to a live node.
    let alive = Arc::new(RwLock::new(bases.clone()));
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let load_started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, alive, next, done, token) =
                (client.clone(), alive.clone(), next.clone(), done.clone(), token.clone());
            tokio::spawn(async move {
                loop {
                    let serial = next.fetch_add(1, Ordering::Relaxed);
                    if serial >= MUTATIONS {
                        return;
                    }
                    register_one(&client, &alive, &token, serial).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // The lag every node reports while the load runs.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (client, bases, sampling) = (client.clone(), bases.clone(), sampling.clone());
        tokio::spawn(async move {
            let (mut events, mut seconds) = (0u64, 0f64);
            while sampling.load(Ordering::Relaxed) {
                for base in &bases {
                    if let Some(ready) = readyz(&client, base).await {
                        for projection in ready["projections"].as_array().into_iter().flatten() {
                            events = events.max(projection["lagEvents"].as_u64().unwrap_or(0));
                            seconds = seconds.max(projection["lagSeconds"].as_f64().unwrap_or(0.0));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (events, seconds)
        })
    };

    while done.load(Ordering::Relaxed) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The leader dies in the middle of its batches: SIGKILL, no lease released.
    let leader_now = leaders(&client, &bases).await;
    assert_eq!(leader_now, vec![leader], "the leader changed before it was killed");
    nodes[leader].kill().await;
    let killed = Instant::now();
    alive.write().await.retain(|base| *base != bases[leader]);
    let survivors: Vec<String> = alive.read().await.clone();
    let failover = loop {
        let leading = leaders(&client, &survivors).await;
        assert!(leading.len() <= 1, "two survivors lead at once");
        if leading.len() == 1 {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no node took over within 10 s of the leader's death"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for client in clients {
        client.await.unwrap();
    }
    let load_time = load_started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let (lag_events, lag_seconds) = sampler.await.unwrap();

    // Every survivor catches up with the whole log.
    let store = connect(&url).await;
    let log_length: i64 = store
        .query_one("SELECT count(*) FROM event_log", &[])
        .await
        .unwrap()
        .get(0);
    let caught_up = Instant::now();
    loop {
        let mut all = true;
        for base in &survivors {
            let ready = readyz(&client, base).await.unwrap();
            all &= ready["projections"]
                .as_array()
                .unwrap()
                .iter()
                .all(|projection| projection["position"].as_i64() == Some(log_length));
        }
        if all {
            break;
        }
        assert!(
            caught_up.elapsed() < Duration::from_secs(60),
            "the survivors did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{MUTATIONS} mutations over 3 nodes in {:.1} s ({:.0}/s); failover after SIGKILL of the leader: {:.2} s; \
         largest lag any node reported under load: {lag_events} events, {lag_seconds:.2} s",
        load_time.as_secs_f64(),
        MUTATIONS as f64 / load_time.as_secs_f64(),
        failover.as_secs_f64()
    );

    // Every node answers every enterprise the same.
    let survivor_apps: Vec<&TestApp> = nodes
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != leader)
        .map(|(_, node)| node)
        .collect();
    let one = every_enterprise(survivor_apps[0], &token).await;
    let other = every_enterprise(survivor_apps[1], &token).await;
    assert_eq!(one.len(), MUTATIONS, "every registration is listed once");
    assert!(one == other, "two nodes list the enterprises differently");

    // No event applied twice or skipped: the counting read model equals the log.
    let tallied: i64 = store
        .query_one("SELECT coalesce(sum(events), 0)::bigint FROM log_tally", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tallied, log_length, "log_tally counts {tallied} events of {log_length}");
    watching.store(false, Ordering::Relaxed);
    watcher.await.unwrap();
    assert_eq!(backwards.load(Ordering::Relaxed), 0, "a checkpoint moved backwards");

    // One leader in total, as the survivors' metrics say.
    let mut scrapes = Vec::new();
    for base in &survivors {
        scrapes.push(
            client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        gauge_sum(&scrapes, "anquan_projection_leader{group=\"read_models\"}"),
        1.0,
        "{scrapes:?}"
    );

    // The read models equal a fresh single-node rebuild of the same log.
    let live = read_model_digests(&store).await;
    drop(store);
    for node in &mut nodes {
        node.kill().await;
    }
    let database = url.rsplit_once('/').unwrap().1.to_owned();
    let fresh = format!("{database}_fresh");
    admin_sql(&format!("CREATE DATABASE {fresh} TEMPLATE {database}")).await;
    let fresh_url = format!("{}/{fresh}", url.rsplit_once('/').unwrap().0);
    {
        let fresh_store = connect(&fresh_url).await;
        for table in live.keys().cloned().chain(
            ["projection_checkpoints", "projection_leases"]
                .into_iter()
                .map(str::to_owned),
        ) {
            fresh_store
                .batch_execute(&format!("DROP TABLE {table} CASCADE"))
                .await
                .unwrap();
        }
    }
    let output = std::process::Command::new(crate::support::binary())
        .args(["projections", "rebuild", "--read-models", "--database", &fresh_url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rebuilt = read_model_digests(&connect(&fresh_url).await).await;
    admin_sql(&format!("DROP DATABASE IF EXISTS {fresh} WITH (FORCE)")).await;
    assert_eq!(live, rebuilt, "the cluster's read models differ from a fresh rebuild");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_set_rebuilt_beside_two_serving_nodes_is_promoted_on_every_node() {
    if !postgres() {
        return;
    }
    let rules = rules_root();
    let root = rules.path().to_str().unwrap().to_owned();
    let _cluster = ONE_CLUSTER_AT_A_TIME.lock().await;
    let envs = [("ANQUAN_RULES_ROOT", root.as_str()), POOL[0]];
    let first = spawn_app_with_env(Backend::Postgres, &NODE_ARGS, &envs).await;
    let second = spawn_beside_with_env(&first, &NODE_ARGS, &envs).await;
    let third = spawn_beside_with_env(&first, &NODE_ARGS, &envs).await;
    // A node started without v2's folder: the publication carries v2's files (issue #22), so it
    // loads v2 from the log and honours the promotion like the others.
    let lacking = spawn_beside_with_env(&first, &NODE_ARGS, &POOL).await;
    let url = first.database_url().unwrap();
    let token = first.token(&["--role", "city_admin"]);
    let client = reqwest::Client::new();
    // A dashboard subscribed on a node that does not lead hears of changes written through
    // another node: its watcher reads the shared read models.
    let three = [&first, &second, &third];
    let started = Instant::now();
    let leader = loop {
        let bases: Vec<String> = three.iter().map(|node| node.base_url.clone()).collect();
        if let [leader] = leaders(&client, &bases).await[..] {
            break leader;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no node leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let follower = three[(leader + 1) % 3];
    let writer = three[(leader + 2) % 3];
    let mut socket = subscribe(
        follower,
        &token,
        &[("colour", "subscription { colourChanged { enterpriseId colour } }")],
    )
    .await;
    let alive = RwLock::new(vec![writer.base_url.clone()]);
    register_one(&client, &alive, &token, 20_000).await;
    let heard = next_of(&mut socket, "colour", Duration::from_secs(10)).await;
    assert!(heard["colourChanged"]["colour"].is_string(), "{heard}");
    drop(socket);

    let alive = RwLock::new(vec![first.base_url.clone(), second.base_url.clone()]);
    for serial in 1..30 {
        register_one(&client, &alive, &token, 20_000 + serial).await;
    }

    // Two nodes keep answering while the third's operator rebuilds v2 beside v1.
    let serving = Arc::new(AtomicBool::new(true));
    let queries = {
        let (serving, token) = (serving.clone(), token.clone());
        let bases = [first.base_url.clone(), second.base_url.clone()];
        let client = client.clone();
        tokio::spawn(async move {
            let mut answered = 0usize;
            while serving.load(Ordering::Relaxed) {
                for base in &bases {
                    let reply: Value = client
                        .post(format!("{base}/graphql"))
                        .bearer_auth(&token)
                        .json(&json!({ "query": "{ enterprises(first: 50) { nodes { id compliance { summary } } } }" }))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    assert!(reply["errors"].is_null(), "a query failed during the rebuild: {reply}");
                    answered += 1;
                }
            }
            answered
        })
    };
    let rebuild = projections(&url, &root, &["rebuild", "--rules", "v2"]).await;
    assert!(rebuild.status.success(), "{}", String::from_utf8_lossy(&rebuild.stderr));
    serving.store(false, Ordering::Relaxed);
    let answered = queries.await.unwrap();
    assert!(answered > 0);

    // A rebuild of the live read models while a node leads is refused, with the reason.
    let refused = projections(&url, &root, &["rebuild", "--read-models"]).await;
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("--take-over"), "{message}");

    let promote = projections(&url, &root, &["promote", "v2"]).await;
    assert!(promote.status.success(), "{}", String::from_utf8_lossy(&promote.stderr));
    let promoted = Instant::now();
    for node in [&first, &second, &third] {
        loop {
            let response = node
                .graphql(Some(&token), "{ ruleSets { version live } }", json!({}))
                .await;
            let versions = data(&response)["ruleSets"].as_array().unwrap().clone();
            if versions.iter().any(|v| v["version"] == "v2" && v["live"] == true) {
                break;
            }
            assert!(
                promoted.elapsed() < Duration::from_secs(10),
                "{} did not switch to v2",
                node.base_url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "every node runs v2 {:.2} s after the promotion",
        promoted.elapsed().as_secs_f64()
    );

    // The node without v2's folder loads v2 from the log: it agrees, is ready, and decides
    // commands under v2.
    loop {
        let ready = readyz(&client, &lacking.base_url).await.unwrap();
        if ready["ruleSet"]["live"] == "v2" && ready["ruleSet"]["agrees"] == true {
            assert_eq!(ready["ready"], true, "{ready}");
            break;
        }
        assert!(promoted.elapsed() < Duration::from_secs(10), "{ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let input = json!({
        "name": "海宁规则企业", "creditCode": credit_code(29_999), "town": "许村", "industry": "家纺",
        "profile": { "staffCount": 20, "annualRevenue10kYuan": 300, "flags": [] }
    });
    let registered = lacking
        .graphql(Some(&token), REGISTER, json!({ "input": input, "commandId": null }))
        .await;
    data(&registered);

    // SIGTERM drains, releases the lease and exits 0: another node leads at once, not after
    // the lease would have expired.
    let mut nodes = vec![first, second, third, lacking];
    let bases: Vec<String> = nodes.iter().map(|node| node.base_url.clone()).collect();
    let leader = leaders(&client, &bases).await;
    assert_eq!(leader.len(), 1, "{leader:?}");
    let status = nodes[leader[0]].terminate().await;
    assert!(status.success(), "SIGTERM ended the node with {status}");
    let stopped = Instant::now();
    let others: Vec<String> = bases
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != leader[0])
        .map(|(_, base)| base.clone())
        .collect();
    while leaders(&client, &others).await.len() != 1 {
        assert!(
            stopped.elapsed() < Duration::from_secs(3),
            "no node took the released lease at once"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "a node leads {:.2} s after the leader's SIGTERM",
        stopped.elapsed().as_secs_f64()
    );
    let first = nodes.remove(0);
    for node in nodes {
        node.stop().await;
    }
    first.stop().await;
}
