//! `berth stats --total`: per-service sums under docker's per-container rows (compose users ask
//! for aggregated stats, docker/compose#12321). A service's row has `total` in the ID column and
//! the service's name in NAME; its CPU % and PIDs are the sums of its containers', its memory
//! the sum of their usage over the sum of their limits (at most the host's memory, which is
//! the limit of a container without one).

use std::collections::BTreeMap;

use super::format::{self, Units};

/// One container's reading, as the row shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Reading {
    /// CPU %, 100 being one core.
    pub cpu: f64,
    /// Memory used (without inactive page cache), bytes.
    pub used: u64,
    /// Its memory limit, bytes.
    pub limit: u64,
    /// Processes.
    pub pids: u64,
}

impl Reading {
    /// docker's row: `ID NAME CPU% USAGE / LIMIT MEM% PIDS`.
    pub(super) fn row(&self, id: &str, name: &str) -> String {
        let mem_percent = if self.limit == 0 { 0.0 } else { self.used as f64 * 100.0 / self.limit as f64 };
        let cpu = format!("{:.2}%", self.cpu);
        let memory =
            format!("{} / {}", format::size(self.used, Units::Binary), format::size(self.limit, Units::Binary));
        let mem_percent = format!("{mem_percent:.2}%");
        format!("{id:<14} {name:<20} {cpu:<9} {memory:<21} {mem_percent:<9} {}\n", self.pids)
    }
}

/// Sums by service.
#[derive(Debug, Default)]
pub(super) struct Totals {
    services: BTreeMap<String, Reading>,
}

impl Totals {
    /// Adds a container of `service`.
    pub(super) fn add(&mut self, service: &str, reading: &Reading) {
        let sum = self.services.entry(service.to_owned()).or_default();
        sum.cpu += reading.cpu;
        sum.used += reading.used;
        sum.limit += reading.limit;
        sum.pids += reading.pids;
    }

    /// One row per service, by name; limits capped at `host_memory` (when known).
    pub(super) fn rows(&self, host_memory: u64) -> String {
        self.services
            .iter()
            .map(|(service, sum)| {
                let limit = if host_memory == 0 { sum.limit } else { sum.limit.min(host_memory) };
                Reading { limit, ..sum.clone() }.row("total", service)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_row_sums_its_containers() {
        let mut totals = Totals::default();
        let gib = 1024 * 1024 * 1024;
        totals.add("web", &Reading { cpu: 1.5, used: 10 * 1024 * 1024, limit: 8 * gib, pids: 2 });
        totals.add("web", &Reading { cpu: 0.25, used: 6 * 1024 * 1024, limit: 8 * gib, pids: 3 });
        totals.add("db", &Reading { cpu: 0.0, used: 512 * 1024 * 1024, limit: gib, pids: 1 });
        let rows = totals.rows(8 * gib);
        let lines: Vec<&str> = rows.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], "total          db                   0.00%     512MiB / 1GiB         50.00%    1");
        assert_eq!(lines[1], "total          web                  1.75%     16MiB / 8GiB          0.20%     5");
    }
}
