//! Secrets and configs: where they land, whose they are, where their bytes come from.

use super::fixture_with_env;
use crate::runtime::spec::{FileSource, Mount, MountKind};

const STACK: &str = "name: proj\nservices:\n  app:\n    image: x\n    secrets:\n      - pw\n      - token\n\
     \x20     - {source: pw, target: rel/pw, uid: \"1000\", gid: \"50\", mode: 0400}\n\
     \x20     - {source: pw, target: /etc/abs}\n    configs:\n      - conf\n      - {source: inline, target: etc/inline.conf, mode: 0640}\n\
     secrets:\n  pw: {file: ./pw.txt}\n  token: {environment: TOKEN}\n\
     configs:\n  conf: {environment: CONF}\n  inline: {content: \"hello ${WHO}\"}\n";

fn file(m: &Mount) -> (&str, &FileSource, u32, u32, u32) {
    match &m.kind {
        MountKind::File { name, source, uid, gid, mode } => (name, source, *uid, *gid, *mode),
        other => panic!("not a file: {other:?}"),
    }
}

#[test]
fn secrets_and_configs_become_read_only_files_where_compose_puts_them() {
    let f = fixture_with_env(STACK, &[("TOKEN", "t0k"), ("CONF", "c=1"), ("WHO", "world")]);
    let dir = f.project.working_dir.clone();
    let spec = f.plan("app").unwrap();
    let by_target =
        |t: &str| spec.mounts.iter().find(|m| m.target == t).unwrap_or_else(|| panic!("{t} in {:?}", spec.mounts));
    let pw = dir.join("pw.txt");
    let host = FileSource::Host(pw);
    assert_eq!(file(by_target("/run/secrets/pw")), ("file-0", &host, 0, 0, 0o444));
    assert_eq!(file(by_target("/run/secrets/token")), ("file-1", &FileSource::Inline("t0k".into()), 0, 0, 0o444));
    assert_eq!(
        file(by_target("/run/secrets/rel/pw")),
        ("file-2", &host, 1000, 50, 0o400),
        "relative: under /run/secrets"
    );
    assert_eq!(file(by_target("/etc/abs")).1, &host, "an absolute secret target is used as is");
    assert_eq!(file(by_target("/conf")), ("file-4", &FileSource::Inline("c=1".into()), 0, 0, 0o444));
    let inline = file(by_target("/etc/inline.conf"));
    assert_eq!((inline.1, inline.4), (&FileSource::Inline("hello world".into()), 0o640), "content is interpolated");
    assert!(spec.mounts.iter().all(|m| m.read_only));
    assert_eq!(spec.mounts.len(), 6);
}

#[test]
fn unusable_sources_and_bad_owners_are_plan_errors_naming_the_key() {
    let f = fixture_with_env(STACK, &[("CONF", "c")]);
    let err = f.plan("app").unwrap_err().to_string();
    assert_eq!(err, r#"service "app": secrets: environment variable "TOKEN" required by secret "token" is not set"#);
    let f = fixture_with_env(
        "services:\n  a:\n    image: x\n    secrets: [{source: s, uid: root}]\n  b:\n    image: x\n    configs: [c]\n\
         secrets:\n  s: {file: ./s}\nconfigs:\n  c: {external: true}\n",
        &[],
    );
    let err = f.plan("a").unwrap_err().to_string();
    assert!(err.contains(r#"secret "s": uid "root" must be a number"#), "{err}");
    let err = f.plan("b").unwrap_err().to_string();
    assert!(err.contains(r#"config "c" is external"#), "{err}");
}
