//! `ps -ef` lines for a process, read from /proc, as `docker top` shows them: UID, PID, PPID,
//! C, STIME, TTY, TIME, CMD, seen from the host (host user names and PIDs).

/// The column headers.
const HEADERS: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];

/// One process's row; `None` when it exited meanwhile.
pub(super) fn ps_row(pid: i32) -> Option<[String; 8]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ticks = clock_ticks();
    let uptime = uptime_centiseconds(&std::fs::read_to_string("/proc/uptime").ok()?)?;
    let fields = StatFields::parse(&stat)?;
    let uid: u32 = status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()?;

    let cpu_seconds = (fields.utime + fields.stime) / ticks;
    // ps's C: CPU time over time since the process started, in percent, rounded down.
    let cpu_cs = (fields.utime + fields.stime) * 100 / ticks;
    let running_cs = uptime.saturating_sub(fields.start_ticks * 100 / ticks);
    let c = cpu_cs.saturating_mul(100).checked_div(running_cs).unwrap_or(0);
    let started_unix = boot_time(uptime) + fields.start_ticks / ticks;
    let cmd = if cmdline.is_empty() {
        format!("[{}]", fields.comm)
    } else {
        let mut text: String = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        text.truncate(text.trim_end().len());
        text
    };
    Some([
        user_name(uid),
        pid.to_string(),
        fields.ppid.to_string(),
        c.to_string(),
        start_time(started_unix),
        tty_name(fields.tty_nr),
        cpu_time(cpu_seconds),
        cmd,
    ])
}

/// The rows under the headers, as `ps` aligns them.
pub(super) fn table(rows: &[[String; 8]]) -> String {
    let mut all = vec![HEADERS.map(str::to_owned)];
    all.extend(rows.iter().cloned());
    super::format::table(&all)
}

/// The /proc/PID/stat fields `ps -ef` needs.
#[derive(Debug, PartialEq, Eq)]
struct StatFields {
    comm: String,
    ppid: i32,
    tty_nr: u64,
    utime: u64,
    stime: u64,
    start_ticks: u64,
}

impl StatFields {
    fn parse(stat: &str) -> Option<Self> {
        // The command (field 2) may hold spaces and parentheses: the rest starts after the last ')'.
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat.get(open + 1..close)?.to_owned();
        let rest: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
        // rest[0] is field 3 (state).
        let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        Some(Self {
            comm,
            ppid: rest.get(1)?.parse().ok()?,
            tty_nr: field(7)?,
            utime: field(14)?,
            stime: field(15)?,
            start_ticks: field(22)?,
        })
    }
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(100)
}

/// The first field of /proc/uptime (`14712.53`) in hundredths of a second.
fn uptime_centiseconds(text: &str) -> Option<u64> {
    let (seconds, fraction) = text.split_whitespace().next()?.split_once('.')?;
    Some(seconds.parse::<u64>().ok()? * 100 + fraction.get(..2)?.parse::<u64>().ok()?)
}

/// The Unix time the machine booted, from the current time and its uptime.
fn boot_time(uptime_cs: u64) -> u64 {
    crate::runtime::state::now().saturating_sub(uptime_cs / 100)
}

/// The host's name for `uid`, or the number.
fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// `pts/N`, `ttyN`, or `?` from the kernel's tty_nr encoding.
fn tty_name(tty_nr: u64) -> String {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        0 => "?".into(),
        4 => format!("tty{minor}"),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        _ => "?".into(),
    }
}

/// `HH:MM:SS`, with a `D-` prefix past a day, as ps prints TIME.
fn cpu_time(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let clock = format!("{:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    if days > 0 { format!("{days}-{clock}") } else { clock }
}

/// `HH:MM` (local time) for a process started today, else `MonDD`, as ps prints STIME.
fn start_time(unix: u64) -> String {
    let (Some(then), Some(today)) = (local_time(unix), local_time(crate::runtime::state::now())) else {
        return "?".into();
    };
    if (then.tm_year, then.tm_yday) == (today.tm_year, today.tm_yday) {
        format!("{:02}:{:02}", then.tm_hour, then.tm_min)
    } else {
        const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        format!("{}{:02}", MONTHS[then.tm_mon.clamp(0, 11) as usize], then.tm_mday)
    }
}

pub(super) fn local_time(unix: u64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(unix).ok()?;
    // SAFETY: an all-zero tm is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `t` and writes only `tm`, both valid for the call.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    (!r.is_null()).then_some(tm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_a_command_with_spaces_and_parentheses() {
        let stat =
            "4242 (my (odd) cmd) S 4200 4242 4242 34817 4242 4194560 100 0 0 0 250 50 0 0 20 0 1 0 123456 1000 10 0 0";
        let f = StatFields::parse(stat).unwrap();
        assert_eq!(
            f,
            StatFields {
                comm: "my (odd) cmd".into(),
                ppid: 4200,
                tty_nr: 34817,
                utime: 250,
                stime: 50,
                start_ticks: 123456
            }
        );
        assert_eq!(tty_name(f.tty_nr), "pts/1");
        assert_eq!(tty_name(0), "?");
        assert_eq!(uptime_centiseconds("14712.53 29000.10\n"), Some(1_471_253));
    }

    #[test]
    fn cpu_time_and_the_table_read_like_ps() {
        assert_eq!(cpu_time(0), "00:00:00");
        assert_eq!(cpu_time(3725), "01:02:05");
        assert_eq!(cpu_time(90_061), "1-01:01:01");
        let rows = [[
            "root".to_string(),
            "7".into(),
            "1".into(),
            "0".into(),
            "10:00".into(),
            "?".into(),
            "00:00:00".into(),
            "sleep 100".into(),
        ]];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("UID    PID   PPID   C"), "{text}");
        assert!(lines[1].ends_with("   sleep 100"), "{text}");
    }

    #[test]
    fn this_process_has_a_row() {
        let row = ps_row(std::process::id() as i32).unwrap();
        assert_eq!(row[1], std::process::id().to_string());
        assert!(!row[7].is_empty());
    }
}
