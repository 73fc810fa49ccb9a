//! History on an object store: three `bellwether run` instances of one
//! consumer group write to one S3 bucket (moto's server, on a loopback
//! port), each under its own prefix; `bellwether sql` reads them as one
//! set of tables, and that union holds exactly the samples one instance
//! alone writes for the same input. Compaction runs there too.

use crate::common;
use crate::kafka_consumer_group::{HOUR_MS, METRICS, assigned, reports_at, setup};

use bellwether::config::Config;
use bellwether::demo::DEMO_START;
use bellwether::kafka::sink::SharedProducer;
use bellwether::service::simulate::snapshots;
use bellwether::simulator::{FleetSimulator, PatchQuality};
use bellwether_schemas::wire::json;
use common::{Bellwether, Broker, Killed, eventually, free_port, history_sql_env};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const HOURS: i64 = 3;
const BUCKET: &str = "history";

/// moto's S3 server on a free port, with a bucket; its endpoint URL.
fn s3_server(dir: &Path) -> Option<(Killed, String)> {
    let python = common::python("moto[server]")?;
    let port = free_port();
    let child = Command::new(python)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("moto.log")).unwrap())
        .spawn()
        .expect("moto's server starts");
    let server = Killed(child);
    let endpoint = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(60), "moto to answer", || {
        ureq::put(&format!("{endpoint}/{BUCKET}"))
            .send_empty()
            .ok()
            .map(|_| ())
    });
    Some((server, endpoint))
}

/// The environment that points bellwether (and its SQL) at `endpoint`.
fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

/// Every key in the bucket under `prefix`.
fn keys(endpoint: &str, prefix: &str) -> Vec<String> {
    let body = ureq::get(&format!(
        "{endpoint}/{BUCKET}?list-type=2&prefix={prefix}&max-keys=10000"
    ))
    .call()
    .unwrap()
    .body_mut()
    .read_to_string()
    .unwrap();
    body.split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .map(String::from)
        .collect()
}

/// The config `setup` wrote for `name`, its history in the bucket under
/// `prefix`, as instance `instance`, recording the control topic or not.
fn in_bucket(config: &str, name: &str, prefix: &str, instance: &str, control: bool) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("\ndir = ").unwrap() + 1;
    let end = start + text[start..].find('\n').unwrap();
    let path = Path::new(config).with_file_name(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "{}dir = \"s3://{BUCKET}/{prefix}\"\ninstance = \"{instance}\"\nrecord_control = {control}{}",
            &text[..start],
            &text[end..]
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// 3 h of a 60-VM fleet (no patch), as metric messages (key, payload).
fn recording() -> Vec<(String, Vec<u8>)> {
    let mut config = Config::default_config();
    config.fleet.vms = 60;
    let mut fleet = FleetSimulator::new(&config.fleet, &config.simulation, PatchQuality::Good);
    let step = config.fleet.sample_interval_secs as i64 * 1000;
    let (mut now, end) = (DEMO_START, DEMO_START.plus_ms(HOURS * HOUR_MS));
    let mut messages = Vec::new();
    while now < end {
        for batch in fleet.tick(now) {
            for s in snapshots(&batch).unwrap() {
                messages.push((s.vm_id.clone(), json::encode_snapshot(&s)));
            }
        }
        now = now.plus_ms(step);
    }
    messages
}

#[test]
fn three_instances_share_one_history_in_an_object_store_that_reads_as_one() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((_s3, endpoint)) = s3_server(dir.path()) else {
        return;
    };
    let env = s3_env(&endpoint);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let spawn = |name: &str, config: &str| {
        Bellwether::spawn_env(
            dir.path(),
            name,
            &["run", "--config", config, "--no-actor"],
            &env,
        )
    };

    let solo = in_bucket(
        &setup(dir.path(), &broker, "solo"),
        "solo-1",
        "solo",
        "one",
        true,
    );
    let trio = setup(dir.path(), &broker, "trio");
    let one = spawn("solo-1", &solo);
    let members: Vec<Bellwether> = ["a", "b", "c"]
        .into_iter()
        .map(|i| {
            // One of the three records the control topic they all read.
            let config = in_bucket(&trio, &format!("trio-{i}"), "trio", i, i == "a");
            spawn(&format!("trio-{i}"), &config)
        })
        .collect();
    // The trio has split the partitions before the first metric arrives.
    eventually(
        Duration::from_secs(120),
        "the trio to split the partitions",
        || {
            let parts: Vec<usize> = members.iter().map(assigned).collect::<Option<_>>()?;
            (assigned(&one) == Some(4)
                && parts.iter().all(|&n| n > 0)
                && parts.iter().sum::<usize>() == 4)
                .then_some(())
        },
    );
    assert!(
        members
            .iter()
            .chain([&one])
            .all(|b| b.log_text().contains(&format!("s3://{BUCKET}/"))),
        "an instance does not say it writes to the bucket"
    );

    let messages = recording();
    let mut config = Config::default_config();
    config.kafka.brokers = broker.address.clone();
    let p = SharedProducer::new(&config.kafka).unwrap();
    // In twelve parts a flush (1 s) apart: each hour's partition gets
    // several small files, for compaction to merge.
    for part in messages.chunks(messages.len().div_ceil(12)) {
        for (key, payload) in part {
            p.send(METRICS, Some(key.as_bytes()), payload, None)
                .unwrap();
        }
        p.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
    }

    // Every instance has closed the window ending an hour before the
    // recording does: every sample before then is taken in.
    let cutoff = DEMO_START.plus_ms((HOURS - 1) * HOUR_MS).0;
    eventually(Duration::from_secs(300), "the solo report", || {
        reports_at(&broker, "solo.control", cutoff).pop()
    });
    eventually(Duration::from_secs(300), "the trio's three reports", || {
        (reports_at(&broker, "trio.control", cutoff).len() >= 3).then_some(())
    });

    // The samples before the cutoff, as each history holds them (written
    // within a flush, 1 s): 60 VMs × 7 metrics × 120 minutes.
    let expected = 60 * 7 * ((HOURS - 1) * 60) as usize;
    let rows = |prefix: &str| {
        let query = format!(
            "SELECT vm_id, metric, CAST(time AS BIGINT) AS t, value FROM samples \
             WHERE time < to_timestamp_millis({cutoff}) ORDER BY vm_id, metric, t"
        );
        let url = format!("s3://{BUCKET}/{prefix}");
        history_sql_env(Path::new(&url), &query, &env)
    };
    let alone = eventually(Duration::from_secs(60), "the solo history", || {
        let r = rows("solo");
        (r.len() >= expected).then_some(r)
    });
    let union = eventually(Duration::from_secs(60), "the trio's history", || {
        let r = rows("trio");
        (r.len() >= expected).then_some(r)
    });
    assert_eq!(
        alone.len(),
        expected,
        "samples written twice by one instance"
    );
    assert_eq!(union.len(), alone.len(), "the trio wrote a sample twice");
    assert!(
        union == alone,
        "the trio's union differs from what one instance wrote"
    );

    // Each instance wrote under its own prefix, and merged small files
    // there (compaction, committed files only).
    let trio_keys = keys(&endpoint, "trio/");
    for i in ["a", "b", "c"] {
        assert!(
            trio_keys
                .iter()
                .any(|k| k.starts_with(&format!("trio/{i}/samples/date="))),
            "no samples under trio/{i}: {trio_keys:?}"
        );
        assert!(trio_keys.contains(&format!("trio/{i}/_checkpoint.json")));
    }
    eventually(
        Duration::from_secs(60),
        "a merged file in the bucket",
        || {
            keys(&endpoint, "trio/")
                .iter()
                .any(|k| k.contains("/compact-"))
                .then_some(())
        },
    );
    // Other tables read as one too: the window's three reports (one per
    // instance, recorded once) scored the whole fleet between them, as the
    // solo one did.
    let scored = |prefix: &str| {
        history_sql_env(
            Path::new(&format!("s3://{BUCKET}/{prefix}")),
            &format!(
                "SELECT count(*) AS reports, sum(vms_scored) AS vms FROM window_reports \
                 WHERE window_end = to_timestamp_millis({cutoff})"
            ),
            &env,
        )
        .remove(0)
    };
    let (trio, solo) = (scored("trio"), scored("solo"));
    assert_eq!((&trio["reports"], &solo["reports"]), (&3.into(), &1.into()));
    assert_eq!(trio["vms"], solo["vms"]);
}
