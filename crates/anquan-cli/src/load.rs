//! `anquan load`: a small open-loop HTTP load generator for loopback benchmarks. It sends
//! requests at a fixed rate (scheduled instants, so a slow server shows up as latency instead
//! of a lower rate: no coordinated omission) over a few keep-alive HTTP/1.1 connections, for a
//! bounded time, and prints p50/p99/max latency. Loopback only: it is not a tool for other
//! people's servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};

/// What to request.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Scenario {
    /// `enterprise(id)` with its 21 indicators (needs `--target <enterprise id>`).
    Enterprise,
    /// `townMetrics(town)` (needs `--target <town>`).
    TownMetrics,
    /// `reviewQueue(town, first: 20)` (needs `--target <town>`).
    ReviewQueue,
    /// The public QR page `GET /p/<token>` (needs `--target <token>`).
    PublicPage,
    /// An anonymous GraphQL query, `health` and the public agency directory (--target is not
    /// used): what anyone may send without a token.
    Anonymous,
}

/// Arguments of `anquan load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The service's address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub address: SocketAddr,
    /// Bearer token for GraphQL scenarios.
    #[arg(long, env = "ANQUAN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// The enterprise id, town or public token the scenario asks about.
    #[arg(long)]
    pub target: String,
    /// Requests per second.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
}

/// Runs `anquan load` and prints one result line.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    if !args.address.ip().is_loopback() {
        anyhow::bail!("anquan load only targets loopback addresses, not {}", args.address);
    }
    let request = Arc::new(request(&args));
    let total = u64::from(args.rate.max(1)) * args.seconds.max(1);
    let (sender, receiver) = mpsc::channel::<Instant>(usize::try_from(total).unwrap_or(usize::MAX).min(1 << 20));
    let receiver = Arc::new(Mutex::new(receiver));
    let mut workers = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (receiver, request, address) = (receiver.clone(), request.clone(), args.address);
        workers.push(tokio::spawn(async move { worker(address, &request, &receiver).await }));
    }
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    for n in 0..total {
        let scheduled = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        if sender.send(scheduled).await.is_err() {
            break;
        }
    }
    drop(sender);
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    for worker in workers {
        let (mut done, failed) = worker.await.context("a load worker panicked")?;
        latencies.append(&mut done);
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let line = format!(
        "{:?} target={} rate={}/s for {} s: {} ok, {} errors, achieved {:.1}/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        args.scenario,
        args.target,
        args.rate,
        args.seconds,
        latencies.len(),
        errors,
        latencies.len() as f64 / elapsed,
        pick(0.50),
        pick(0.99),
        pick(1.0),
    );
    std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes()).context("cannot write the result")?;
    Ok(())
}

fn request(args: &LoadArgs) -> Vec<u8> {
    let graphql = |query: String| {
        let body = serde_json::json!({ "query": query }).to_string();
        let auth = args
            .token
            .as_ref()
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default();
        format!(
            "POST /graphql HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            args.address,
            body.len()
        )
    };
    let target = args.target.replace(['"', '\\'], "");
    let text = match args.scenario {
        Scenario::Enterprise => graphql(format!(
            "{{ enterprise(id: \"{target}\") {{ name town compliance {{ summary responsibilityImplemented indicators {{ code state reasons }} }} }} }}"
        )),
        Scenario::TownMetrics => graphql(format!(
            "{{ townMetrics(town: \"{target}\") {{ town }} headlineRates(town: \"{target}\") {{ enterpriseResponsibilityRate principalAndSafetyOfficerTrainingRate emergencyDrillCompletionRate socialServiceCoverage serviceCoverageOver5mRevenue }} }}"
        )),
        Scenario::ReviewQueue => graphql(format!(
            "{{ reviewQueue(town: \"{target}\", first: 20) {{ nodes {{ id enterpriseName requirement title uploadedAt }} }} }}"
        )),
        Scenario::Anonymous => graphql("{ health { name state } agencyDirectory { id name blacklisted } }".to_owned()),
        Scenario::PublicPage => format!("GET /p/{target} HTTP/1.1\r\nHost: {}\r\n\r\n", args.address),
    };
    text.into_bytes()
}

async fn worker(
    address: SocketAddr,
    request: &[u8],
    receiver: &Mutex<mpsc::Receiver<Instant>>,
) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut connection: Option<TcpStream> = None;
    loop {
        let Some(scheduled) = receiver.lock().await.recv().await else {
            return (latencies, errors);
        };
        let stream = match connection.take() {
            Some(stream) => Ok(stream),
            None => TcpStream::connect(address).await,
        };
        let outcome = match stream {
            Ok(mut stream) => match exchange(&mut stream, request).await {
                Ok(status_ok) => {
                    connection = Some(stream);
                    status_ok
                }
                Err(_) => false,
            },
            Err(_) => false,
        };
        if outcome {
            latencies.push(scheduled.elapsed());
        } else {
            errors += 1;
        }
    }
}

/// Sends one request and reads one response; returns whether the status was 200.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<bool> {
    stream.write_all(request).await?;
    let mut buffer = Vec::with_capacity(16 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    let header_end = loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
    let ok = head.starts_with("http/1.1 200");
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok());
    match length {
        Some(length) => {
            while buffer.len() < header_end + length {
                let read = stream.read(&mut chunk).await?;
                if read == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
        }
        None => {
            // Chunked: read until the last chunk.
            while !buffer.ends_with(b"0\r\n\r\n") {
                let read = stream.read(&mut chunk).await?;
                if read == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
        }
    }
    Ok(ok)
}
