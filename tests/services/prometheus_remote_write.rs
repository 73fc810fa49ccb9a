//! A real Prometheus (Debian's) scrapes a real node_exporter and a real
//! blackbox exporter with the shipped `config/prometheus/` files and
//! remote-writes to `bellwether run` on a real broker: this machine's CPU,
//! memory, disk I/O and network latency land in the history with the
//! values Prometheus itself answers. `bellwether gateway`
//! produces what it is sent, refuses what it cannot take, and answers 503
//! while Kafka is away.

use crate::common;

use common::{
    Bellwether, Broker, Killed, eventually, free_port, history_sql, read_topic, write_config,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const BLACKBOX_EXPORTER: &str = "/usr/bin/prometheus-blackbox-exporter";
const PROMTOOL: &str = "/usr/bin/promtool";
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus");
const TOKEN: &str = "remote-write-token-0123456789";
/// A write request a real Prometheus sent (see the schemas' unit tests).
const FROM_PROMETHEUS: &[u8] = include_bytes!("../fixtures/remote_write/node.bin");

/// True when both programs are installed; without them the test fails
/// under `./scripts/test` (which installs them) and is skipped otherwise.
fn installed() -> bool {
    let missing: Vec<_> = [PROMETHEUS, NODE_EXPORTER, BLACKBOX_EXPORTER, PROMTOOL]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("BELLWETHER_REQUIRE_BROWSER").is_some() {
        panic!("{missing:?} not installed; run ./scripts/test, which installs them");
    }
    eprintln!("skipped: {missing:?} not installed; ./scripts/test installs them");
    false
}

/// [`write_config`]'s config with `sections` after it.
fn config_with(dir: &Path, broker: &Broker, sections: &str) -> std::path::PathBuf {
    let config = write_config(dir, broker, "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push('\n');
    text.push_str(sections);
    std::fs::write(&config, text).unwrap();
    config
}

/// The shipped prometheus.yml with this test's addresses (this machine as
/// the one VM, scraped by node_exporter and pinged by the blackbox
/// exporter), a 2 s scrape
/// interval and the shipped (commented) bearer-token lines switched on.
fn prometheus_config(dir: &Path, node_exporter: &str, blackbox: &str, bellwether: &str) -> String {
    let shipped = std::fs::read_to_string(format!("{SHIPPED}/prometheus.yml")).unwrap();
    let token_file = dir.join("bellwether.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    for rules in ["bellwether.rules.yml", "application.rules.yml"] {
        std::fs::copy(format!("{SHIPPED}/{rules}"), dir.join(rules)).unwrap();
    }
    let edits = [
        ("15s", "2s".to_string()),
        ("localhost:9100", node_exporter.to_string()),
        ("localhost:9115", blackbox.to_string()),
        // The VM pinged is this machine by the name node_exporter's is.
        (
            "targets: [\"localhost\"]",
            "targets: [\"127.0.0.1\"]".to_string(),
        ),
        ("http://localhost:9464/", bellwether.to_string()),
        ("# authorization:", "authorization:".to_string()),
        (
            "#   credentials_file: /etc/prometheus/bellwether.token",
            format!("  credentials_file: {}", token_file.display()),
        ),
    ];
    let mut text = shipped;
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "the shipped prometheus.yml lost `{from}`"
        );
        text = text.replace(from, &to);
    }
    text
}

fn prometheus_value(prometheus: &str, promql: &str, at_ms: i64) -> Option<f64> {
    let reply: Value = ureq::get(&format!("{prometheus}/api/v1/query"))
        .query("query", promql)
        .query("time", format!("{:.3}", at_ms as f64 / 1000.0))
        .call()
        .ok()?
        .into_body()
        .read_json()
        .ok()?;
    reply["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

fn post_write(url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let mut request = ureq::post(url).config().http_status_as_error(false).build();
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

const PROTOBUF: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

fn authorised() -> Vec<(&'static str, String)> {
    PROTOBUF
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .chain([("Authorization", format!("Bearer {TOKEN}"))])
        .collect()
}

fn as_refs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn prometheus_remote_writes_node_exporter_metrics_into_the_history() {
    if !installed() {
        return;
    }
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        &broker,
        &format!("[remote_write]\nenabled = true\ntoken = \"{TOKEN}\"\n"),
    );
    let run = Bellwether::spawn(
        dir.path(),
        "run",
        &["run", "--config", config.to_str().unwrap(), "--no-actor"],
    );
    let url = run.dashboard_url();
    let write_url = format!("{url}api/v1/write");

    let node_port = free_port();
    let _node = Killed(
        Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node_exporter starts"),
    );
    let blackbox_port = free_port();
    let _blackbox = Killed(
        Command::new(BLACKBOX_EXPORTER)
            .arg("--config.file=/etc/prometheus/blackbox.yml")
            .arg(format!("--web.listen-address=127.0.0.1:{blackbox_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the blackbox exporter starts"),
    );
    let prometheus_yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_yml,
        prometheus_config(
            dir.path(),
            &format!("127.0.0.1:{node_port}"),
            &format!("127.0.0.1:{blackbox_port}"),
            &url,
        ),
    )
    .unwrap();
    let checked = Command::new(PROMTOOL)
        .args(["check", "config"])
        .arg(&prometheus_yml)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "promtool refuses the shipped config: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let (_prometheus, prometheus) = common::start_prometheus(dir.path(), &prometheus_yml);

    // This machine (node_exporter's `instance`, its port stripped) in the
    // history, CPU and memory both, several samples of each.
    let history = dir.path().join("history");
    let query = "SELECT metric, CAST(time AS BIGINT) AS t, value FROM samples \
                 WHERE vm_id = '127.0.0.1' \
                 AND metric IN ('cpu_percent', 'memory_percent', 'disk_io_mbps', 'network_latency_ms') \
                 ORDER BY t";
    let rows = eventually(
        Duration::from_secs(240),
        "this machine's samples in the history",
        || {
            let rows = history_sql(&history, query);
            let count = |m: &str| rows.iter().filter(|r| r["metric"] == m).count();
            let enough = [
                "cpu_percent",
                "memory_percent",
                "disk_io_mbps",
                "network_latency_ms",
            ]
            .iter()
            .all(|m| count(m) >= 3);
            enough.then_some(rows)
        },
    );
    // Each is what Prometheus answers for the same series at the same time.
    let mut compared = 0;
    for row in &rows {
        let metric = row["metric"].as_str().unwrap();
        let t = row["t"].as_i64().unwrap();
        let value = row["value"].as_f64().unwrap();
        let plausible = match metric {
            // A ping of this machine from itself.
            "network_latency_ms" => (0.0..1000.0).contains(&value),
            "disk_io_mbps" => value >= 0.0,
            _ => (0.0..=100.0).contains(&value),
        };
        assert!(plausible, "{row}");
        let theirs = prometheus_value(&prometheus, &format!("bellwether:{metric}"), t)
            .unwrap_or_else(|| panic!("Prometheus has no bellwether:{metric} at {t}"));
        assert!(
            (theirs - value).abs() <= 1e-9 * value.abs().max(1.0),
            "{metric} at {t}: history {value}, Prometheus {theirs}"
        );
        compared += 1;
    }
    assert!(compared >= 12, "{rows:?}");

    // A write that does not decode: 400 with the reason, kept as a dead letter.
    let headers = authorised();
    let (status, body) = post_write(&write_url, &as_refs(&headers), b"not a write request");
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("snappy"), "{body}");
    let dead = eventually(Duration::from_secs(60), "the dead letter", || {
        read_topic(&broker, "bellwether.dead-letter")
            .into_iter()
            .find(|r| r.payload == b"not a write request")
    });
    assert_eq!(dead.headers["bellwether.source.topic"], "remote_write");
    assert!(
        dead.headers["bellwether.error"].contains("snappy"),
        "{:?}",
        dead.headers
    );
    // No token, no write.
    let (status, body) = post_write(&write_url, &PROTOBUF, FROM_PROMETHEUS);
    assert_eq!(status, 401, "{body}");

    let metrics = ureq::get(&format!("{url}metrics"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let produced = metrics
        .lines()
        .find(|l| l.starts_with("bellwether_remote_write_samples_total{outcome=\"produced\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(produced >= 12.0, "{metrics}");
    assert!(
        metrics.contains("bellwether_remote_write_requests_total{code=\"400\"} 1"),
        "{metrics}"
    );
}

#[test]
fn the_gateway_produces_what_it_takes_and_answers_503_while_kafka_is_away() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = config_with(
        dir.path(),
        &broker,
        &format!(
            "[remote_write]\ngateway_listen = \"127.0.0.1:{port}\"\nmax_body_mb = 1\nproduce_timeout_secs = 2\n"
        ),
    );
    let gateway = Bellwether::spawn(
        dir.path(),
        "gateway",
        &["gateway", "--config", config.to_str().unwrap()],
    );
    eventually(Duration::from_secs(60), "the gateway to start", || {
        gateway
            .log_text()
            .contains("bellwether gateway is running")
            .then_some(())
    });
    let url = format!("http://127.0.0.1:{port}/api/v1/write");

    let (status, body) = post_write(&url, &PROTOBUF, FROM_PROMETHEUS);
    assert_eq!(status, 204, "{body}");
    // On the metrics topic, keyed by the VM, as bellwether's JSON.
    let record = eventually(Duration::from_secs(60), "the produced snapshots", || {
        read_topic(&broker, "bellwether.metrics")
            .into_iter()
            .find(|r| r.key.as_deref() == Some(b"127.0.0.1".as_slice()))
    });
    let snapshots: Value = serde_json::from_slice(&record.payload).unwrap();
    let last = snapshots.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["vm_id"], "127.0.0.1");
    for metric in ["cpu_percent", "memory_percent", "disk_io_mbps"] {
        assert!(last["metrics"][metric].is_number(), "{last}");
    }

    // What it cannot take is refused, each with its reason.
    let (status, body) = post_write(
        &url,
        &[("Content-Type", "application/json")],
        FROM_PROMETHEUS,
    );
    assert_eq!(status, 415, "{body}");
    let (status, body) = post_write(&url, &PROTOBUF[..1], FROM_PROMETHEUS);
    assert_eq!(status, 415, "{body}");
    assert!(body["error"].as_str().unwrap().contains("snappy"), "{body}");
    // A body past max_body_mb is refused from its Content-Length, unread
    // (a client still sending it would see the connection closed).
    let head = format!(
        "POST /api/v1/write HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    );
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("{\"error\":"), "{answer}");
    // A chunked body, whose length nobody said, is cut off once past it.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /api/v1/write HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = [b"10000\r\n".as_slice(), &[7u8; 0x10000], b"\r\n"].concat();
    for _ in 0..32 {
        // The server may stop reading (and close) once it has answered.
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let metrics = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    for counted in [
        "bellwether_remote_write_requests_total{code=\"204\"} 1",
        "bellwether_remote_write_requests_total{code=\"413\"} 2",
        "bellwether_remote_write_requests_total{code=\"415\"} 2",
    ] {
        assert!(metrics.contains(counted), "{counted} not in {metrics}");
    }

    // Kafka away: 503, so that Prometheus keeps the samples and sends again.
    broker.pause();
    let (status, body) = post_write(&url, &PROTOBUF, FROM_PROMETHEUS);
    broker.resume();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("send them again"),
        "{body}"
    );
    // Back: taken again.
    let (status, body) = eventually(Duration::from_secs(60), "a write taken again", || {
        let (status, body) = post_write(&url, &PROTOBUF, FROM_PROMETHEUS);
        (status == 204).then_some((status, body))
    });
    assert_eq!(status, 204, "{body}");
}
