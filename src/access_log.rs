//! The request log: one line per request, in the shape and on the stream of every other log
//! line (`[log] format`, stderr), written without going through tracing's formatter.
//!
//! Measured with `benches/instructions.py`, tracing's JSON formatter spent about 20 000
//! instructions on this line, half of what credgate adds to a proxied request: it visits every
//! field through `tracing-serde`, formats the time through `Display`, and writes through a
//! `fmt::Write` adaptor. The fields here are known in advance, so the line is put together in a
//! reused buffer and written with one `write` call. Whether it is written at all is still the
//! level filter's decision (`target: credgate::access`, `INFO`), `RUST_LOG` included.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;

use time::OffsetDateTime;

/// The target the request lines are logged under (what `RUST_LOG` filters on).
pub const TARGET: &str = "credgate::access";

/// How request lines are written; set once when logging starts (text until then).
static JSON: OnceLock<bool> = OnceLock::new();

/// Writes request lines as JSON objects (`[log] format = "json"`) rather than text.
pub fn use_json(json: bool) {
    let _ = JSON.set(json);
}

/// One request, as logged: never a query string, header, secret or token; the client id only
/// once credgate verified it.
pub struct Line<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// A route prefix or an endpoint name.
    pub route: &'a str,
    pub client_id: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    pub outcome: &'a str,
}

thread_local! {
    static BUFFER: RefCell<String> = RefCell::new(String::with_capacity(256));
}

/// Logs `line`, if the level filter lets `credgate::access` at `INFO` through.
pub fn write(line: &Line<'_>) {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    BUFFER.with_borrow_mut(|buffer| {
        buffer.clear();
        let now = OffsetDateTime::now_utc();
        if *JSON.get().unwrap_or(&false) {
            json(buffer, now, line);
        } else {
            text(buffer, now, line);
        }
        // One write per line, as tracing's writer does: lines from several threads never mix.
        let _ = std::io::stderr().write_all(buffer.as_bytes());
    });
}

/// `2026-11-24T07:33:14.282869Z`: microseconds, always six digits, as tracing prints times.
fn timestamp(buffer: &mut String, now: OffsetDateTime) {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    let _ = write!(buffer, "{}", now.format(&format).unwrap_or_default());
}

/// The shape of tracing's JSON lines: `timestamp`, `level`, `fields` (with `message`), `target`.
fn json(buffer: &mut String, now: OffsetDateTime, line: &Line<'_>) {
    buffer.push_str("{\"timestamp\":\"");
    timestamp(buffer, now);
    buffer.push_str("\",\"level\":\"INFO\",\"fields\":{\"message\":\"request\",\"method\":");
    quoted(buffer, line.method);
    buffer.push_str(",\"path\":");
    quoted(buffer, line.path);
    buffer.push_str(",\"route\":");
    quoted(buffer, line.route);
    buffer.push_str(",\"client_id\":");
    quoted(buffer, line.client_id);
    let _ = write!(
        buffer,
        ",\"status\":{},\"latency_ms\":{},\"outcome\":",
        line.status, line.latency_ms
    );
    quoted(buffer, line.outcome);
    buffer.push_str("},\"target\":\"");
    buffer.push_str(TARGET);
    buffer.push_str("\"}\n");
}

/// The shape of tracing's text lines: `<time>  INFO <target>: request key=value ...`.
fn text(buffer: &mut String, now: OffsetDateTime, line: &Line<'_>) {
    timestamp(buffer, now);
    let _ = writeln!(
        buffer,
        "  INFO {TARGET}: request method={} path={} route={} client_id={} status={} latency_ms={} outcome={}",
        line.method,
        line.path,
        line.route,
        line.client_id,
        line.status,
        line.latency_ms,
        line.outcome
    );
}

/// `text` as a JSON string (RFC 8259 §7 escapes).
fn quoted(buffer: &mut String, text: &str) {
    buffer.push('"');
    for c in text.chars() {
        match c {
            '"' => buffer.push_str("\\\""),
            '\\' => buffer.push_str("\\\\"),
            '\n' => buffer.push_str("\\n"),
            '\r' => buffer.push_str("\\r"),
            '\t' => buffer.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(buffer, "\\u{:04x}", c as u32);
            }
            c => buffer.push(c),
        }
    }
    buffer.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> Line<'static> {
        Line {
            method: "GET",
            path: "/api/\"x\"\\\n\u{1}é",
            route: "/api/",
            client_id: "app",
            status: 200,
            latency_ms: 0.25,
            outcome: "allowed",
        }
    }

    #[test]
    fn a_json_line_is_one_valid_object_with_every_field() {
        let mut buffer = String::new();
        json(&mut buffer, OffsetDateTime::UNIX_EPOCH, &line());
        assert!(buffer.ends_with("}\n") && buffer.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&buffer).unwrap();
        assert_eq!(value["timestamp"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], "credgate::access");
        let fields = &value["fields"];
        assert_eq!(fields["message"], "request");
        assert_eq!(fields["path"], "/api/\"x\"\\\n\u{1}é");
        assert_eq!(fields["status"], 200);
        assert_eq!(fields["latency_ms"], 0.25);
        assert_eq!(fields["outcome"], "allowed");
    }

    #[test]
    fn a_text_line_names_every_field() {
        let mut buffer = String::new();
        let mut plain = line();
        plain.path = "/api/x";
        text(&mut buffer, OffsetDateTime::UNIX_EPOCH, &plain);
        assert_eq!(
            buffer,
            "1970-01-01T00:00:00.000000Z  INFO credgate::access: request method=GET path=/api/x route=/api/ client_id=app status=200 latency_ms=0.25 outcome=allowed\n"
        );
    }
}
