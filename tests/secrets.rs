//! Secrets and configs (issue 19, item 1) and a host port published twice (item 8), as root
//! with real containers: every source (file, environment, inline content), the short and long
//! syntax, what `exec` and `run` see, that the container cannot change them, and what `up`
//! refuses before it starts anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use support::*;

/// The directory of the container named `name`, from its state record.
fn container_dir(name: &str) -> PathBuf {
    for entry in std::fs::read_dir(state_root().join("containers")).unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("state.json")) else { continue };
        let state: serde_json::Value = serde_json::from_str(&text).unwrap();
        if state["name"] == name {
            return entry.path();
        }
    }
    panic!("no container {name}");
}

/// `ps -a --format json` of the project: what exists of it.
fn containers(project: &Project) -> Vec<serde_json::Value> {
    let out = project.berth(&["ps", "-a", "--format", "json"]);
    assert!(out.status.success(), "ps: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A stack file of `services` followed by top-level sections `rest`.
fn write_stack(project: &Project, services: &str, rest: &str) {
    std::fs::write(project.file(), format!("name: {}\nservices:\n{services}{rest}", project.name)).unwrap();
}

/// `up -d` failed and left nothing: no container, no supervisor, no network, no rule or link.
fn refused_before_anything(project: &Project, out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "up must fail: {stderr}");
    assert!(containers(project).is_empty(), "no container was made: {stderr}");
    let records = state_root().join("projects").join(&project.name);
    assert!(!records.join("supervisor.json").exists(), "no supervisor was started");
    let network = state_root().join("networks").join(format!("{}_default.json", project.name));
    assert!(!network.exists(), "no network was made");
    assert!(leftovers(&format!("berth {} ", project.name)).is_empty());
    stderr
}

const STACK: &str = "secrets:\n  pw: {file: ./pw.txt}\n  token: {environment: BSEC_TOKEN}\n\
    configs:\n  conf: {file: ./conf.txt}\n  envconf: {environment: BSEC_CONF}\n\
    \x20 inline: {content: \"hello ${BSEC_WHO} $$HOME\"}\n";

const GRANTS: &str = "secrets:
  - pw
  - token
  - {source: pw, target: rel/pw, uid: \"1000\", gid: \"50\", mode: 0400}
  - {source: pw, target: /etc/abs-pw}
configs:
  - conf
  - {source: envconf, target: /etc/app/env.conf, uid: \"7\", mode: 0600}
  - {source: inline, target: inline.conf}
";

const LISTING: &str = "for f in /run/secrets/pw /run/secrets/token /run/secrets/rel/pw /etc/abs-pw /conf \
    /etc/app/env.conf /inline.conf; do echo \"$(stat -c '%n %a %u:%g' $f) [$(cat $f)]\"; done";

#[test]
fn every_source_and_syntax_lands_read_only_and_exec_run_and_a_restart_see_it() {
    let mut project = Project::new("bsecrets", "");
    project.env = vec![("BSEC_TOKEN", "t0ken"), ("BSEC_CONF", "from-env"), ("BSEC_WHO", "world")];
    write_stack(&project, &service("app", &format!("{IDLE}\n{GRANTS}")), STACK);
    let pw = project.dir().join("pw.txt");
    std::fs::write(&pw, "s3cret\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(project.dir().join("conf.txt"), "conf-from-file").unwrap();
    project.up();

    let (ok, text) = project.sh("app", LISTING);
    assert!(ok, "{text}");
    let want = "/run/secrets/pw 444 0:0 [s3cret]\n\
        /run/secrets/token 444 0:0 [t0ken]\n\
        /run/secrets/rel/pw 400 1000:50 [s3cret]\n\
        /etc/abs-pw 444 0:0 [s3cret]\n\
        /conf 444 0:0 [conf-from-file]\n\
        /etc/app/env.conf 600 7:0 [from-env]\n\
        /inline.conf 444 0:0 [hello world $HOME]\n";
    assert_eq!(text, want, "exec sees every secret and config where compose puts them");

    // The attack: root in the container tries to change, replace, remove, re-mode, remount
    // and unmount its secret. Each must fail, and the file stays what berth wrote.
    let (_, text) = project.sh(
        "app",
        "echo x > /run/secrets/pw && echo WROTE; rm -f /run/secrets/pw && echo REMOVED; \
         echo y > /tmp/y; mv /tmp/y /run/secrets/pw && echo REPLACED; chmod 777 /run/secrets/pw && echo CHMOD; \
         chown 5 /run/secrets/pw && echo CHOWN; mount -o remount,rw /run/secrets/pw && echo REMOUNTED; \
         umount /run/secrets/pw && echo UNMOUNTED; grep ' /run/secrets/pw ' /proc/self/mountinfo; cat /run/secrets/pw",
    );
    for done in ["WROTE", "REMOVED", "REPLACED", "CHMOD", "CHOWN", "REMOUNTED", "UNMOUNTED"] {
        assert!(!text.contains(&format!("{done}\n")), "the container {done} its secret:\n{text}");
    }
    let line = text.lines().find(|l| l.contains(" /run/secrets/pw ")).unwrap_or_else(|| panic!("{text}"));
    let options = line.split_whitespace().nth(5).unwrap();
    assert!(options.split(',').any(|o| o == "ro") && options.contains("nosuid"), "read-only bind: {line}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"s3cret") && !lines.contains(&"x") && !lines.contains(&"y"), "{text}");

    // The host side: copies in the container's private directory, with the modes asked for.
    let dir = container_dir("bsecrets-app-1");
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "private to root");
    let meta = std::fs::metadata(dir.join("file-2")).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid()), (0o400, 1000, 50));
    assert_eq!(std::fs::read_to_string(dir.join("file-0")).unwrap(), "s3cret\n", "unchanged by the container");
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("spec.json")).unwrap()).unwrap();
    let spec_mode = std::fs::metadata(dir.join("spec.json")).unwrap().permissions().mode() & 0o777;
    assert_eq!(spec_mode, 0o600, "the spec holds environment secrets: {spec}");

    // `run` plans its one-off the same way.
    let out =
        project.berth(&["run", "--rm", "-T", "app", "sh", "-c", "cat /run/secrets/token /inline.conf /run/secrets/pw"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "run: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "t0kenhello world $HOMEs3cret\n");

    // A restart copies the files again: an edited secret is seen, as a docker bind is.
    std::fs::write(&pw, "rotated\n").unwrap();
    let out = project.berth(&["restart", "-t", "1", "app"]);
    assert!(out.status.success(), "restart: {}", String::from_utf8_lossy(&out.stderr));
    let text = project.sh_until("app", "cat /run/secrets/pw /run/secrets/rel/pw", "rotated\nrotated\n");
    assert_eq!(text, "rotated\nrotated\n");

    project.down();
    assert!(!dir.exists(), "down removes the copies with the container");
    assert!(leftovers("berth bsecrets ").is_empty());
}

#[test]
fn a_missing_file_an_unset_variable_and_external_are_refused_naming_file_line_and_key() {
    let project = Project::new("bsecbad", "");
    let services = format!(
        "{}{}",
        service("a", &format!("{IDLE}\nsecrets: [gone, unset]")),
        service("b", &format!("{IDLE}\nconfigs: [far]"))
    );
    let rest = "secrets:\n  gone:\n    file: ./missing.txt\n  unset:\n    environment: BSEC_NOT_SET_ANYWHERE\n\
                configs:\n  far:\n    external: true\n";
    write_stack(&project, &services, rest);
    let text = std::fs::read_to_string(project.file()).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let out = project.berth(&["config"]);
    assert!(
        out.status.success(),
        "config accepts it, as docker compose's does: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let stderr = refused_before_anything(&project, &project.berth(&["up", "-d"]));
    let file = project.file();
    let missing = project.dir().join("missing.txt");
    for (needle, key, message) in [
        ("file: ./missing.txt", "secrets.gone.file", format!("secret file {} does not exist", missing.display())),
        (
            "environment: BSEC_NOT_SET",
            "secrets.unset.environment",
            "environment variable \"BSEC_NOT_SET_ANYWHERE\" required by secret \"unset\" is not set".to_owned(),
        ),
        ("external: true", "configs.far.external", "config \"far\" is external".to_owned()),
    ] {
        let at = format!("{}:{}:", file.display(), line_of(needle));
        let line = stderr.lines().find(|l| l.contains(key)).unwrap_or_else(|| panic!("no {key} in:\n{stderr}"));
        assert!(line.contains(&at) && line.contains(&message), "{line}\nwants {at} and {message}");
    }

    // `run` checks the service it runs, and starts nothing either.
    let out = project.berth(&["run", "--rm", "-T", "b", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("configs.far.external"), "{stderr}");
    assert!(!stderr.contains("secrets.gone"), "only b's configs: {stderr}");
    assert!(containers(&project).is_empty());
}

#[test]
fn a_host_port_published_twice_loads_but_up_starts_nothing() {
    let project = Project::new("bsecport", "");
    let services = format!(
        "{}{}",
        service("first", &format!("{IDLE}\nports: [\"127.0.0.1:18931:80\"]")),
        service("second", &format!("{IDLE}\nports: [\"18931:81\"]"))
    );
    write_stack(&project, &services, "");
    let out = project.berth(&["config", "--format", "json"]);
    assert!(out.status.success(), "config accepts it: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = refused_before_anything(&project, &project.berth(&["up", "-d"]));
    assert!(
        stderr.contains("host port 18931/tcp is published twice: by service \"first\" and by service \"second\""),
        "{stderr}"
    );
    assert!(stderr.contains("services.second.ports"), "{stderr}");
    // One of them alone is fine.
    let out = project.berth(&["up", "-d", "first"]);
    assert!(out.status.success(), "up first: {}", String::from_utf8_lossy(&out.stderr));
    project.down();
    assert!(leftovers("berth bsecport ").is_empty());
}
