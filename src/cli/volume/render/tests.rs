use std::path::PathBuf;

use super::*;
use crate::volume::{ANONYMOUS_LABEL, new_meta};

fn volume(name: &str, project: Option<&str>, used: bool) -> Volume {
    let mut meta = new_meta(name, project, None);
    meta.created_at = "2026-12-07T17:47:36Z".into();
    meta.labels.remove(crate::volume::VERSION_LABEL);
    Volume {
        meta,
        mountpoint: PathBuf::from(format!("/var/lib/berth/volumes/{name}/_data")),
        used_by: if used { vec!["c1".into()] } else { Vec::new() },
    }
}

#[test]
fn default_listing_is_dockers_table() {
    let vs = [volume("demo_data", Some("demo"), true), volume("x1", None, false)];
    assert_eq!(listing(&vs, None, false).unwrap(), "DRIVER    VOLUME NAME\nlocal     demo_data\nlocal     x1\n");
    assert_eq!(listing(&vs, None, true).unwrap(), "demo_data\nx1\n");
    assert_eq!(listing(&[], None, false).unwrap(), "DRIVER    VOLUME NAME\n");
}

#[test]
fn json_lines_have_dockers_keys_in_order() {
    let vs = [volume("demo_data", Some("demo"), true)];
    let expected = concat!(
        r#"{"Availability":"N/A","Driver":"local","Group":"N/A","Labels":"com.docker.compose.project=demo,"#,
        r#"com.docker.compose.volume=data","Links":"N/A","Mountpoint":"/var/lib/berth/volumes/demo_data/_data","#,
        r#""Name":"demo_data","Scope":"local","Size":"N/A","Status":"N/A"}"#,
        "\n"
    );
    assert_eq!(listing(&vs, Some("json"), false).unwrap(), expected);
    assert_eq!(listing(&vs, Some("{{json .}}"), false).unwrap(), expected);
    // A custom format wins over -q, as in docker.
    assert_eq!(
        listing(&vs, Some("{{.Name}} {{.Label \"com.docker.compose.project\"}}"), true).unwrap(),
        "demo_data demo\n"
    );
}

#[test]
fn table_templates_get_headers_and_tabwriter_columns() {
    let vs = [volume("demo_data", Some("demo"), true)];
    let out = listing(&vs, Some("table {{.Name}}\\t{{.Scope}}\\t{{.Driver}}"), false).unwrap();
    assert_eq!(out, "VOLUME NAME   SCOPE     DRIVER\ndemo_data     local     local\n");
    let err = listing(&vs, Some("{{.Nope}}"), false).unwrap_err();
    assert!(err.contains("can't evaluate field Nope"), "{err}");
}

#[test]
fn inspect_is_dockers_json() {
    let v = volume(&"ab".repeat(32), None, false);
    let text = inspect_json(std::slice::from_ref(&v));
    let expected = format!(
        "[\n    {{\n        \"CreatedAt\": \"2026-12-07T17:47:36Z\",\n        \"Driver\": \"local\",\n        \"Labels\": {{\n            \"{ANONYMOUS_LABEL}\": \"\"\n        }},\n        \"Mountpoint\": \"/var/lib/berth/volumes/{n}/_data\",\n        \"Name\": \"{n}\",\n        \"Options\": null,\n        \"Scope\": \"local\"\n    }}\n]\n",
        n = v.meta.name
    );
    assert_eq!(text, expected);
    assert_eq!(inspect_json(&[]), "[]\n");
    let named = volume("demo_data", Some("demo"), false);
    assert_eq!(inspect_template(&named, "{{.Mountpoint}}").unwrap(), "/var/lib/berth/volumes/demo_data/_data\n");
    assert_eq!(inspect_template(&named, "{{index .Labels \"com.docker.compose.volume\"}}").unwrap(), "data\n");
    assert_eq!(inspect_template(&named, "{{.Options}}").unwrap(), "<no value>\n");
}

#[test]
fn filters_parse_and_match_like_docker() {
    let all = ["dangling", "label", "name", "driver"];
    let used = volume("demo_data", Some("demo"), true);
    let anon = volume(&"cd".repeat(32), None, false);
    let f = |args: &[&str]| Filters::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), &all);
    assert!(f(&["dangling=true"]).unwrap().matches(&anon));
    assert!(!f(&["dangling=true"]).unwrap().matches(&used));
    assert!(f(&["dangling=0"]).unwrap().matches(&used));
    assert!(f(&["label=com.docker.compose.project"]).unwrap().matches(&used));
    assert!(f(&["label=com.docker.compose.project=demo"]).unwrap().matches(&used));
    assert!(!f(&["label=com.docker.compose.project=other"]).unwrap().matches(&used));
    assert!(f(&[&format!("label={ANONYMOUS_LABEL}")]).unwrap().matches(&anon));
    assert!(f(&["name=demo"]).unwrap().matches(&used));
    assert!(f(&["name=^demo_data$", "name=zzz"]).unwrap().matches(&used));
    assert!(!f(&["name=zzz"]).unwrap().matches(&used));
    assert!(!f(&["name=demo", "dangling=true"]).unwrap().matches(&used));
    assert_eq!(f(&["bogus=1"]).unwrap_err(), "Invalid filter 'bogus'");
    assert_eq!(f(&["dangling=maybe"]).unwrap_err(), "Invalid filter 'dangling=[maybe]'");
    assert!(f(&["noequals"]).unwrap_err().starts_with("bad format of filter"));
    assert_eq!(Filters::parse(&["dangling=true".to_owned()], &["label"]).unwrap_err(), "Invalid filter 'dangling'");
}
