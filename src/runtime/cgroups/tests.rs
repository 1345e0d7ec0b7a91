//! Tests on directories laid out like a cgroup2 mount (no root needed), and of the pure parts.

use std::fs;
use std::path::{Path, PathBuf};

use libcgroups::common::CgroupManager;
use tempfile::TempDir;

use super::*;

const MIB: u64 = 1 << 20;

/// Files the kernel would show in a v2 leaf with the cpu, memory, pids and cpuset controllers;
/// limit files start empty because libcgroups writes without truncating.
const LEAF_FILES: &[&str] = &[
    "cgroup.procs",
    "cgroup.events",
    "cgroup.freeze",
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "cpu.max",
    "cpu.weight",
    "pids.max",
    "cpuset.cpus",
    "cpuset.mems",
];

/// A fake cgroup2 root offering `controllers`, with `berth/<id>` made when `leaf` is true.
fn fake_root(controllers: &str, id: &str, leaf: bool) -> TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("cgroup.controllers"), format!("{controllers}\n")).unwrap();
    fs::write(root.path().join("cgroup.subtree_control"), "").unwrap();
    fs::create_dir(root.path().join(BERTH_DIR)).unwrap();
    fs::write(root.path().join(BERTH_DIR).join("cgroup.subtree_control"), "").unwrap();
    if leaf {
        let dir = root.path().join(BERTH_DIR).join(id);
        fs::create_dir(&dir).unwrap();
        for file in LEAF_FILES {
            fs::write(dir.join(file), "").unwrap();
        }
    }
    root
}

fn leaf(root: &TempDir, id: &str) -> PathBuf {
    root.path().join(BERTH_DIR).join(id)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn all_limits() -> Resources {
    Resources {
        memory_limit: Some(64 * MIB),
        memory_reservation: Some(32 * MIB),
        memory_swap: Some(128 * MIB as i64),
        cpu_quota: Some(50_000),
        cpu_period: None,
        cpu_shares: Some(512),
        cpuset_cpus: Some("0-1".to_owned()),
        cpuset_mems: Some("0".to_owned()),
        pids_limit: Some(20),
    }
}

#[test]
fn v2_limits_are_written_in_libcgroups_terms() {
    let root = fake_root("cpu memory pids cpuset", "c1", true);
    let cgroup = ContainerCgroup::create_v2_at(root.path(), "c1", &all_limits()).unwrap();
    let dir = leaf(&root, "c1");
    assert_eq!(cgroup.dirs(), vec![dir.clone()]);
    assert_eq!(cgroup.mode(), CgroupMode::V2);
    assert_eq!(read(&dir.join("memory.max")), (64 * MIB).to_string());
    // mem_reservation is memory.low, as runc and docker map it.
    assert_eq!(read(&dir.join("memory.low")), (32 * MIB).to_string());
    // v2 limits swap alone: memory+swap 128 MiB less 64 MiB memory.
    assert_eq!(read(&dir.join("memory.swap.max")), (64 * MIB).to_string());
    // The period defaults to 100000 when only a quota is given.
    assert_eq!(read(&dir.join("cpu.max")), "50000 100000");
    // crun's shares-to-weight mapping: 512 shares is weight 59 (1024 would be 100).
    assert_eq!(read(&dir.join("cpu.weight")), "59");
    assert_eq!(read(&dir.join("pids.max")), "20");
    assert_eq!(read(&dir.join("cpuset.cpus")), "0-1");
    assert_eq!(read(&dir.join("cpuset.mems")), "0");
    // Controllers were handed down through `berth` (each write replaces the fake file).
    assert!(read(&root.path().join(BERTH_DIR).join("cgroup.subtree_control")).starts_with('+'));
    assert!(read(&root.path().join("cgroup.subtree_control")).starts_with('+'));
}

#[test]
fn v2_swap_limit_is_skipped_without_swap_accounting() {
    let root = fake_root("cpu memory pids cpuset", "c1", true);
    let dir = leaf(&root, "c1");
    fs::remove_file(dir.join("memory.swap.max")).unwrap();
    let resources =
        Resources { memory_limit: Some(64 * MIB), memory_swap: Some(128 * MIB as i64), ..Resources::default() };
    ContainerCgroup::create_v2_at(root.path(), "c1", &resources).unwrap();
    assert_eq!(read(&dir.join("memory.max")), (64 * MIB).to_string());
    assert!(!dir.join("memory.swap.max").exists());
}

#[test]
fn v2_limits_of_an_undelegated_controller_are_dropped_and_the_rest_applied() {
    // The tree above offers no memory controller (podman's case: warn and run).
    let root = fake_root("cpu pids", "c1", true);
    let dir = leaf(&root, "c1");
    let resources = Resources {
        memory_limit: Some(64 * MIB),
        memory_reservation: Some(32 * MIB),
        pids_limit: Some(20),
        ..Resources::default()
    };
    ContainerCgroup::create_v2_at(root.path(), "c1", &resources).unwrap();
    assert_eq!(read(&dir.join("pids.max")), "20");
    assert_eq!(read(&dir.join("memory.max")), "");
    assert_eq!(read(&dir.join("memory.low")), "");
}

#[test]
fn undelegated_limits_get_one_warning_per_compose_key() {
    let resources = Resources {
        memory_limit: Some(64 * MIB),
        memory_reservation: Some(32 * MIB),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        pids_limit: Some(20),
        ..Resources::default()
    };
    let plan = resources::plan(&resources).unwrap();
    let missing = resources::missing(&plan.needs, |c| c == "pids");
    let messages = undelegated::messages(Path::new("/sys/fs/cgroup"), &missing);
    // cpus sets both quota and period: one key, one warning.
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(
        messages[0].starts_with("mem_limit is not applied: the memory controller is not delegated to /sys/fs/cgroup")
    );
    assert!(messages[0].contains("/sys/fs/cgroup/cgroup.controllers"), "{}", messages[0]);
    assert!(messages[1].starts_with("mem_reservation is not applied: the memory controller"));
    assert!(messages[2].starts_with("cpus (cpu_quota, cpu_period) is not applied: the cpu controller"));
    assert!(undelegated::messages(Path::new("/x"), &[]).is_empty());
}

#[test]
fn v2_failure_to_delegate_a_needed_controller_names_the_file() {
    let root = fake_root("cpu memory pids", "c1", true);
    fs::remove_file(root.path().join(BERTH_DIR).join("cgroup.subtree_control")).unwrap();
    let resources = Resources { pids_limit: Some(5), ..Resources::default() };
    let err = ContainerCgroup::create_v2_at(root.path(), "c1", &resources).unwrap_err().to_string();
    assert!(err.starts_with("write "), "{err}");
    assert!(err.contains("berth/cgroup.subtree_control"), "{err}");
}

#[test]
fn v2_root_without_cgroup_controllers_is_not_a_cgroup2_tree() {
    let root = tempfile::tempdir().unwrap();
    let err = ContainerCgroup::create_v2_at(root.path(), "c1", &Resources::default()).unwrap_err();
    assert!(matches!(err, CgroupError::NotCgroup2 { .. }), "{err}");
}

#[test]
fn v2_open_finds_only_existing_cgroups_and_add_process_writes_procs() {
    let root = fake_root("cpu memory pids", "c1", true);
    assert!(ContainerCgroup::open_v2_at(root.path(), "c2").unwrap().is_none());
    let cgroup = ContainerCgroup::open_v2_at(root.path(), "c1").unwrap().unwrap();
    assert_eq!(cgroup.id(), "c1");
    let procs = leaf(&root, "c1").join("cgroup.procs");
    assert_eq!(cgroup.procs_files(), vec![procs.clone()]);
    cgroup.add_process(4242).unwrap();
    assert_eq!(read(&procs), "4242");
    fs::write(&procs, "17\n4242\n").unwrap();
    assert_eq!(cgroup.pids().unwrap(), vec![17, 4242]);
}

#[test]
fn v2_frozen_state_comes_from_cgroup_events() {
    let root = fake_root("cpu memory pids", "c1", true);
    let cgroup = ContainerCgroup::open_v2_at(root.path(), "c1").unwrap().unwrap();
    let events = leaf(&root, "c1").join("cgroup.events");
    fs::write(&events, "populated 1\nfrozen 1\n").unwrap();
    assert!(cgroup.is_frozen().unwrap());
    fs::write(&events, "populated 1\nfrozen 0\n").unwrap();
    assert!(!cgroup.is_frozen().unwrap());
}

/// Every file libcgroups' v2 statistics read, with known figures.
fn lay_out_v2_stats(dir: &Path) {
    let psi = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    let files = [
        (
            "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
        ),
        ("cpu.pressure", psi),
        ("memory.current", "4096\n"),
        ("memory.max", "67108864\n"),
        ("memory.peak", "8192\n"),
        ("memory.events", "low 0\nhigh 0\nmax 7\noom 3\noom_kill 3\noom_group_kill 0\n"),
        ("memory.stat", "anon 1024\nfile 2048\ninactive_file 512\n"),
        ("memory.pressure", psi),
        ("memory.swap.current", "0\n"),
        ("memory.swap.max", "max\n"),
        ("memory.swap.events", "high 0\nmax 0\nfail 0\n"),
        ("pids.current", "2\n"),
        ("pids.max", "20\n"),
        ("io.stat", ""),
        ("io.pressure", psi),
    ];
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
    for size in libcgroups::stats::supported_page_sizes().unwrap_or_default() {
        fs::write(dir.join(format!("hugetlb.{size}.current")), "0\n").unwrap();
        fs::write(dir.join(format!("hugetlb.{size}.events")), "max 0\n").unwrap();
    }
}

fn expected_v2_stats() -> CgroupStats {
    CgroupStats {
        cpu_total_ns: 1_500_000,
        cpu_user_ns: 1_000_000,
        cpu_system_ns: 500_000,
        memory_usage: 4096,
        memory_max_usage: 8192,
        memory_limit: Some(64 * MIB),
        memory_inactive_file: 512,
        pids_current: 2,
        pids_limit: Some(20),
        oom_kills: 3,
    }
}

#[test]
fn v2_stats_through_libcgroups() {
    let root = fake_root("cpu memory pids", "c1", true);
    let dir = leaf(&root, "c1");
    lay_out_v2_stats(&dir);
    // The layout satisfies libcgroups itself, so these figures are its.
    let manager = libcgroups::v2::manager::Manager::new(root.path().to_path_buf(), PathBuf::from("berth/c1")).unwrap();
    manager.stats().unwrap();
    let cgroup = ContainerCgroup::open_v2_at(root.path(), "c1").unwrap().unwrap();
    assert_eq!(cgroup.stats().unwrap(), expected_v2_stats());
    assert_eq!(cgroup.oom_kills().unwrap(), 3);
}

#[test]
fn v2_stats_without_psi_or_controllers_fall_back_to_the_files_there() {
    let root = fake_root("cpu memory pids", "c1", true);
    let dir = leaf(&root, "c1");
    lay_out_v2_stats(&dir);
    // A kernel booted with PSI off hides the pressure files, which libcgroups insists on.
    fs::remove_file(dir.join("cpu.pressure")).unwrap();
    let manager = libcgroups::v2::manager::Manager::new(root.path().to_path_buf(), PathBuf::from("berth/c1")).unwrap();
    assert!(manager.stats().is_err());
    let cgroup = ContainerCgroup::open_v2_at(root.path(), "c1").unwrap().unwrap();
    assert_eq!(cgroup.stats().unwrap(), expected_v2_stats());

    // With no memory or pids controller only the CPU figures are left.
    for file in
        ["memory.current", "memory.max", "memory.peak", "memory.stat", "memory.events", "pids.current", "pids.max"]
    {
        fs::remove_file(dir.join(file)).unwrap();
    }
    let stats = cgroup.stats().unwrap();
    assert_eq!(
        stats,
        CgroupStats { cpu_total_ns: 1_500_000, cpu_user_ns: 1_000_000, cpu_system_ns: 500_000, ..Default::default() }
    );
    assert_eq!(cgroup.oom_kills().unwrap(), 0);
}

#[test]
fn v2_stats_of_a_removed_cgroup_fail_naming_it() {
    let root = fake_root("cpu memory pids", "c1", true);
    let cgroup = ContainerCgroup::open_v2_at(root.path(), "c1").unwrap().unwrap();
    fs::remove_dir_all(leaf(&root, "c1")).unwrap();
    let err = cgroup.stats().unwrap_err().to_string();
    assert!(err.contains("berth/c1"), "{err}");
    assert!(cgroup.pids().unwrap().is_empty());
}

#[test]
fn v1_stats_take_nanoseconds_per_core_or_convert_ticks() {
    let mut s = libcgroups::stats::Stats::default();
    s.cpu.usage.usage_total = 9_000;
    s.cpu.usage.usage_user = 3; // ticks
    s.cpu.usage.usage_kernel = 1;
    s.cpu.usage.per_core_usage_user = vec![4_000, 2_000];
    s.cpu.usage.per_core_usage_kernel = vec![1_000, 500];
    s.memory.memory.usage = 100;
    s.memory.memory.max_usage = 200;
    s.memory.memory.limit = 9_223_372_036_854_771_712; // v1's "unlimited"
    s.memory.stats.insert("total_inactive_file".to_owned(), 50);
    s.pids.current = 3;
    let stats = stats::from_v1(&s, 1);
    assert_eq!((stats.cpu_total_ns, stats.cpu_user_ns, stats.cpu_system_ns), (9_000, 6_000, 1_500));
    assert_eq!((stats.memory_usage, stats.memory_max_usage, stats.memory_limit), (100, 200, None));
    assert_eq!((stats.memory_inactive_file, stats.pids_current, stats.pids_limit, stats.oom_kills), (50, 3, None, 1));

    s.cpu.usage.per_core_usage_user.clear();
    s.cpu.usage.per_core_usage_kernel.clear();
    let stats = stats::from_v1(&s, 0);
    assert_eq!((stats.cpu_user_ns, stats.cpu_system_ns), (30_000_000, 10_000_000));
}

#[test]
fn v1_stats_fall_back_to_the_files_there() {
    let mounts = tempfile::tempdir().unwrap();
    let dir = |c: &str| mounts.path().join(c).join("berth/c1");
    let files = [
        ("cpuacct", "cpuacct.usage", "9000\n"),
        ("cpuacct", "cpuacct.stat", "user 3\nsystem 1\n"),
        ("memory", "memory.usage_in_bytes", "100\n"),
        ("memory", "memory.max_usage_in_bytes", "200\n"),
        ("memory", "memory.limit_in_bytes", "16777216\n"),
        ("memory", "memory.stat", "cache 0\ntotal_inactive_file 50\n"),
        ("pids", "pids.current", "3\n"),
        ("pids", "pids.max", "max\n"),
    ];
    for (controller, file, content) in files {
        fs::create_dir_all(dir(controller)).unwrap();
        fs::write(dir(controller).join(file), content).unwrap();
    }
    let dirs: Vec<(&str, PathBuf)> = ["cpuacct", "memory", "pids"].into_iter().map(|c| (c, dir(c))).collect();
    let lookup = |c: &str| dirs.iter().find(|(name, _)| *name == c).map(|(_, d)| d.as_path());
    let expected = CgroupStats {
        cpu_total_ns: 9000,
        cpu_user_ns: 30_000_000,
        cpu_system_ns: 10_000_000,
        memory_usage: 100,
        memory_max_usage: 200,
        memory_limit: Some(16 * MIB),
        memory_inactive_file: 50,
        pids_current: 3,
        pids_limit: None,
        oom_kills: 2,
    };
    assert_eq!(stats::read_v1(lookup, 2).unwrap(), expected);

    // Nanosecond user and system times win over ticks when the kernel has them.
    fs::write(dir("cpuacct").join("cpuacct.usage_user"), "7000\n").unwrap();
    fs::write(dir("cpuacct").join("cpuacct.usage_sys"), "2000\n").unwrap();
    let stats = stats::read_v1(lookup, 2).unwrap();
    assert_eq!((stats.cpu_user_ns, stats.cpu_system_ns), (7000, 2000));

    fs::remove_dir_all(dir("pids")).unwrap();
    let err = stats::read_v1(lookup, 2).unwrap_err().to_string();
    assert!(err.contains("pids/berth/c1"), "{err}");
}

#[test]
fn limits_normalise_unlimited_spellings() {
    let plan = resources::plan(&Resources::default()).unwrap();
    assert!(plan.needs.is_empty());
    assert!(plan.linux.memory().is_none() && plan.linux.cpu().is_none() && plan.linux.pids().is_none());

    // 0 and -1 pids are unlimited for berth; libcgroups would make 0 a limit of 1.
    for unlimited in [0, -1] {
        let plan = resources::plan(&Resources { pids_limit: Some(unlimited), ..Resources::default() }).unwrap();
        assert!(plan.linux.pids().is_none() && plan.needs.is_empty());
    }
    let plan = resources::plan(&Resources { memory_swap: Some(-1), ..Resources::default() }).unwrap();
    assert!(plan.linux.memory().is_none());

    let plan = resources::plan(&all_limits()).unwrap();
    let keys: Vec<_> = plan.needs.iter().map(|n| (n.controller, n.key)).collect();
    assert_eq!(
        keys,
        [
            ("memory", "memory_limit"),
            ("memory", "memory_reservation"),
            ("memory", "memory_swap"),
            ("cpu", "cpu_quota"),
            ("cpu", "cpu_period"),
            ("cpu", "cpu_shares"),
            ("cpuset", "cpuset_cpus"),
            ("cpuset", "cpuset_mems"),
            ("pids", "pids_limit"),
        ]
    );
    let cpu = plan.linux.cpu().as_ref().unwrap();
    assert_eq!((cpu.quota(), cpu.period()), (Some(50_000), Some(100_000)));
    let mut plan = plan;
    assert!(plan.sets_swap());
    plan.drop_swap();
    assert!(!plan.sets_swap());
    assert_eq!(plan.linux.memory().as_ref().unwrap().limit(), Some((64 * MIB) as i64));
}

#[test]
fn impossible_limits_are_refused_by_key() {
    let cases = [
        (
            Resources { memory_limit: Some(u64::MAX), ..Resources::default() },
            "memory_limit: 18446744073709551615 is larger",
        ),
        (Resources { memory_swap: Some(1 << 20), ..Resources::default() }, "memory_swap: 1048576 needs memory_limit"),
        (
            Resources { memory_limit: Some(2 << 20), memory_swap: Some(1 << 20), ..Resources::default() },
            "memory_swap: 1048576 is less than memory_limit",
        ),
        (Resources { memory_swap: Some(-2), ..Resources::default() }, "memory_swap: -2 is negative"),
        (Resources { cpu_quota: Some(-5), ..Resources::default() }, "cpu_quota: -5 is negative"),
        (Resources { cpu_period: Some(10), ..Resources::default() }, "cpu_period: 10 is outside"),
    ];
    for (resources, start) in cases {
        let err = resources::plan(&resources).unwrap_err().to_string();
        assert!(err.starts_with(start), "{err}");
    }
}

#[test]
fn ids_must_be_one_plain_path_component() {
    for bad in ["", ".", "..", "a/b", "../x", "a b", "a\0b"] {
        let err = ContainerCgroup::open_v2_at(Path::new("/nonexistent"), bad).unwrap_err();
        assert!(matches!(err, CgroupError::InvalidId { .. }), "{bad:?}: {err}");
    }
    assert!(ContainerCgroup::open_v2_at(Path::new("/nonexistent"), "0123abcdef-x_y.z").unwrap().is_none());
}
