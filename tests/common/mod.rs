//! Shared helpers of the integration tests: a real Kafka-protocol broker
//! (tansu) on a free loopback port, bellwether processes, topic readers,
//! a headless browser, a webhook endpoint.
#![allow(dead_code)]

pub mod browser;
pub mod webhook;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where tansu is, or None (the test is skipped unless the broker is required).
pub fn tansu() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin")));
    for dir in candidates {
        let path = dir.join("tansu");
        if path.is_file() {
            return Some(path);
        }
    }
    if std::env::var_os("BELLWETHER_REQUIRE_BROKER").is_some() {
        panic!("tansu is not installed; run ./scripts/test, which installs it");
    }
    eprintln!(
        "skipped: tansu (a Kafka-protocol broker) is not installed; ./scripts/test installs it"
    );
    None
}

/// A tansu broker with in-memory storage on a free port, killed on drop.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:port`.
    pub address: String,
}

impl Broker {
    /// Starts one, or None when tansu is not installed.
    pub fn start() -> Option<Broker> {
        let tansu = tansu()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        let address = format!("127.0.0.1:{port}");
        let started = Instant::now();
        while TcpStream::connect(&address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "tansu did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Broker { child, address })
    }
}

impl Broker {
    /// Freezes the broker (SIGSTOP): it holds its data but answers nothing,
    /// as a broker does that is cut off or stuck.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused broker go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bellwether process whose output goes to files in `dir`; killed on drop.
pub struct Bellwether {
    /// The process.
    pub child: Child,
    /// Its stderr (logs).
    pub log: PathBuf,
    /// Its stdout.
    pub out: PathBuf,
}

impl Bellwether {
    /// Starts `bellwether <args>`; `name` names its output files.
    pub fn spawn(dir: &Path, name: &str, args: &[&str]) -> Bellwether {
        Bellwether::spawn_env(dir, name, args, &[])
    }

    /// As [`Bellwether::spawn`], with more environment variables.
    pub fn spawn_env(dir: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Bellwether {
        let log = dir.join(format!("{name}.log"));
        let out = dir.join(format!("{name}.out"));
        let child = Command::new(env!("CARGO_BIN_EXE_bellwether"))
            .args(args)
            .envs(env.iter().copied())
            .env("BELLWETHER_LOG", "info,librdkafka=warn")
            .env("NO_COLOR", "1")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("bellwether starts");
        Bellwether { child, log, out }
    }

    /// Waits for it to exit (at most `limit`); panics with its log otherwise.
    pub fn wait(&mut self, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "bellwether failed: {}", self.log_text());
                return std::fs::read_to_string(&self.out).unwrap();
            }
            assert!(
                started.elapsed() < limit,
                "bellwether still running after {limit:?}: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Everything it logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `bellwether demo` serving its dashboard on a free port, paced at
    /// `speed`x, kept up after the scenario, writing no history.
    pub fn serving_demo(dir: &Path, speed: &str) -> Bellwether {
        Bellwether::spawn(
            dir,
            "demo",
            &[
                "demo",
                "--serve",
                "127.0.0.1:0",
                "--speed",
                speed,
                "--keep-serving",
                "--no-history",
            ],
        )
    }

    /// The dashboard URL it printed or logged (`http://127.0.0.1:port/`),
    /// waiting up to a minute for it.
    pub fn dashboard_url(&self) -> String {
        eventually(Duration::from_secs(60), "the dashboard URL", || {
            let log = self.log_text();
            let at = log.find("http://127.0.0.1:")?;
            let url: String = log[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"')
                .collect();
            url.ends_with('/').then_some(url)
        })
    }

    /// Its last log lines.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Bellwether {
    fn drop(&mut self) {
        // A failing test shows what the process said (its files go with
        // the test's temporary folder).
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.log.display(),
                self.log_tail()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config file for one test: a small fleet, fast polling, history in
/// `dir/history` flushed every second and compacted as it goes; `kafka_extra`
/// holds more `[kafka]` keys (e.g. `metrics_topics`).
/// The bearer token of the configs [`write_config`] writes.
pub const HTTP_TOKEN: &str = "kafka-test-token-0123456789";

pub fn write_config(dir: &Path, broker: &Broker, kafka_extra: &str) -> PathBuf {
    let path = dir.join("bellwether.toml");
    let text = format!(
        r#"
[fleet]
vms = 60

[kafka]
brokers = "{brokers}"
poll_timeout_ms = 50
idle_partition_secs = 5
retry_initial_ms = 200
retry_max_ms = 2000
{kafka_extra}

[actor]
state_dir = "{state}"

[http]
listen = "127.0.0.1:0"
token = "{token}"

[history]
dir = "{history}"
flush_secs = 1
compact_min_files = 4
maintenance_secs = 1
"#,
        brokers = broker.address,
        token = HTTP_TOKEN,
        state = dir.join("actor-state").display(),
        history = dir.join("history").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A message read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Every message of `topic` now (reads to the end offsets).
pub fn read_topic(broker: &Broker, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .set("group.id", "bellwether-tests-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        if high > 0 {
            ends.insert(p, high);
        }
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut next: HashMap<i32, i64> = HashMap::new();
    let started = Instant::now();
    loop {
        let reached = ends
            .iter()
            .all(|(p, end)| next.get(p).copied().unwrap_or(0) >= *end);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "could not read {topic} to its end"
        );
        // tansu 0.6's memory engine reports the high watermark as the last
        // record batch's base offset + 1, so a batch of several records
        // reads past it: once there, read on until the topic is quiet.
        let wait = if reached { 500 } else { 200 };
        let Some(m) = consumer.poll(Duration::from_millis(wait)) else {
            if reached {
                break;
            }
            continue;
        };
        // librdkafka reports a connection it lost and will make again
        // (`BrokerTransportFailure`, seen on a broker just started or just
        // resumed) as an error from poll; the consumer goes on by itself.
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                eprintln!("reading {topic}: {e} (reading on)");
                continue;
            }
        };
        next.insert(m.partition(), m.offset() + 1);
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Record {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| k.to_vec()),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    out
}

/// The control topic's messages as JSON values.
pub fn control_messages(broker: &Broker, topic: &str) -> Vec<serde_json::Value> {
    read_topic(broker, topic)
        .into_iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("control messages are JSON"))
        .collect()
}

/// A producer for test input.
pub fn producer(broker: &Broker) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .create()
        .unwrap()
}

/// Sends one record and waits for it.
pub fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &str, payload: &[u8]) {
    p.send(BaseRecord::to(topic).key(key).payload(payload))
        .unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
}

/// Polls `check` every half second until it returns Some, or panics after `limit`.
pub fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `bellwether ARGS`, run to its end, without colour.
pub fn bellwether_output(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("bellwether runs")
}

/// A 60-VM demo (seed 1) writing its history into `history`, with `more`
/// arguments; its JSON summary.
pub fn demo_into(history: &Path, more: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "demo",
        "--json",
        "--vms",
        "60",
        "--seed",
        "1",
        "--history",
        history.to_str().unwrap(),
    ];
    args.extend(more);
    let out = bellwether_output(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Rows of a read-only query over a history folder (`bellwether sql`), as
/// JSON objects; retried while a merge running alongside removes files.
pub fn history_sql(history: &Path, query: &str) -> Vec<serde_json::Value> {
    history_sql_env(history, query, &[])
}

/// As [`history_sql`], with more environment variables (an object store's
/// credentials and endpoint).
pub fn history_sql_env(
    history: &Path,
    query: &str,
    env: &[(&str, &str)],
) -> Vec<serde_json::Value> {
    let mut last = String::new();
    for _ in 0..20 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bellwether"))
            .envs(env.iter().copied())
            .args([
                "sql",
                "--history",
                history.to_str().unwrap(),
                "--format",
                "json",
                query,
            ])
            .env("NO_COLOR", "1")
            .output()
            .expect("bellwether sql runs");
        if out.status.success() {
            return String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("{query}: {last}");
}

/// Every file below `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// How many files below `dir` have names starting with `prefix`.
pub fn files_named(dir: &Path, prefix: &str) -> usize {
    walk(dir)
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .count()
}

/// The Python of `./scripts/test`'s virtualenv (kafka-python,
/// confluent-kafka, pyarrow), or None when it is not set up and nothing
/// requires it (the caller then skips, saying `needs`).
pub fn python(needs: &str) -> Option<String> {
    match std::env::var("BELLWETHER_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var_os("BELLWETHER_REQUIRE_BROKER").is_some() => {
            panic!("BELLWETHER_PYTHON is not set; run ./scripts/test")
        }
        Err(_) => {
            eprintln!("skipped: BELLWETHER_PYTHON (with {needs}) is not set");
            None
        }
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's Prometheus with `config`, its data and log in `dir`, on a free
/// port; and its URL (`http://127.0.0.1:port`).
pub fn start_prometheus(dir: &Path, config: &Path) -> (Killed, String) {
    let port = free_port();
    let child = Command::new("/usr/bin/prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus starts");
    (Killed(child), format!("http://127.0.0.1:{port}"))
}
