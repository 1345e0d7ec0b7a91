//! Health checks: the probe a service (or its image) declares, run in the container as an exec
//! process, and the state docker derives from the results (starting, healthy, unhealthy).
//!
//! Timings are docker's (interval 30 s, timeout 30 s, retries 3, start period 0, start interval
//! 5 s) with one change, so that a dependent never waits a whole interval for its dependency:
//! **while the container is `starting`, the first probe runs at once and the next ones after
//! 50 ms, 100 ms, then every 200 ms (or the start interval, when shorter)**; from the first success on, every
//! `interval`. Failures count as docker counts them: none inside the start period, and while
//! starting at most one per `interval` since the start (docker's own probe times), so early
//! probing finds a healthy container sooner without declaring a slow one unhealthy sooner.

use std::time::Duration;

use crate::image::config::HealthConfig;
use crate::spec::model::Healthcheck;

/// docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u64 = 3;
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
/// The first pause between probes of a starting container.
const FIRST_STARTING_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between probes of a starting container: a dependent learns that its
/// dependency became healthy at most this long (plus one probe) after it did.
const MAX_STARTING_PAUSE: Duration = Duration::from_millis(200);
/// docker keeps this much of a probe's output.
pub const OUTPUT_LIMIT: usize = 4096;

/// A service's health check, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPlan {
    /// The probe's argv (`CMD-SHELL` becomes `/bin/sh -c`).
    pub argv: Vec<String>,
    /// Between probes once healthy or past the start period.
    pub interval: Duration,
    /// A probe that runs longer fails.
    pub timeout: Duration,
    /// Consecutive failures that make the container unhealthy.
    pub retries: u64,
    /// Failures before this do not count.
    pub start_period: Duration,
    /// The longest pause between probes while starting.
    pub start_interval: Duration,
}

/// The service's check over the image's: the service's fields win one by one, a `NONE` test or
/// `disable` turns checking off, and no test at all means none.
pub fn plan(service: Option<&Healthcheck>, image: Option<&HealthConfig>) -> Option<HealthPlan> {
    if service.is_some_and(Healthcheck::is_disabled) {
        return None;
    }
    let test = service.map(|s| s.test.clone()).filter(|t| !t.is_empty()).or_else(|| image.map(|i| i.test.clone()))?;
    let argv = match test.split_first() {
        Some((kind, rest)) if kind == "CMD" => rest.to_vec(),
        Some((kind, rest)) if kind == "CMD-SHELL" => {
            vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
        }
        Some((kind, _)) if kind == "NONE" => return None,
        // A bare string is a shell command (compose's short form).
        Some(_) => vec!["/bin/sh".into(), "-c".into(), test.join(" ")],
        None => return None,
    };
    if argv.is_empty() {
        return None;
    }
    let nanos = |v: Option<i64>| v.filter(|n| *n > 0).and_then(|n| u64::try_from(n).ok()).map(Duration::from_nanos);
    let pick = |own: Option<Duration>, image: Option<i64>, default: Duration| {
        own.filter(|d| !d.is_zero()).or_else(|| nanos(image)).unwrap_or(default)
    };
    Some(HealthPlan {
        argv,
        interval: pick(service.and_then(|s| s.interval).map(|d| d.0), image.and_then(|i| i.interval), DEFAULT_INTERVAL),
        timeout: pick(service.and_then(|s| s.timeout).map(|d| d.0), image.and_then(|i| i.timeout), DEFAULT_TIMEOUT),
        retries: service
            .and_then(|s| s.retries)
            .or_else(|| image.and_then(|i| i.retries).and_then(|r| u64::try_from(r).ok()))
            .filter(|r| *r > 0)
            .unwrap_or(DEFAULT_RETRIES),
        start_period: pick(
            service.and_then(|s| s.start_period).map(|d| d.0),
            image.and_then(|i| i.start_period),
            Duration::ZERO,
        ),
        start_interval: pick(
            service.and_then(|s| s.start_interval).map(|d| d.0),
            image.and_then(|i| i.start_interval),
            DEFAULT_START_INTERVAL,
        ),
    })
}

/// docker's health states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No result that counts yet.
    Starting,
    /// The last probe passed.
    Healthy,
    /// `retries` probes in a row failed after the start period.
    Unhealthy,
}

/// The state machine of one container's checks.
#[derive(Debug, Clone)]
pub struct Tracker {
    plan: HealthPlan,
    /// Current state.
    pub health: Health,
    /// Consecutive failures that counted.
    pub failing_streak: u64,
    /// The last probe's output (up to [`OUTPUT_LIMIT`] bytes).
    pub last_output: String,
    starting_pause: Duration,
}

impl Tracker {
    /// A container that just started.
    pub fn new(plan: HealthPlan) -> Tracker {
        Tracker {
            plan,
            health: Health::Starting,
            failing_streak: 0,
            last_output: String::new(),
            starting_pause: FIRST_STARTING_PAUSE,
        }
    }

    /// The check.
    pub fn plan(&self) -> &HealthPlan {
        &self.plan
    }

    /// Whether a failure of a starting container counts: after the start period, and no more
    /// often than docker would have probed (every `interval` from the start), so that probing
    /// early and often finds a healthy container sooner without making a slow one unhealthy
    /// sooner than docker would.
    fn counts_while_starting(&self, since_start: Duration) -> bool {
        let due = self.plan.interval.saturating_mul(u32::try_from(self.failing_streak + 1).unwrap_or(u32::MAX));
        since_start >= self.plan.start_period && since_start >= due
    }

    /// Records a probe's result, `since_start` after the container started, and returns how long
    /// to wait before the next one.
    pub fn record(&mut self, passed: bool, output: String, since_start: Duration) -> Duration {
        self.last_output = output;
        if passed {
            self.failing_streak = 0;
            self.health = Health::Healthy;
        } else if self.health == Health::Healthy || self.counts_while_starting(since_start) {
            self.failing_streak += 1;
            if self.failing_streak >= self.plan.retries {
                self.health = Health::Unhealthy;
            }
        }
        if self.health == Health::Starting {
            let pause = self.starting_pause.min(self.plan.start_interval);
            self.starting_pause = (self.starting_pause * 2).min(MAX_STARTING_PAUSE);
            pause
        } else {
            self.plan.interval
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(test: &[&str]) -> Healthcheck {
        Healthcheck { test: test.iter().map(|s| s.to_string()).collect(), ..Healthcheck::default() }
    }

    #[test]
    fn the_service_wins_field_by_field_and_none_turns_the_image_off() {
        let image = HealthConfig {
            test: vec!["CMD-SHELL".into(), "pg_isready".into()],
            interval: Some(2_000_000_000),
            retries: Some(5),
            ..HealthConfig::default()
        };
        let own = Healthcheck {
            interval: Some(crate::spec::model::Duration(Duration::from_secs(1))),
            ..Healthcheck::default()
        };
        let plan = plan(Some(&own), Some(&image)).expect("the image's test");
        assert_eq!(plan.argv, ["/bin/sh", "-c", "pg_isready"]);
        assert_eq!(plan.interval, Duration::from_secs(1));
        assert_eq!(plan.retries, 5);
        assert_eq!(plan.timeout, DEFAULT_TIMEOUT);
        assert_eq!(super::plan(Some(&check(&["NONE"])), Some(&image)), None);
        let disabled = Healthcheck { disable: true, ..Healthcheck::default() };
        assert_eq!(super::plan(Some(&disabled), Some(&image)), None);
        assert_eq!(super::plan(None, None), None);
        assert_eq!(super::plan(Some(&check(&["CMD", "true"])), None).expect("cmd").argv, ["true"]);
    }

    #[test]
    fn a_starting_container_is_probed_at_once_then_quickly_and_then_every_interval() {
        let own = Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            start_period: Some(crate::spec::model::Duration(Duration::from_secs(10))),
            ..Healthcheck::default()
        };
        let mut tracker = Tracker::new(plan(Some(&own), None).expect("plan"));
        let pauses: Vec<_> = (0..8).map(|_| tracker.record(false, String::new(), Duration::ZERO).as_millis()).collect();
        assert_eq!(pauses, [50, 100, 200, 200, 200, 200, 200, 200], "at most 200 ms apart");
        assert_eq!(tracker.health, Health::Starting);
        assert_eq!(tracker.record(true, "ok".into(), Duration::from_secs(1)), DEFAULT_INTERVAL);
        assert_eq!(tracker.health, Health::Healthy);
        let mut tracker = Tracker::new(plan(Some(&check(&["CMD", "true"])), None).expect("plan"));
        for _ in 0..10 {
            tracker.record(false, String::new(), Duration::from_secs(1));
        }
        assert_eq!(tracker.health, Health::Starting, "early probes do not count: docker would not have probed yet");
        for second in [30, 60, 90] {
            tracker.record(false, String::new(), Duration::from_secs(second));
        }
        assert_eq!(tracker.health, Health::Unhealthy, "one failure per interval counts, as in docker");
    }

    #[test]
    fn failures_inside_the_start_period_do_not_count() {
        let own = Healthcheck {
            test: vec!["CMD".into(), "false".into()],
            start_period: Some(crate::spec::model::Duration(Duration::from_secs(10))),
            retries: Some(1),
            ..Healthcheck::default()
        };
        let mut tracker = Tracker::new(plan(Some(&own), None).expect("plan"));
        tracker.record(false, String::new(), Duration::from_secs(1));
        assert_eq!((tracker.health, tracker.failing_streak), (Health::Starting, 0));
        tracker.record(false, "no".into(), Duration::from_secs(31));
        assert_eq!(tracker.health, Health::Unhealthy);
        assert_eq!(tracker.last_output, "no");
    }
}
