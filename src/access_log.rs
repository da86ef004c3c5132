//! The request log: one line per request, in the shape and on the stream of every other log
//! line (`[log] format`, stderr), written without going through tracing's formatter.
//!
//! Measured with `benches/instructions.py`, tracing's JSON formatter spent about 20 000
//! instructions on this line, half of what credgate adds to a proxied request: it visits every
//! field through `tracing-serde`, formats the time through `Display`, and writes through a
//! `fmt::Write` adaptor. The fields here are known in advance, so the line is put together in a
//! reused buffer and handed whole to [`crate::log_writer`], which writes it off the event loop. Whether it is written at all is still the
//! level filter's decision (`target: credgate::access`, `INFO`), `RUST_LOG` included.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

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
    /// Logged in milliseconds, to the microsecond (`latency_ms=0.250`).
    pub latency: Duration,
    pub outcome: &'a str,
}

thread_local! {
    static BUFFER: RefCell<String> = RefCell::new(String::with_capacity(256));
    /// The last whole second this thread formatted, and its text up to the seconds.
    static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
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
        // One line in one piece, as tracing's lines: lines from several threads never mix.
        crate::log_writer::write(buffer.as_bytes());
    });
}

/// `2026-11-24T07:33:14.282869Z`: microseconds, always six digits, as tracing prints times.
/// The date and time up to the second change once a second, so each thread formats them once
/// and reuses the text.
fn timestamp(buffer: &mut String, now: OffsetDateTime) {
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != now.unix_timestamp() {
            let format =
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
            text.clear();
            let _ = write!(text, "{}", now.format(&format).unwrap_or_default());
            *second = now.unix_timestamp();
        }
        buffer.push_str(text);
    });
    // 1 000 000 + µs has seven digits: the last six are the zero-padded microseconds.
    buffer.push('.');
    buffer.push_str(&itoa::Buffer::new().format(1_000_000 + now.microsecond())[1..]);
    buffer.push('Z');
}

/// `latency` in milliseconds with three decimals, in integers (a float's shortest form costs
/// more to find than the rest of the line, and `itoa` less than `fmt`).
fn milliseconds(buffer: &mut String, latency: Duration) {
    let micros = latency.as_micros();
    buffer.push_str(itoa::Buffer::new().format(micros / 1000));
    buffer.push('.');
    buffer.push_str(&itoa::Buffer::new().format(1000 + micros % 1000)[1..]);
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
    buffer.push_str(",\"status\":");
    buffer.push_str(itoa::Buffer::new().format(line.status));
    buffer.push_str(",\"latency_ms\":");
    milliseconds(buffer, line.latency);
    buffer.push_str(",\"outcome\":");
    quoted(buffer, line.outcome);
    buffer.push_str("},\"target\":\"");
    buffer.push_str(TARGET);
    buffer.push_str("\"}\n");
}

/// The shape of tracing's text lines: `<time>  INFO <target>: request key=value ...`.
fn text(buffer: &mut String, now: OffsetDateTime, line: &Line<'_>) {
    timestamp(buffer, now);
    let _ = write!(
        buffer,
        "  INFO {TARGET}: request method={} path={} route={} client_id={} status={} latency_ms=",
        line.method, line.path, line.route, line.client_id, line.status,
    );
    milliseconds(buffer, line.latency);
    let _ = writeln!(buffer, " outcome={}", line.outcome);
}

/// `text` as a JSON string (RFC 8259 §7 escapes). Most fields need none: those are copied whole.
fn quoted(buffer: &mut String, text: &str) {
    buffer.push('"');
    let plain = |b: &u8| matches!(b, b' '..=b'~') && *b != b'"' && *b != b'\\';
    if text.as_bytes().iter().all(plain) {
        buffer.push_str(text);
        buffer.push('"');
        return;
    }
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
            latency: Duration::from_micros(250),
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
        assert!(buffer.contains("\"latency_ms\":0.250,"), "{buffer}");
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
            "1970-01-01T00:00:00.000000Z  INFO credgate::access: request method=GET path=/api/x route=/api/ client_id=app status=200 latency_ms=0.250 outcome=allowed\n"
        );
    }

    #[test]
    fn timestamps_follow_the_clock_across_seconds() {
        let at = |nanos: i64| {
            let mut buffer = String::new();
            let when = OffsetDateTime::UNIX_EPOCH + time::Duration::nanoseconds(nanos);
            timestamp(&mut buffer, when);
            buffer
        };
        assert_eq!(at(250_000_000), "1970-01-01T00:00:00.250000Z");
        assert_eq!(at(1_500_001_000), "1970-01-01T00:00:01.500001Z");
        assert_eq!(at(999_999_999), "1970-01-01T00:00:00.999999Z");
        assert_eq!(at(86_400_000_000_000), "1970-01-02T00:00:00.000000Z");
    }

    #[test]
    fn latencies_are_milliseconds_to_the_microsecond() {
        for (micros, text) in [(0, "0.000"), (5, "0.005"), (1_234_567, "1234.567")] {
            let mut buffer = String::new();
            milliseconds(&mut buffer, Duration::from_micros(micros));
            assert_eq!(buffer, text);
        }
    }

    #[test]
    fn plain_fields_are_copied_and_the_rest_escaped() {
        for (field, json) in [
            ("/api/x-1~", "\"/api/x-1~\""),
            ("a\u{7f}b", "\"a\\u007fb\""),
            ("é", "\"é\""),
            ("\\", "\"\\\\\""),
        ] {
            let mut buffer = String::new();
            quoted(&mut buffer, field);
            assert_eq!(buffer, json);
            assert_eq!(serde_json::from_str::<String>(&buffer).unwrap(), field);
        }
    }
}
