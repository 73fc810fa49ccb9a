//! InfluxDB line protocol, as Telegraf's Kafka output sends it.
//!
//! ```text
//! mem,host=web-0042,region=eu used_percent=63.5,available=1042i 1793614500000000000
//! ```
//!
//! Each line is `measurement[,tag=value...] field=value[,field=value...] [timestamp]`.
//! The VM id is the value of one tag (`host` by default, which Telegraf sets
//! on every metric). Each numeric field becomes one sample named
//! `<measurement>_<field>` (`mem_used_percent`), or what `rename` maps that
//! name to (`memory_percent`). Integers (`5i`, `5u`) and floats are read as
//! numbers, booleans as 1 or 0; string fields are skipped. Timestamps are in
//! `precision` units (Telegraf's default is nanoseconds); a line without one
//! takes the Kafka record's timestamp. Blank lines and `#` comments are
//! skipped. One bad line rejects the whole message, with its line number.

use super::{DecodeError, InputFormat, StagedRows};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Unit of line-protocol timestamps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Nanoseconds (Telegraf's and InfluxDB's default).
    #[default]
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

impl Precision {
    fn to_ms(self, t: i64) -> i64 {
        match self {
            Precision::Ns => t.div_euclid(1_000_000),
            Precision::Us => t.div_euclid(1_000),
            Precision::Ms => t,
            Precision::S => t.saturating_mul(1000),
        }
    }
}

/// How line protocol maps onto VMs and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineProtocolOptions {
    /// The tag holding the VM id.
    #[serde(default = "default_vm_tag")]
    pub vm_tag: String,
    /// Unit of the timestamps.
    #[serde(default)]
    pub precision: Precision,
    /// Name samples `<measurement>_<field>` (true, the default) or just
    /// `<field>` (when the fields already carry bellwether's metric names).
    #[serde(default = "yes")]
    pub prefix_measurement: bool,
    /// Sample name (after prefixing) → bellwether metric name.
    #[serde(default)]
    pub rename: HashMap<String, String>,
}

fn yes() -> bool {
    true
}

fn default_vm_tag() -> String {
    "host".into()
}

impl Default for LineProtocolOptions {
    fn default() -> Self {
        LineProtocolOptions {
            vm_tag: default_vm_tag(),
            precision: Precision::Ns,
            prefix_measurement: true,
            rename: HashMap::new(),
        }
    }
}

/// A reusable decoder (it keeps a scratch buffer for metric names).
#[derive(Debug, Clone, Default)]
pub struct LineProtocolDecoder {
    options: LineProtocolOptions,
    name: String,
    unescaped: String,
}

impl LineProtocolDecoder {
    /// A decoder with `options`.
    pub fn new(options: LineProtocolOptions) -> LineProtocolDecoder {
        LineProtocolDecoder {
            options,
            name: String::new(),
            unescaped: String::new(),
        }
    }

    /// Decodes one message (one or more lines) into `out`. On error `out`
    /// may hold part of the message, so callers clear it.
    pub fn decode(
        &mut self,
        payload: &[u8],
        fallback_ms: Option<i64>,
        out: &mut StagedRows,
    ) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(payload).map_err(|e| {
            DecodeError::new(
                InputFormat::LineProtocol,
                format!("not UTF-8 at byte {}", e.valid_up_to()),
            )
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.decode_line(line, fallback_ms, out).map_err(|reason| {
                DecodeError::new(
                    InputFormat::LineProtocol,
                    format!("line {}: {reason}", n + 1),
                )
            })?;
        }
        Ok(())
    }

    fn decode_line(
        &mut self,
        line: &str,
        fallback_ms: Option<i64>,
        out: &mut StagedRows,
    ) -> Result<(), String> {
        let (key, rest) = split_once_unescaped(line, b' ', false)
            .ok_or("expected `measurement[,tags] fields [timestamp]`: no fields")?;
        let rest = rest.trim_start_matches(' ');
        let (fields, timestamp) = match split_once_unescaped(rest, b' ', true) {
            Some((f, t)) => (f, t.trim()),
            None => (rest, ""),
        };
        let time_ms = if timestamp.is_empty() {
            fallback_ms.ok_or("no timestamp, and the record has none")?
        } else {
            let t: i64 = timestamp
                .parse()
                .map_err(|_| format!("timestamp `{timestamp}` is not an integer"))?;
            self.options.precision.to_ms(t)
        };

        let mut parts = SplitUnescaped::new(key, b',', false);
        let measurement = parts.next().unwrap_or_default();
        if measurement.is_empty() {
            return Err("empty measurement name".into());
        }
        let mut vm = None;
        for tag in parts {
            let (k, v) = split_once_unescaped(tag, b'=', false)
                .ok_or_else(|| format!("tag `{tag}` has no `=`"))?;
            if unescape(k, &mut self.unescaped) == self.options.vm_tag {
                vm = Some(out.intern(unescape(v, &mut self.unescaped)));
            }
        }
        let vm = vm.ok_or_else(|| {
            format!(
                "no `{}` tag (the VM id) on measurement `{measurement}`",
                self.options.vm_tag
            )
        })?;
        let measurement = unescape(measurement, &mut self.unescaped).to_string();

        let mut any = false;
        for field in SplitUnescaped::new(fields, b',', true) {
            let (k, v) = split_once_unescaped(field, b'=', false)
                .ok_or_else(|| format!("field `{field}` has no `=`"))?;
            any = true;
            let Some(value) = field_value(v).map_err(|e| format!("field `{k}`: {e}"))? else {
                continue;
            };
            self.name.clear();
            if self.options.prefix_measurement {
                self.name.push_str(&measurement);
                self.name.push('_');
            }
            self.name.push_str(unescape(k, &mut self.unescaped));
            let metric = match self.options.rename.get(&self.name) {
                Some(to) => out.intern(to),
                None => out.intern(&self.name),
            };
            out.push(vm.clone(), metric, time_ms, value);
        }
        if !any {
            return Err("no fields".into());
        }
        Ok(())
    }
}

/// A field value as a number; `None` for strings (skipped).
fn field_value(v: &str) -> Result<Option<f64>, String> {
    if v.starts_with('"') {
        return if v.len() >= 2 && v.ends_with('"') {
            Ok(None)
        } else {
            Err(format!("unterminated string {v}"))
        };
    }
    match v {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(Some(1.0)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(Some(0.0)),
        _ => {}
    }
    let parsed = if let Some(i) = v.strip_suffix('i') {
        i.parse::<i64>().map(|i| i as f64).ok()
    } else if let Some(u) = v.strip_suffix('u') {
        u.parse::<u64>().map(|u| u as f64).ok()
    } else {
        v.parse::<f64>().ok().filter(|x| x.is_finite())
    };
    parsed
        .map(Some)
        .ok_or_else(|| format!("`{v}` is not a number, boolean or string"))
}

/// `s` with backslash escapes removed (borrowed when it has none).
fn unescape<'a>(s: &'a str, buf: &'a mut String) -> &'a str {
    if !s.contains('\\') {
        return s;
    }
    buf.clear();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ (',' | ' ' | '=' | '"' | '\\')) => buf.push(n),
                Some(n) => {
                    buf.push('\\');
                    buf.push(n);
                }
                None => buf.push('\\'),
            }
        } else {
            buf.push(c);
        }
    }
    buf
}

/// Splits at the first `delim` not escaped by a backslash (nor, with
/// `quotes`, inside a double-quoted string).
fn split_once_unescaped(s: &str, delim: u8, quotes: bool) -> Option<(&str, &str)> {
    let i = find_unescaped(s.as_bytes(), delim, quotes)?;
    Some((&s[..i], &s[i + 1..]))
}

fn find_unescaped(b: &[u8], delim: u8, quotes: bool) -> Option<usize> {
    let mut i = 0;
    let mut in_quotes = false;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'"' if quotes => in_quotes = !in_quotes,
            c if c == delim && !in_quotes => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

struct SplitUnescaped<'a> {
    rest: Option<&'a str>,
    delim: u8,
    quotes: bool,
}

impl<'a> SplitUnescaped<'a> {
    fn new(s: &'a str, delim: u8, quotes: bool) -> Self {
        SplitUnescaped {
            rest: Some(s),
            delim,
            quotes,
        }
    }
}

impl<'a> Iterator for SplitUnescaped<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        match split_once_unescaped(s, self.delim, self.quotes) {
            Some((head, tail)) => {
                self.rest = Some(tail);
                Some(head)
            }
            None => {
                self.rest = None;
                Some(s)
            }
        }
    }
}

/// Encodes one sample per field of a wide snapshot as a line, for feeders
/// and tests: `<measurement>,host=<vm> <metric>=<value> <ns>`.
pub fn encode_snapshot(measurement: &str, snapshot: &crate::metric::VmSnapshot) -> String {
    let fields: Vec<String> = snapshot
        .metrics
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{measurement},host={} {} {}",
        snapshot
            .vm_id
            .replace(',', "\\,")
            .replace(' ', "\\ ")
            .replace('=', "\\="),
        fields.join(","),
        snapshot.time.0 as i128 * 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(
        options: LineProtocolOptions,
        payload: &str,
    ) -> Result<Vec<(String, i64, String, f64)>, DecodeError> {
        let mut out = StagedRows::new();
        LineProtocolDecoder::new(options).decode(payload.as_bytes(), Some(7), &mut out)?;
        Ok(out.to_owned_rows())
    }

    fn row(vm: &str, t: i64, m: &str, x: f64) -> (String, i64, String, f64) {
        (vm.into(), t, m.into(), x)
    }

    #[test]
    fn telegraf_lines_become_samples_with_renames() {
        let options = LineProtocolOptions {
            rename: [("mem_used_percent".to_string(), "memory_percent".to_string())].into(),
            ..Default::default()
        };
        let got = decode(
            options,
            "# telegraf\n\
             mem,host=web-1,region=eu used_percent=63.5,available=1042i,ok=true,note=\"a b,c\" 1793614500000000000\n\
             \n\
             cpu,cpu=cpu-total,host=web-2 usage_user=2.5e1\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                row("web-1", 1_793_614_500_000, "memory_percent", 63.5),
                row("web-1", 1_793_614_500_000, "mem_available", 1042.0),
                row("web-1", 1_793_614_500_000, "mem_ok", 1.0),
                row("web-2", 7, "cpu_usage_user", 25.0),
            ]
        );
    }

    #[test]
    fn escapes_and_precision() {
        let options = LineProtocolOptions {
            vm_tag: "vm id".into(),
            precision: Precision::S,
            ..Default::default()
        };
        let got = decode(options, r"my\ app,vm\ id=a\,b rt\=ms=1u 10").unwrap();
        assert_eq!(got, vec![row("a,b", 10_000, "my app_rt=ms", 1.0)]);
    }

    #[test]
    fn bad_lines_name_their_line_and_reason() {
        let err = |p: &str| decode(Default::default(), p).unwrap_err().reason;
        assert_eq!(
            err("mem,host=a used=1 1\nmem used=2 1"),
            "line 2: no `host` tag (the VM id) on measurement `mem`"
        );
        assert!(err("mem,host=a used=lots 1").contains("field `used`: `lots` is not a number"));
        assert!(err("mem,host=a").contains("no fields"));
        assert!(err("mem,host=a used=1 yesterday").contains("timestamp `yesterday`"));
        assert!(err("mem,host=a used 1").contains("has no `=`"));
        assert!(decode(Default::default(), "mem,host=a x=1 1").is_ok());
    }

    #[test]
    fn not_utf8_is_an_error() {
        let mut out = StagedRows::new();
        let e = LineProtocolDecoder::default()
            .decode(b"mem,host=\xff x=1", None, &mut out)
            .unwrap_err();
        assert!(e.reason.contains("not UTF-8 at byte 9"), "{e}");
    }

    #[test]
    fn encoded_snapshots_decode_back() {
        let snap = crate::metric::VmSnapshot {
            vm_id: "vm 1".into(),
            time: crate::EventTime(1500),
            metrics: [("cpu_percent".to_string(), 3.5)].into(),
        };
        let line = encode_snapshot("bellwether", &snap);
        let options = LineProtocolOptions {
            rename: [(
                "bellwether_cpu_percent".to_string(),
                "cpu_percent".to_string(),
            )]
            .into(),
            ..Default::default()
        };
        assert_eq!(
            decode(options, &line).unwrap(),
            vec![row("vm 1", 1500, "cpu_percent", 3.5)]
        );
    }
}
