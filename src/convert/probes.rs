//! `healthcheck` as exec probes with its timings.
//!
//! Readiness is what compose's "healthy" means to dependents (a Service routes only to ready
//! pods); liveness restarts a container that stays unhealthy, which compose only reports. A
//! `start_period` becomes a startup probe: during it failures do not count, and the first
//! success ends it, as in compose.

use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use super::Ctx;
use crate::spec::Service;

// Docker's defaults for timings a healthcheck does not give.
const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(30);
const RETRIES: u64 = 3;
const START_INTERVAL: Duration = Duration::from_secs(5);

/// Whole seconds, rounded up: Kubernetes counts in seconds.
pub(super) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Whole seconds, at least one, as probe timings must be.
fn seconds(d: Duration) -> u64 {
    ceil_secs(d).max(1)
}

/// The probe command: `CMD` runs as given, `CMD-SHELL` through `/bin/sh -c` as docker does.
fn command(test: &[String]) -> Option<Vec<String>> {
    match test.split_first() {
        Some((first, rest)) if first == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        Some((first, rest)) if first == "CMD-SHELL" && !rest.is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
        }
        _ => None,
    }
}

/// Adds readiness, liveness and (with a start period) startup probes to the container.
pub(super) fn add(ctx: &mut Ctx<'_>, service: &Service, container: &mut Map<String, Json>) {
    let Some(hc) = &service.healthcheck else { return };
    if hc.is_disabled() {
        return;
    }
    let Some(cmd) = command(&hc.test) else {
        let msg = if hc.test.is_empty() {
            "no test: the image's HEALTHCHECK, which Kubernetes ignores, would run: no probe".to_owned()
        } else {
            format!("test {:?} is not CMD or CMD-SHELL: no probe", hc.test)
        };
        ctx.warn(&service.name, "healthcheck", msg);
        return;
    };
    let period = seconds(hc.interval.map_or(INTERVAL, |d| d.0));
    let timeout = seconds(hc.timeout.map_or(TIMEOUT, |d| d.0));
    let retries = hc.retries.unwrap_or(RETRIES).max(1);
    let probe = |period: u64, failures: u64| {
        json!({
            "exec": {"command": cmd},
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": failures,
        })
    };
    container.insert("readinessProbe".into(), probe(period, retries));
    container.insert("livenessProbe".into(), probe(period, retries));
    if let Some(start) = hc.start_period.map(|d| d.0).filter(|d| !d.is_zero()) {
        let every = seconds(hc.start_interval.map_or(START_INTERVAL, |d| d.0));
        // Enough tries to cover the start period, then the usual retries.
        let tries = seconds(start).div_ceil(every) + retries;
        container.insert("startupProbe".into(), probe(every, tries));
    }
}
