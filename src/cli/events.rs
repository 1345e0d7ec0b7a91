//! `berth events [SERVICE…]`: the project's container events as they happen, followed from the
//! supervisor's events file (see [`crate::supervisor::events`]) until Ctrl-C, across `down`
//! and the next `up`. Printed as `docker compose events` prints them: plain,
//! `2026-11-23 10:00:00.000000 container start ID (image=…, name=…)` in local time, or with
//! `--json` one object per line, `{"action":…,"attributes":{…},"id":…,"service":…,"time":…,
//! "type":"container"}` (keys in Go's map order, the time in RFC 3339 with nanoseconds).

use std::time::Duration;

use anyhow::anyhow;

use super::{EXIT_INVALID, Failure, GlobalOptions, emit, load_project};
use crate::supervisor::events::{Event, Follower};
use crate::supervisor::{self, status::now_nanos};

/// `berth events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// One JSON object per event.
    #[arg(long)]
    pub json: bool,
    /// Also the events kept since this time: Unix seconds (`1700000000.5`) or a duration ago
    /// (`10m`).
    #[arg(long)]
    pub since: Option<String>,
    /// Stop at this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only these services.
    pub services: Vec<String>,
}

pub(super) fn events(global: &GlobalOptions, args: &EventsArgs) -> Result<(), Failure> {
    let loaded = load_project(&global.project_options())?;
    let project = &loaded.project;
    let invalid = |e: String| Failure { code: EXIT_INVALID, error: anyhow!(e) };
    if let Some(unknown) = args.services.iter().find(|s| !project.services.contains_key(*s)) {
        return Err(invalid(format!("no such service: {unknown:?}")));
    }
    let since = args.since.as_deref().map(|t| parse_time("--since", t)).transpose().map_err(invalid)?;
    let until = args.until.as_deref().map(|t| parse_time("--until", t)).transpose().map_err(invalid)?;
    let dir = supervisor::project_dir(&global.state_root(), &project.name);
    let mut follower = if since.is_some() { Follower::from_start(&dir) } else { Follower::from_end(&dir) };
    loop {
        let mut out = String::new();
        for event in follower.poll() {
            if until.is_some_and(|u| event.time > u) {
                emit(&out)?;
                return Ok(());
            }
            let wanted = args.services.is_empty() || args.services.contains(&event.service);
            if wanted && since.is_none_or(|s| event.time >= s) {
                out.push_str(&if args.json { json(&event) } else { plain(&event) });
                out.push('\n');
            }
        }
        if !out.is_empty() {
            emit(&out)?;
        }
        if until.is_some_and(|u| now_nanos() > u) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// compose's plain line (attributes in name order).
fn plain(event: &Event) -> String {
    let attributes: Vec<String> = event.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{} container {} {} ({})",
        local_time(event.time).map(|t| t.plain()).unwrap_or_default(),
        event.action,
        event.id,
        attributes.join(", ")
    )
}

/// compose's JSON object, keys sorted as Go's encoder sorts a map's.
fn json(event: &Event) -> String {
    let value = serde_json::json!({
        "action": event.action,
        "attributes": event.attributes,
        "id": event.id,
        "service": event.service,
        "time": local_time(event.time).map(|t| t.rfc3339()).unwrap_or_default(),
        "type": "container",
    });
    value.to_string()
}

/// A moment in the local time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LocalTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    /// Seconds east of UTC.
    offset: i64,
}

impl LocalTime {
    /// Go's `2006-01-02 15:04:05.000000`.
    fn plain(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanos / 1000
        )
    }

    /// Go's RFC 3339 with nanoseconds (`time.RFC3339Nano`: trailing zeros of the fraction
    /// dropped, `Z` for UTC).
    fn rfc3339(&self) -> String {
        let fraction = format!("{:09}", self.nanos);
        let fraction = fraction.trim_end_matches('0');
        let fraction = if fraction.is_empty() { String::new() } else { format!(".{fraction}") };
        let zone = if self.offset == 0 {
            "Z".to_owned()
        } else {
            let sign = if self.offset < 0 { '-' } else { '+' };
            let minutes = self.offset.abs() / 60;
            format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}{zone}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Unix nanoseconds in the local time zone.
fn local_time(nanos: u128) -> Option<LocalTime> {
    let seconds = u64::try_from(nanos / 1_000_000_000).ok()?;
    let tm = super::procs::local_time(seconds)?;
    let field = |v: libc::c_int| u32::try_from(v).ok();
    Some(LocalTime {
        year: i64::from(tm.tm_year) + 1900,
        month: field(tm.tm_mon)? + 1,
        day: field(tm.tm_mday)?,
        hour: field(tm.tm_hour)?,
        minute: field(tm.tm_min)?,
        second: field(tm.tm_sec)?,
        nanos: u32::try_from(nanos % 1_000_000_000).ok()?,
        offset: tm.tm_gmtoff,
    })
}

/// `--since`/`--until`: Unix seconds (a fraction allowed), or a duration before now.
fn parse_time(flag: &str, text: &str) -> Result<u128, String> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && fraction.len() <= 9
    {
        let seconds: u128 = whole.parse().map_err(|_| format!("{flag} {text:?}: out of range"))?;
        let nanos: u128 = format!("{fraction:0<9}").parse().unwrap_or(0);
        return Ok(seconds * 1_000_000_000 + nanos);
    }
    let ago = crate::spec::units::parse_duration(text).map_err(|e| format!("{flag} {text:?}: {e}"))?;
    Ok(now_nanos().saturating_sub(ago.as_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_go_prints_them() {
        let t =
            LocalTime { year: 2026, month: 11, day: 23, hour: 10, minute: 0, second: 5, nanos: 120_000_000, offset: 0 };
        assert_eq!(t.plain(), "2026-11-23 10:00:05.120000");
        assert_eq!(t.rfc3339(), "2026-11-23T10:00:05.12Z");
        let whole = LocalTime { nanos: 0, offset: 5400, ..t.clone() };
        assert_eq!(whole.rfc3339(), "2026-11-23T10:00:05+01:30");
        assert_eq!(LocalTime { offset: -18000, ..t }.rfc3339(), "2026-11-23T10:00:05.12-05:00");
    }

    #[test]
    fn events_print_as_compose_prints_them() {
        let event = Event {
            time: 1_795_411_671_655_240_850,
            action: "die".into(),
            id: "abc".into(),
            service: "job".into(),
            attributes: [("exitCode", "3"), ("name", "p-job-1"), ("image", "busybox")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        let line = plain(&event);
        assert!(line.ends_with(" container die abc (exitCode=3, image=busybox, name=p-job-1)"), "{line}");
        let object = json(&event);
        assert!(object.starts_with(r#"{"action":"die","attributes":{"exitCode":"3","image":"busybox","name":"p-job-1"},"id":"abc","service":"job","time":""#), "{object}");
        assert!(object.ends_with(r#","type":"container"}"#), "{object}");
    }

    #[test]
    fn since_takes_unix_seconds_or_a_duration() {
        assert_eq!(parse_time("--since", "10"), Ok(10_000_000_000));
        assert_eq!(parse_time("--since", "10.5"), Ok(10_500_000_000));
        assert!(parse_time("--since", "1m").is_ok_and(|t| t > 0));
        assert!(parse_time("--since", "soon").is_err());
    }
}
