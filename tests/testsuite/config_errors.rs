//! Bad configuration fails at start, naming the key and the reason.

use bellwether::config::{ConfigError, load};
use std::io::Write;
use std::process::Command;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn error_of(text: &str) -> String {
    let f = file(text);
    load(Some(f.path()))
        .expect_err("config must be refused")
        .to_string()
}

#[test]
fn the_shipped_default_loads() {
    let config = load(None).unwrap();
    assert_eq!(config.fleet.vms, 300);
}

#[test]
fn an_unknown_key_is_named_with_its_section() {
    let e = error_of("[fleet]\nvmz = 10\n");
    assert!(
        e.contains("`fleet.vmz`") && e.contains("unknown key"),
        "{e}"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_named() {
    let e = error_of("[fleet]\nvms = \"many\"\n");
    assert!(e.contains("`fleet.vms`"), "{e}");
}

#[test]
fn a_bad_wave_size_is_named() {
    let e = error_of("[rollout]\nwaves = [\"1%\", \"150%\"]\n");
    assert!(
        e.contains("rollout.waves") && e.contains("at most 100%"),
        "{e}"
    );
}

#[test]
fn range_and_reference_errors_are_named() {
    assert!(error_of("[fleet]\ncritical_share = 1.5\n").contains("`fleet.critical_share`"));
    assert!(
        error_of("[rollout]\ncanary_groups = [\"nope\"]\n").contains("`rollout.canary_groups[0]`")
    );
    assert!(
        error_of("[window]\nsize_secs = 300\nslide_secs = 70\n").contains("`window.slide_secs`")
    );
    assert!(
        error_of("[thresholds.per_metric.gpu_percent]\ndirection = \"increase\"\n")
            .contains("`thresholds.per_metric.gpu_percent`")
    );
    let e = error_of("[thresholds.per_metric.cpu_percent]\ndirection = \"sideways\"\n");
    assert!(
        e.contains("thresholds.per_metric.cpu_percent.direction"),
        "{e}"
    );
}

#[test]
fn an_object_store_history_it_cannot_write_is_named() {
    for (dir, says) in [("gs://bucket/h", "not supported"), ("s3:///h", "no bucket")] {
        let e = error_of(&format!("[history]\ndir = \"{dir}\"\n"));
        assert!(e.contains("`history.dir`") && e.contains(says), "{e}");
    }
    let e = error_of("[history]\ninstance = \"a/b\"\n");
    assert!(e.contains("`history.instance`"), "{e}");
    let f = file("[history]\ndir = \"s3://bucket/h\"\ninstance = \"node-1\"\n");
    assert_eq!(
        load(Some(f.path())).unwrap().history.instance_name(),
        "node-1"
    );
}

#[test]
fn a_bad_group_expression_is_named_with_its_column() {
    let e = error_of("[[canary.groups]]\nname = \"x\"\nexpression = 'region = \"a\"'\n");
    assert!(
        e.contains("`canary.groups[0].expression`") && e.contains("column"),
        "{e}"
    );
}

#[test]
fn a_missing_file_is_reported() {
    let e = load(Some(std::path::Path::new("/nonexistent/bellwether.toml"))).unwrap_err();
    assert!(matches!(e, ConfigError::File { .. }), "{e}");
}

#[test]
fn config_check_exits_non_zero_naming_the_key() {
    let f = file("[baseline]\nhalf_life_hours = -1\n");
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["config", "check"])
        .arg(f.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`baseline.half_life_hours`"), "{stderr}");

    let ok = file("[fleet]\nvms = 50\n");
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["config", "check"])
        .arg(ok.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn environment_variables_override_and_are_checked() {
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["config", "show"])
        .env("BELLWETHER__FLEET__VMS", "42")
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["fleet"]["vms"], 42);

    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["config", "show"])
        .env("BELLWETHER__FLEET__VMS", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`fleet.vms`"));
}

#[test]
fn config_show_never_prints_a_secret() {
    let f =
        file("[kafka.client]\n\"sasl.password\" = \"hunter2-kafka\"\n\"sasl.username\" = \"bw\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(["config", "show", "--config", f.path().to_str().unwrap()])
        .env("BELLWETHER__HTTP__TOKEN", "s3cret-token-0123456789")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("s3cret-token") && !text.contains("hunter2"),
        "{text}"
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["http"]["token"], "<redacted>");
    assert_eq!(shown["kafka"]["client"]["sasl.password"], "<redacted>");
    assert_eq!(
        shown["kafka"]["client"]["sasl.username"], "bw",
        "only secrets are hidden"
    );
}

#[test]
fn bad_kafka_settings_are_named() {
    let e = error_of("[kafka]\nreplay_hours = 1\n");
    assert!(
        e.contains("`kafka.replay_hours`") && e.contains("baseline.min_hours"),
        "{e}"
    );
    let e = error_of("[kafka]\nmetrics_topics = [{ name = \"m\", format = \"xml\" }]\n");
    assert!(
        e.contains("kafka.metrics_topics") && e.contains("xml"),
        "{e}"
    );
    let e = error_of("[kafka]\ncontrol_topic = \"bellwether.metrics\"\n");
    assert!(
        e.contains("`kafka.control_topic`") && e.contains("also a metrics topic"),
        "{e}"
    );
    let e = error_of("[kafka.client]\n\"group.id\" = \"x\"\n");
    assert!(
        e.contains("group.id") && e.contains("kafka.group_id"),
        "{e}"
    );
}

#[test]
fn a_bad_failure_setting_is_named() {
    let e = error_of("[failure]\nrisk_threshold = 1.5\n");
    assert!(
        e.contains("`failure.risk_threshold`") && e.contains("between 0 and 1"),
        "{e}"
    );
    let e = error_of("[failure]\nact = \"sometimes\"\n");
    assert!(e.contains("`failure.act`"), "{e}");
    let e = error_of("[failure]\nmodle = \"builtin\"\n");
    assert!(e.contains("`failure.modle`"), "{e}");
}

#[test]
fn a_bad_retrain_setting_is_named() {
    let e = error_of("[retrain]\nheld_out_share = 1.0\n");
    assert!(
        e.contains("`retrain.held_out_share`") && e.contains("between 0 and 1"),
        "{e}"
    );
    let e = error_of("[retrain]\nevery_hours = -2\n");
    assert!(e.contains("`retrain.every_hours`"), "{e}");
    let e = error_of("[retrain]\nevery = 24\n");
    assert!(e.contains("`retrain.every`"), "{e}");
    let e = error_of("[simulation]\nhigh_memory_share = 2\n");
    assert!(e.contains("`simulation.high_memory_share`"), "{e}");
}

#[test]
fn an_actuator_without_its_settings_is_named() {
    let e = error_of("[actor]\nactuator = \"webhook\"\n");
    assert!(e.contains("`actor.webhook`"), "{e}");
    let e = error_of(
        "[actor]\nactuator = \"webhook\"\n[actor.webhook]\nurl = \"ftp://x\"\nsecret = \"0123456789abcdef\"\n",
    );
    assert!(e.contains("`actor.webhook.url`"), "{e}");
    let e = error_of(
        "[actor]\nactuator = \"webhook\"\n[actor.webhook]\nurl = \"https://deploy.example/hook\"\nsecret = \"short\"\n",
    );
    assert!(e.contains("`actor.webhook.secret`"), "{e}");
    let e = error_of(
        "[actor]\nactuator = \"shell\"\n[actor.shell]\npatch = \"x\"\nrollback = \"undo {patch_id}\"\n",
    );
    assert!(e.contains("`actor.shell.rollback`"), "{e}");
    let e = error_of("[actor]\nactuator = \"ansible\"\n");
    assert!(e.contains("`actor.actuator`"), "{e}");
}

#[test]
fn a_bad_approval_rule_is_named() {
    let e = error_of("[[approval.rules]]\nname = \"x\"\naction = \"manual\"\nafter_days = 3\n");
    assert!(e.contains("`approval.rules[0].after_days`"), "{e}");
    let e = error_of("[[approval.rules]]\nname = \"x\"\naction = \"maybe\"\n");
    assert!(e.contains("approval.rules"), "{e}");
    let e = error_of("[approval]\napprove = [\"KB-1\"]\nreject = [\"KB-1\"]\n");
    assert!(
        e.contains("`approval.approve`") && e.contains("KB-1"),
        "{e}"
    );
}

#[test]
fn a_bad_maintenance_window_or_rollback_policy_is_named() {
    let window = |body: &str| error_of(&format!("[rollout.maintenance_window]\n{body}\n"));
    let e = window("cron = \"0 2 * *\"\nduration_minutes = 60");
    assert!(
        e.contains("`rollout.maintenance_window.cron`") && e.contains("five"),
        "{e}"
    );
    let e = window("cron = \"0 2 * * SAT\"\ntimezone = \"Europe/Atlantis\"\nduration_minutes = 60");
    assert!(
        e.contains("`rollout.maintenance_window.timezone`") && e.contains("Europe/Atlantis"),
        "{e}"
    );
    let e = window("cron = \"0 2 * * SAT\"");
    assert!(e.contains("duration_minutes"), "{e}");
    let e = error_of("[rollback]\nscope = \"region\"\n");
    assert!(e.contains("`rollback.scope`"), "{e}");
    let ok = file(
        "[rollout]\nmax_concurrency = 5\n[rollout.maintenance_window]\ncron = \"30 1 * * SUN\"\ntimezone = \"America/New_York\"\nduration_minutes = 180\n[rollback]\nscope = \"group\"\non_anomaly = \"roll-back-all\"\n",
    );
    let config = load(Some(ok.path())).unwrap();
    assert_eq!(config.rollout.max_concurrency, 5);
    assert_eq!(
        config.rollback.on_anomaly,
        bellwether::config::OnAnomaly::RollBackAll
    );
}

#[test]
fn sigterm_stops_run_actor_and_simulate_while_their_broker_is_unreachable() {
    for command in ["run", "actor", "simulate"] {
        sigterm_stops_while_the_broker_is_unreachable(command);
    }
}

fn sigterm_stops_while_the_broker_is_unreachable(command: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = file(&format!(
        "[kafka]\nbrokers = \"127.0.0.1:1\"\nretry_initial_ms = 200\nretry_max_ms = 30000\n\n[http]\nlisten = \"\"\n\n[history]\ndir = \"{}\"\n\n[actor]\nstate_dir = \"{}\"\n",
        dir.path().join("h").display(),
        dir.path().join("s").display()
    ));
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args([command, "--config", f.path().to_str().unwrap()])
        .stderr(log.try_clone().unwrap())
        .stdout(log)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(dir.path().join("log"))
        .unwrap()
        .contains("Kafka unreachable")
    {
        assert!(
            started.elapsed().as_secs() < 60,
            "{command} never tried Kafka"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Let the backoff grow past a few seconds, then ask it to stop.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let asked = std::time::Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if asked.elapsed().as_secs() > 30 {
            let _ = child.kill();
            panic!("{command} ignored SIGTERM for 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(
        asked.elapsed().as_secs() < 10,
        "{command} took {:?}",
        asked.elapsed()
    );
    // Stopped on request: a clean exit, or simulate's "stopped before Kafka answered".
    assert!(
        status.success() || log.contains("stopped before Kafka answered"),
        "{command}: {status:?}\n{log}"
    );
}

#[test]
fn sizes_past_what_the_machine_holds_and_shrinking_waves_are_named() {
    for (text, key) in [
        ("[fleet]\nvms = 100000000000\n", "fleet.vms"),
        (
            "[simulation]\npartitions = 4294967295\n",
            "simulation.partitions",
        ),
        (
            "[window]\nsize_secs = 9223372036854775807\n",
            "window.size_secs",
        ),
        ("[window]\nsize_secs = 0\n", "window.size_secs"),
        (
            "[simulation]\nwarmup_hours = 1e300\n",
            "simulation.warmup_hours",
        ),
        ("[baseline]\nmin_hours = nan\n", "baseline.min_hours"),
        (
            "[rollout]\nwaves = [\"50%\", \"10%\", \"100%\"]\n",
            "rollout.waves[1]",
        ),
        (
            "[http]\nheader_timeout_secs = 0\n",
            "http.header_timeout_secs",
        ),
        ("[http]\nmax_connections = 0\n", "http.max_connections"),
    ] {
        let e = error_of(text);
        assert!(e.contains(&format!("`{key}`")), "{text}: {e}");
    }
}

#[test]
fn a_toml_syntax_error_names_the_file_line_and_column() {
    let f = file("[fleet]\nvms = 30\n[window\nsize_secs = 60\n");
    let e = load(Some(f.path())).unwrap_err().to_string();
    assert!(e.contains("line 3, column 8"), "{e}");
    // figment names the file, relative to the working folder when shorter.
    let name = f.path().file_name().unwrap().to_str().unwrap();
    assert!(e.contains(name), "{e}");
    assert!(!e.contains("config key ``"), "{e}");
}

#[test]
fn a_bad_rollout_detect_is_named() {
    let e = error_of("[rollout.detect]\nshifts = { latency = \"5%\" }\n");
    assert!(
        e.contains("rollout.detect.shifts.latency") && e.contains("not a metric"),
        "{e}"
    );
    let e = error_of("[rollout.detect]\nshifts = { response_time_ms = \"fast\" }\n");
    assert!(
        e.contains("rollout.detect.shifts") && e.contains("`fast` is not a shift"),
        "{e}"
    );
    let e = error_of("[rollout.detect]\nshifts = { response_time_ms = \"5%\" }\npower = 2\n");
    assert!(e.contains("rollout.detect.power"), "{e}");
    let config = load(Some(
        file("[rollout.detect]\nshifts = { error_rate_percent = \"0.5pp\" }\n").path(),
    ))
    .unwrap();
    assert_eq!(config.rollout.detect.unwrap().power, 0.95);
}
