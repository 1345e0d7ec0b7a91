//! Mounts from the short and long volume syntaxes, `tmpfs` and the image's `VOLUME`s.

use std::path::PathBuf;

use super::{fixture, image};
use crate::plan::{PlanContext, RunOverrides, container_spec};
use crate::runtime::spec::{Mount, MountKind};

fn volume_name(m: &Mount) -> &str {
    match &m.kind {
        MountKind::Volume { name, .. } => name,
        other => panic!("not a volume: {other:?}"),
    }
}

#[test]
fn short_and_long_syntax_become_binds_volumes_and_tmpfs() {
    let f = fixture(
        "name: proj\nservices:\n  web:\n    image: x\n    volumes:\n      - ./site:/usr/share/nginx/html:ro\n\
         \x20     - data:/var/lib/data\n      - shared:/shared:nocopy\n      - /cache\n\
         \x20     - {type: volume, target: /scratch, read_only: true, volume: {nocopy: true}}\n\
         \x20     - {type: bind, source: /srv/conf, target: /etc/conf, bind: {propagation: rslave}}\n\
         \x20     - {type: tmpfs, target: /run/cache, tmpfs: {size: 1m, mode: 0700}}\n\
         \x20     - {type: volume, source: data, target: /var/lib/data/sub, volume: {subpath: logs}}\n\
         \x20   tmpfs: [\"/tmp:size=64m,mode=1777,noexec\", /run]\n\
         volumes:\n  data: {}\n  shared: {name: global-shared}\n",
    );
    let dir = f.project.working_dir.clone();
    let spec = f.plan("web").unwrap();
    let by_target =
        |t: &str| spec.mounts.iter().find(|m| m.target == t).unwrap_or_else(|| panic!("{t} in {:?}", spec.mounts));

    let site = by_target("/usr/share/nginx/html");
    assert!(site.read_only);
    assert_eq!(
        site.kind,
        MountKind::Bind { source: dir.join("site"), create_host_path: true, propagation: None },
        "short syntax binds are made absolute and create their source"
    );
    assert_eq!(
        by_target("/etc/conf").kind,
        MountKind::Bind {
            source: PathBuf::from("/srv/conf"),
            create_host_path: false,
            propagation: Some("rslave".into())
        }
    );
    assert_eq!(
        by_target("/var/lib/data").kind,
        MountKind::Volume {
            name: "proj_data".into(),
            dir: PathBuf::from("/var/lib/berth/volumes/proj_data/_data"),
            copy_up: true
        }
    );
    assert_eq!(
        by_target("/var/lib/data/sub").kind,
        MountKind::Volume {
            name: "proj_data".into(),
            dir: PathBuf::from("/var/lib/berth/volumes/proj_data/_data/logs"),
            copy_up: false
        }
    );
    let shared = by_target("/shared");
    assert_eq!(volume_name(shared), "global-shared");
    assert!(matches!(shared.kind, MountKind::Volume { copy_up: false, .. }), "nocopy");
    let cache = volume_name(by_target("/cache"));
    assert_eq!(cache.len(), 64);
    assert!(cache.bytes().all(|b| b.is_ascii_hexdigit()));
    let scratch = by_target("/scratch");
    assert!(scratch.read_only && matches!(scratch.kind, MountKind::Volume { copy_up: false, .. }));
    assert_ne!(volume_name(scratch), cache, "each anonymous volume is new");
    assert_eq!(by_target("/run/cache").kind, MountKind::Tmpfs { size: Some(1 << 20), mode: Some(0o700) });
    assert_eq!(by_target("/tmp").kind, MountKind::Tmpfs { size: Some(64 << 20), mode: Some(0o1777) });
    assert_eq!(by_target("/run").kind, MountKind::Tmpfs { size: None, mode: None });

    let depths: Vec<usize> = spec.mounts.iter().map(|m| m.target.matches('/').count()).collect();
    assert!(depths.windows(2).all(|w| w[0] <= w[1]), "parents first: {:?}", spec.mounts);
    let data = spec.mounts.iter().position(|m| m.target == "/var/lib/data").unwrap();
    let sub = spec.mounts.iter().position(|m| m.target == "/var/lib/data/sub").unwrap();
    assert!(data < sub);
}

#[test]
fn image_volumes_not_covered_become_anonymous_volumes() {
    let f = fixture(
        "name: proj\nservices:\n  db:\n    image: x\n    volumes: [\"db:/var/lib/postgresql/data\"]\nvolumes:\n  db:\n",
    );
    let img = image(|c| {
        c.volumes = Some(
            [("/var/lib/postgresql/data/", serde_json::json!({})), ("/var/log", serde_json::json!({}))]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        );
    });
    let ctx = PlanContext { image: &img, ..f.ctx() };
    let spec = container_spec(&ctx, &f.project.services["db"], &RunOverrides::default()).unwrap();
    assert_eq!(spec.mounts.len(), 2);
    assert_eq!(spec.mounts[0].target, "/var/log");
    let log = volume_name(&spec.mounts[0]);
    assert_eq!(log.len(), 64);
    assert!(matches!(spec.mounts[0].kind, MountKind::Volume { copy_up: true, .. }));
    assert_eq!(volume_name(&spec.mounts[1]), "proj_db", "the service's own volume covers the image's");
}

#[test]
fn unsupported_types_and_duplicate_targets_are_errors() {
    let f = fixture(
        "name: proj\nservices:\n  img:\n    image: x\n    volumes: [{type: image, source: alpine, target: /img}]\n\
         \x20 dup:\n    image: x\n    volumes: [\"/data\"]\n    tmpfs: [/data]\n",
    );
    let err = f.plan("img").unwrap_err().to_string();
    assert_eq!(err, r#"service "img": volumes: mount type "image" (at "/img") is not supported by berth"#);
    let err = f.plan("dup").unwrap_err().to_string();
    assert_eq!(err, r#"service "dup": volumes: duplicate mount point "/data""#);
}
