//! Image builds, as root and offline (the base image is the busybox test image, built from
//! Debian's busybox-static): a multi-stage Dockerfile with ARG, ENV, WORKDIR, USER, COPY
//! --from/--chown/--chmod and RUN; the cache (everything reused, then reused up to a changed
//! file); `.dockerignore`; `up` building a missing image and `up --build` picking up a source
//! change; watch's `rebuild`; and errors that name the Dockerfile's line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

/// Writes `text` to `rel` under the project's directory.
fn write(project: &Project, rel: &str, text: &str) {
    let path = project.dir().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Runs berth and returns its output; `ok` says whether it must succeed or fail.
fn berth(project: &Project, args: &[&str], ok: bool) -> String {
    let out = project.berth(args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.success(), ok, "berth {args:?}:\n{text}\n{}", project.supervisor_log());
    text
}

const MULTI_STAGE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=berth-test/busybox:latest
FROM ${BASE} AS builder
ARG VERSION=0
WORKDIR /src
COPY app.sh ./
RUN echo "version $VERSION" > version.txt && chmod 755 app.sh && mkdir out && echo built > out/artifact

FROM berth-test/busybox:latest
ENV GREETING=hello
WORKDIR /home/app
COPY --from=builder --chown=app:app /src/ ./
COPY --chmod=600 config.txt /etc/app.conf
USER app
EXPOSE 8080
ENTRYPOINT ["sh", "-c"]
CMD ["./app.sh"]
"#;

const APP_SH: &str = "#!/bin/sh\necho \"$GREETING from $(id -u):$(id -g) in $(pwd): $(cat version.txt)\"\n";

fn multi_stage_project(name: &str) -> Project {
    let project = Project::new(name, "  app:\n    build:\n      context: .\n      args:\n        VERSION: \"7\"\n");
    write(&project, "Dockerfile", MULTI_STAGE);
    write(&project, "app.sh", APP_SH);
    write(&project, "config.txt", "setting=1\n");
    project
}

#[test]
fn a_multi_stage_build_gives_files_their_owners_and_the_image_its_config() {
    let project = multi_stage_project("bbuild");
    let out = berth(&project, &["build"], true);
    assert!(out.contains("[app builder 5/5] RUN echo"), "{out}");
    assert!(out.contains("built bbuild-app:latest"), "{out}");

    // ENTRYPOINT + CMD, ENV, USER (from the image's passwd), WORKDIR and the builder's file.
    let run = berth(&project, &["run", "--rm", "app"], true);
    assert!(run.contains("hello from 1000:1000 in /home/app: version 7"), "{run}");

    let stat = berth(
        &project,
        &["run", "--rm", "app", "stat -c '%u:%g %a %n' app.sh version.txt out/artifact /etc/app.conf"],
        true,
    );
    for want in
        ["1000:1000 755 app.sh", "1000:1000 644 version.txt", "1000:1000 644 out/artifact", "0:0 600 /etc/app.conf"]
    {
        assert!(stat.contains(want), "want {want:?} in:\n{stat}");
    }
    let images = berth(&project, &["images"], true);
    assert!(images.contains("bbuild-app"), "{images}");
}

#[test]
fn an_unchanged_rebuild_is_all_cache_and_a_changed_file_rebuilds_from_its_step() {
    let project = multi_stage_project("bcache");
    // The cache is the store's: another test (or run) may have built the same steps already.
    let first = berth(&project, &["build", "--no-cache"], true);
    assert!(first.contains("4 layer steps run, 0 from the cache"), "{first}");
    let id = |text: &str| text.split("built bcache-app:latest (").nth(1).unwrap()[..12].to_owned();

    let second = berth(&project, &["build"], true);
    assert!(second.contains("0 layer steps run, 4 from the cache"), "{second}");
    assert_eq!(id(&second), id(&first), "a cached rebuild makes the same image");

    // config.txt is copied by the last layer step: only that step runs again. (A value this run
    // has not built before: the store's cache outlives test runs.)
    let nonce = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    write(&project, "config.txt", &format!("setting={nonce}\n"));
    let third = berth(&project, &["build"], true);
    assert!(third.contains("1 layer steps run, 3 from the cache"), "{third}");
    assert_ne!(id(&third), id(&first));
    let conf = berth(&project, &["run", "--rm", "-u", "0", "app", "cat /etc/app.conf"], true);
    assert!(conf.contains(&nonce), "{conf}");

    // app.sh is copied by the builder's first layer step: everything after it runs.
    write(&project, "app.sh", &format!("{APP_SH}# {nonce}\n"));
    let fourth = berth(&project, &["build"], true);
    assert!(fourth.contains("4 layer steps run, 0 from the cache"), "{fourth}");

    let uncached = berth(&project, &["build", "--no-cache"], true);
    assert!(uncached.contains("4 layer steps run, 0 from the cache"), "{uncached}");
}

#[test]
fn dockerignore_keeps_files_out_of_the_image() {
    let project = Project::new("bignore", "  app:\n    build: .\n");
    write(&project, "Dockerfile", "FROM berth-test/busybox:latest\nCOPY . /ctx/\n");
    write(&project, ".dockerignore", "secret*\n*.log\n!keep.log\n");
    for file in ["secret.txt", "debug.log", "keep.log", "data/x.txt"] {
        write(&project, file, "content\n");
    }
    berth(&project, &["build"], true);
    let listing = berth(&project, &["run", "--rm", "app", "find", "/ctx"], true);
    assert!(listing.contains("/ctx/keep.log") && listing.contains("/ctx/data/x.txt"), "{listing}");
    assert!(!listing.contains("secret") && !listing.contains("debug.log"), "{listing}");
}

/// Removes the project's built image left by an earlier run: these tests build it anew.
fn without_image(project: &Project, service: &str) {
    let _ = project.berth(&["rmi", &format!("{}-{service}", project.name)]);
}

#[test]
fn a_run_that_deletes_hides_what_the_layers_below_have() {
    let project = Project::new("bdelete", "  app:\n    build: .\n");
    write(
        &project,
        "Dockerfile",
        "FROM berth-test/busybox:latest\nRUN rm /etc/motd && rm -rf /data && mkdir /data && echo c > /data/c\n\
         RUN mv /data /moved && echo d > /moved/d\n",
    );
    berth(&project, &["build", "--no-cache"], true);
    let seen = berth(&project, &["run", "--rm", "app", "sh", "-c", "ls /moved; ls /data /etc/motd 2>&1; true"], true);
    assert!(seen.contains("c\nd\n"), "the new directory, moved: {seen}");
    assert!(!seen.contains("\na\n") && !seen.contains("\nb\n"), "the image's /data/a and /data/b stay deleted: {seen}");
    assert!(seen.contains("/data: No such file") && seen.contains("/etc/motd: No such file"), "{seen}");
}

#[test]
fn run_reaches_the_outside_through_the_build_networks_nat() {
    let outside = Outside::new("berth-test-build-outside");
    let project = Project::new("bnat", "  app:\n    build: .\n");
    // A nonce: a cached step would not connect again.
    let nonce = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    write(
        &project,
        "Dockerfile",
        &format!("FROM berth-test/busybox:latest\nRUN echo {nonce} && nc 198.51.100.2 9000 </dev/null > /answer\n"),
    );
    berth(&project, &["build"], true);
    let peer = outside.peer.recv_timeout(std::time::Duration::from_secs(10)).expect("the outside host saw the RUN");
    assert_eq!(peer.ip(), std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1)), "masqueraded");
    let answer = berth(&project, &["run", "--rm", "app", "cat", "/answer"], true);
    assert!(answer.contains("outside"), "{answer}");
}

const SERVE_MSG: &str = r#"command: ["sh", "-c", "cat /msg; exec sleep 100000"]
    stop_signal: SIGKILL"#;

#[test]
fn up_builds_a_missing_image_and_up_build_picks_up_a_source_change() {
    let project = Project::new("bup", &format!("  app:\n    build: .\n    {SERVE_MSG}\n"));
    write(&project, "Dockerfile", "FROM berth-test/busybox:latest\nCOPY msg /msg\n");
    write(&project, "msg", "v1\n");
    without_image(&project, "app");
    let up = berth(&project, &["--progress", "plain", "up", "-d"], true);
    assert!(up.contains("built bup-app:latest"), "the missing image is built: {up}");
    assert_eq!(project.sh("app", "cat /msg"), (true, "v1\n".to_owned()));

    write(&project, "msg", "v2\n");
    let again = berth(&project, &["--progress", "plain", "up", "-d"], true);
    assert!(!again.contains("built"), "a present image is not rebuilt without --build: {again}");
    assert_eq!(project.sh("app", "cat /msg").1, "v1\n");

    let rebuilt = berth(&project, &["--progress", "plain", "up", "-d", "--build"], true);
    assert!(rebuilt.contains("Container bup-app-1  Recreated"), "{rebuilt}");
    assert_eq!(project.sh("app", "cat /msg").1, "v2\n");
    project.down();
}

#[test]
fn watch_rebuild_builds_the_image_again_and_recreates_the_service() {
    let mut project = Project::new(
        "bwatch",
        &format!(
            "  app:\n    build: .\n    {SERVE_MSG}\n    develop:\n      watch:\n        - {{path: ./msg, action: rebuild}}\n"
        ),
    );
    project.env.push(("BERTH_WATCH_DEBOUNCE", "100ms"));
    write(&project, "Dockerfile", "FROM berth-test/busybox:latest\nCOPY msg /msg\n");
    write(&project, "msg", "first\n");
    without_image(&project, "app");
    berth(&project, &["up", "-d", "--watch"], true);
    assert_eq!(project.sh("app", "cat /msg").1, "first\n");
    write(&project, "msg", "second\n");
    project.sh_until("app", "cat /msg", "second");
    let log = std::fs::read_to_string(state_root().join("projects/bwatch/logs/watch.log")).unwrap_or_default();
    assert!(log.contains("Rebuilding service \"app\"") && log.contains("Built image of service \"app\""), "{log}");
    project.down();
}

#[test]
fn build_errors_name_the_dockerfile_line_and_leave_nothing_behind() {
    let project = Project::new("berr", "  app:\n    build: .\n");
    write(&project, "Dockerfile", "FROM berth-test/busybox:latest\nRUN true\nFROBNICATE now\n");
    let unknown = berth(&project, &["build"], false);
    assert!(unknown.contains("Dockerfile: line 3: unknown instruction: FROBNICATE"), "{unknown}");

    write(&project, "Dockerfile", "FROM berth-test/busybox:latest\nRUN echo about to fail\nRUN exit 3\n");
    let failed = berth(&project, &["build"], false);
    assert!(failed.contains("about to fail"), "RUN output is streamed: {failed}");
    assert!(failed.contains("Dockerfile:3: RUN exit 3: exited with code 3"), "{failed}");

    write(&project, "Dockerfile", "FROM berth-test/busybox:latest\nCOPY missing.txt /\n");
    let missing = berth(&project, &["build"], false);
    assert!(
        missing.contains("Dockerfile:2: COPY: failed to compute cache key: \"/missing.txt\" not found"),
        "{missing}"
    );

    let images = berth(&project, &["images"], true);
    assert!(!images.contains("berr-app"), "no image is named after a failed build: {images}");
    project.down();
    assert!(leftovers("berr").is_empty(), "{:?}", leftovers("berr"));
}
