use super::iptables::{self, Batch, Table};
use super::*;

fn network(internal: bool) -> NetworkRules<'static> {
    NetworkRules {
        project: "myapp",
        network: "myapp_default",
        bridge: "berthbr1a2b3c4d",
        subnet: "172.18.0.0/16".parse().unwrap(),
        gateway: Ipv4Addr::new(172, 18, 0, 1),
        internal,
    }
}

fn port(host_ip: Option<Ipv4Addr>, protocol: Protocol) -> PortRule<'static> {
    PortRule {
        project: "myapp",
        container: "myapp-web-1",
        protocol,
        host_ip,
        host_port: 8080,
        container_ip: Ipv4Addr::new(172, 18, 0, 2),
        container_port: 80,
    }
}

fn lines(rules: Vec<iptables::Rule>) -> Vec<String> {
    rules
        .into_iter()
        .map(|r| format!("{} {}", if r.table == Table::Filter { "filter" } else { "nat" }, r.line))
        .collect()
}

#[test]
fn detection_prefers_iptables_and_obeys_the_variable() {
    let all = |_: &str| true;
    let nft_only = |tool: &str| tool == "nft";
    let none = |_: &str| false;
    assert_eq!(choose(None, all).unwrap(), Backend::Iptables);
    assert_eq!(choose(None, nft_only).unwrap(), Backend::Nftables);
    assert!(matches!(choose(None, none), Err(FirewallError::NoBackend)));
    assert!(choose(None, none).unwrap_err().to_string().contains("apt-get install iptables"));
    assert_eq!(choose(Some("nftables"), all).unwrap(), Backend::Nftables);
    assert_eq!(choose(Some("iptables"), all).unwrap(), Backend::Iptables);
    let missing = choose(Some("iptables"), nft_only).unwrap_err().to_string();
    assert!(missing.contains("iptables-restore is not in PATH"), "{missing}");
    assert!(matches!(choose(Some("pf"), all), Err(FirewallError::Forced { .. })));
}

#[test]
fn project_tags_do_not_match_longer_project_names() {
    assert!(of_project("berth a net:a_default", "a"));
    assert!(of_project("berth a ctr:a-web-1", "a"));
    assert!(!of_project("berth ab net:ab_default", "a"));
    assert!(!of_project("berth ab ctr:a-web-1", "a"));
    assert!(!of_project("berth a", "a"));
    assert!(!of_project("berth a other", "a"));
    assert!(!of_project("berthx a net:n", "a"));
    assert!(!of_project("docker a net:n", "a"));
    assert_eq!(Owner::Network { project: "a", network: "a_default" }.tag(), "berth a net:a_default");
    assert_eq!(Owner::Container { project: "a", container: "a-web-1" }.tag(), "berth a ctr:a-web-1");
}

#[test]
fn names_that_could_break_a_rule_are_refused() {
    assert!(check_project("my-app_2").is_ok());
    for bad in ["", "MyApp", "-app", "a b", "a\"", "a/b"] {
        assert!(check_project(bad).is_err(), "{bad:?}");
    }
    assert!(check_name("network", "My.net_1-x").is_ok());
    for bad in ["", ".net", "a b", "a\"b", "a\\b", "a\nb"] {
        assert!(check_name("network", bad).is_err(), "{bad:?}");
    }
    assert!(check_bridge("berthbr1a2b3c4d").is_ok());
    for bad in ["docker0", "berthbr1a2b3c4d0", "berth/x", "berth x", "berth.x"] {
        assert!(check_bridge(bad).is_err(), "{bad:?}");
    }
    let long = "n".repeat(120);
    let error = check_tag(&Owner::Network { project: "myapp", network: &long }).unwrap_err();
    assert!(error.to_string().contains("127 bytes"), "{error}");
}

#[test]
fn iptables_rules_of_a_network() {
    let tag = "-m comment --comment \"berth myapp net:myapp_default\"";
    let expected = [
        format!(
            "filter -I BERTH-FORWARD 1 ! -i berthbr1a2b3c4d -o berthbr1a2b3c4d -m conntrack ! --ctstate \
             RELATED,ESTABLISHED,DNAT {tag} -j DROP"
        ),
        format!("filter -A BERTH-FORWARD -i berthbr1a2b3c4d {tag} -j ACCEPT"),
        format!(
            "filter -A BERTH-FORWARD -o berthbr1a2b3c4d -m conntrack --ctstate RELATED,ESTABLISHED {tag} -j ACCEPT"
        ),
        format!("filter -A BERTH-FORWARD -o berthbr1a2b3c4d -m conntrack --ctstate DNAT {tag} -j ACCEPT"),
        format!(
            "filter -I BERTH-INPUT 1 -i berthbr1a2b3c4d -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED \
             {tag} -j DROP"
        ),
        format!("filter -I BERTH-INPUT 1 ! -i berthbr1a2b3c4d -d 172.18.0.1/32 -p udp -m udp --dport 53 {tag} -j DROP"),
        format!(
            "filter -A BERTH-INPUT -i berthbr1a2b3c4d -s 172.18.0.0/16 -d 172.18.0.1/32 -p udp -m udp --dport 53 {tag} -j ACCEPT"
        ),
        format!("filter -I BERTH-INPUT 1 ! -i berthbr1a2b3c4d -d 172.18.0.1/32 -p tcp -m tcp --dport 53 {tag} -j DROP"),
        format!(
            "filter -A BERTH-INPUT -i berthbr1a2b3c4d -s 172.18.0.0/16 -d 172.18.0.1/32 -p tcp -m tcp --dport 53 {tag} -j ACCEPT"
        ),
        format!("nat -A BERTH-POSTROUTING -s 172.18.0.0/16 ! -o berthbr1a2b3c4d {tag} -j MASQUERADE"),
        format!("nat -A BERTH-POSTROUTING -s 127.0.0.0/8 -o berthbr1a2b3c4d {tag} -j MASQUERADE"),
        format!(
            "nat -A BERTH-POSTROUTING -s 172.18.0.0/16 -o berthbr1a2b3c4d -m conntrack --ctstate DNAT {tag} \
             -j MASQUERADE"
        ),
    ];
    assert_eq!(lines(iptables::network_rules(&network(false))), expected);
}

#[test]
fn iptables_rules_of_an_internal_network_let_nothing_in_or_out() {
    let rules = lines(iptables::network_rules(&network(true)));
    let tag = "-m comment --comment \"berth myapp net:myapp_default\"";
    assert_eq!(
        &rules[..3],
        [
            format!("filter -I BERTH-FORWARD 1 -i berthbr1a2b3c4d ! -o berthbr1a2b3c4d {tag} -j DROP"),
            format!("filter -I BERTH-FORWARD 1 ! -i berthbr1a2b3c4d -o berthbr1a2b3c4d {tag} -j DROP"),
            format!("filter -A BERTH-FORWARD -i berthbr1a2b3c4d -o berthbr1a2b3c4d {tag} -j ACCEPT"),
        ]
    );
    assert!(rules.iter().all(|r| !r.contains("MASQUERADE")), "{rules:#?}");
    assert!(rules.iter().any(|r| r.contains("--dport 53")), "the DNS server serves internal networks too");
}

#[test]
fn iptables_rules_of_published_ports() {
    let tag = "-m comment --comment \"berth myapp ctr:myapp-web-1\"";
    let dnat = "-j DNAT --to-destination 172.18.0.2:80";
    let all = [
        format!("nat -A BERTH-PREROUTING -p tcp -m tcp --dport 8080 {tag} {dnat}"),
        format!("nat -A BERTH-OUTPUT -p tcp -m tcp --dport 8080 {tag} {dnat}"),
    ];
    assert_eq!(lines(iptables::port_rules(&port(None, Protocol::Tcp))), all);
    assert_eq!(lines(iptables::port_rules(&port(Some(Ipv4Addr::UNSPECIFIED), Protocol::Tcp))), all);
    assert_eq!(
        lines(iptables::port_rules(&port(Some(Ipv4Addr::new(10, 0, 0, 5)), Protocol::Udp))),
        [
            format!("nat -A BERTH-PREROUTING -d 10.0.0.5/32 -p udp -m udp --dport 8080 {tag} {dnat}"),
            format!("nat -A BERTH-OUTPUT -d 10.0.0.5/32 -p udp -m udp --dport 8080 {tag} {dnat}"),
        ]
    );
    // Published on loopback: only the host itself may reach it, so no PREROUTING DNAT.
    assert_eq!(
        lines(iptables::port_rules(&port(Some(Ipv4Addr::LOCALHOST), Protocol::Sctp))),
        [format!("nat -A BERTH-OUTPUT -d 127.0.0.1/32 -p sctp -m sctp --dport 8080 {tag} {dnat}")]
    );
}

#[test]
fn comments_are_read_as_iptables_save_prints_them() {
    assert_eq!(
        iptables::comment_of("-A X -i b -m comment --comment \"berth a net:n\" -j ACCEPT").as_deref(),
        Some("berth a net:n")
    );
    assert_eq!(iptables::comment_of("-A X -m comment --comment bare -j ACCEPT").as_deref(), Some("bare"));
    assert_eq!(
        iptables::comment_of(r#"-A X -m comment --comment "say \"hi\" \\ there" -j ACCEPT"#).as_deref(),
        Some(r#"say "hi" \ there"#)
    );
    assert_eq!(iptables::comment_of("-A X -i b -j ACCEPT"), None);
    assert_eq!(iptables::comment_of("-A X -m comment --comment \"unterminated"), None);
}

const SAVED: &str = "# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [12:720]
:OUTPUT ACCEPT [0:0]
:BERTH-FORWARD - [0:0]
:BERTH-INPUT - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j BERTH-FORWARD
-A FORWARD -j DOCKER-USER
-A INPUT -j BERTH-INPUT
-A BERTH-FORWARD -i berthbr0 -m comment --comment \"berth a net:a_default\" -j ACCEPT
-A BERTH-FORWARD -i berthbr1 -m comment --comment \"berth ab net:ab_default\" -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:BERTH-PREROUTING - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j BERTH-PREROUTING
-A BERTH-PREROUTING -p tcp -m tcp --dport 80 -m comment --comment \"berth a ctr:a-web-1\" -j DNAT --to-destination 172.18.0.2:80
COMMIT
";

#[test]
fn missing_chains_and_jumps_are_added_and_present_ones_left_alone() {
    let mut batch = Batch::default();
    iptables::ensure_chains(&iptables::parse_save(""), &mut batch);
    assert_eq!(
        batch.render(),
        "*filter
:BERTH-FORWARD - [0:0]
:BERTH-INPUT - [0:0]
-I FORWARD 1 -j BERTH-FORWARD
-I INPUT 1 -j BERTH-INPUT
COMMIT
*nat
:BERTH-PREROUTING - [0:0]
:BERTH-OUTPUT - [0:0]
:BERTH-POSTROUTING - [0:0]
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j BERTH-PREROUTING
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j BERTH-OUTPUT
-I POSTROUTING 1 -j BERTH-POSTROUTING
COMMIT
"
    );
    let mut batch = Batch::default();
    iptables::ensure_chains(&iptables::parse_save(SAVED), &mut batch);
    assert_eq!(
        batch.render(),
        "*nat
:BERTH-OUTPUT - [0:0]
:BERTH-POSTROUTING - [0:0]
-I OUTPUT 1 -m addrtype --dst-type LOCAL -j BERTH-OUTPUT
-I POSTROUTING 1 -j BERTH-POSTROUTING
COMMIT
"
    );
}

#[test]
fn owned_rules_are_deleted_by_exact_owner() {
    let saved = iptables::parse_save(SAVED);
    let mut batch = Batch::default();
    iptables::delete_owned(&saved, &|c| of_project(c, "a"), &mut batch);
    assert_eq!(
        batch.render(),
        "*filter
-D BERTH-FORWARD -i berthbr0 -m comment --comment \"berth a net:a_default\" -j ACCEPT
COMMIT
*nat
-D BERTH-PREROUTING -p tcp -m tcp --dport 80 -m comment --comment \"berth a ctr:a-web-1\" -j DNAT --to-destination 172.18.0.2:80
COMMIT
"
    );
    let mut batch = Batch::default();
    iptables::delete_owned(&saved, &|c| c == "berth ab net:ab_default", &mut batch);
    assert_eq!(
        batch.render(),
        "*filter\n-D BERTH-FORWARD -i berthbr1 -m comment --comment \"berth ab net:ab_default\" -j ACCEPT\nCOMMIT\n"
    );
}

#[test]
fn chains_are_removed_only_from_tables_where_they_are_empty() {
    let mut batch = Batch::default();
    iptables::delete_unused(&iptables::parse_save(SAVED), &mut batch);
    assert_eq!(batch.render(), "", "both tables still hold rules");

    let filter_empty = SAVED.lines().filter(|l| !l.starts_with("-A BERTH-FORWARD")).collect::<Vec<_>>().join("\n");
    let mut batch = Batch::default();
    iptables::delete_unused(&iptables::parse_save(&filter_empty), &mut batch);
    assert_eq!(
        batch.render(),
        "*filter
-D FORWARD -j BERTH-FORWARD
-D INPUT -j BERTH-INPUT
-X BERTH-FORWARD
-X BERTH-INPUT
COMMIT
"
    );
}

#[test]
fn a_failed_batch_line_is_quoted() {
    let input = "*filter\n-A X -j ACCEPT\n-D Y -j DROP\nCOMMIT\n";
    assert_eq!(failed_line("iptables-restore: line 3 failed: Bad rule", input), Some("-D Y -j DROP"));
    assert_eq!(failed_line("iptables-restore: line 0 failed", input), None);
    assert_eq!(failed_line("Error: syntax error", input), None);
}

#[test]
fn nft_rules_of_a_network_and_a_port() {
    let tag = "comment \"berth myapp net:myapp_default\"";
    let br = "\"berthbr1a2b3c4d\"";
    assert_eq!(
        nft::network_rules(&network(false)),
        [
            format!(
                "insert rule ip berth forward iifname != {br} oifname {br} ct state != {{ established, related }} \
                 ct status & dnat == 0 drop {tag}"
            ),
            format!("add rule ip berth forward iifname {br} accept {tag}"),
            format!("add rule ip berth forward oifname {br} ct state established,related accept {tag}"),
            format!("add rule ip berth forward oifname {br} ct status dnat accept {tag}"),
            format!(
                "insert rule ip berth input iifname {br} ip daddr 127.0.0.0/8 ct state != {{ established, related }} \
                 drop {tag}"
            ),
            format!("insert rule ip berth input iifname != {br} ip daddr 172.18.0.1 udp dport 53 drop {tag}"),
            format!(
                "add rule ip berth input iifname {br} ip saddr 172.18.0.0/16 ip daddr 172.18.0.1 udp dport 53 accept {tag}"
            ),
            format!("insert rule ip berth input iifname != {br} ip daddr 172.18.0.1 tcp dport 53 drop {tag}"),
            format!(
                "add rule ip berth input iifname {br} ip saddr 172.18.0.0/16 ip daddr 172.18.0.1 tcp dport 53 accept {tag}"
            ),
            format!("add rule ip berth postrouting oifname != {br} ip saddr 172.18.0.0/16 masquerade {tag}"),
            format!("add rule ip berth postrouting oifname {br} ip saddr 127.0.0.0/8 masquerade {tag}"),
            format!(
                "add rule ip berth postrouting oifname {br} ip saddr 172.18.0.0/16 ct status dnat masquerade {tag}"
            ),
        ]
    );
    let internal = nft::network_rules(&network(true));
    assert!(internal[0].contains(&format!("iifname {br} oifname != {br} drop")), "{internal:#?}");
    assert!(internal.iter().all(|r| !r.contains("masquerade")), "{internal:#?}");

    let tag = "comment \"berth myapp ctr:myapp-web-1\"";
    assert_eq!(
        nft::port_rules(&port(Some(Ipv4Addr::new(10, 0, 0, 5)), Protocol::Tcp)),
        [
            format!(
                "add rule ip berth prerouting fib daddr type local ip daddr 10.0.0.5 tcp dport 8080 \
                 dnat to 172.18.0.2:80 {tag}"
            ),
            format!(
                "add rule ip berth output fib daddr type local ip daddr 10.0.0.5 tcp dport 8080 dnat to 172.18.0.2:80 {tag}"
            ),
        ]
    );
    assert_eq!(
        nft::port_rules(&port(Some(Ipv4Addr::LOCALHOST), Protocol::Udp)),
        [format!(
            "add rule ip berth output fib daddr type local ip daddr 127.0.0.1 udp dport 8080 dnat to 172.18.0.2:80 {tag}"
        )]
    );
}

#[test]
fn nft_listing_is_read_and_owned_rules_deleted_by_handle() {
    let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": "berth", "handle": 1}},
        {"chain": {"family": "ip", "table": "berth", "name": "forward", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "ip", "table": "berth", "chain": "forward", "handle": 6, "comment": "berth a net:a_default", "expr": []}},
        {"rule": {"family": "ip", "table": "berth", "chain": "forward", "handle": 7, "comment": "berth ab net:ab_default", "expr": []}},
        {"rule": {"family": "ip", "table": "berth", "chain": "output", "handle": 9, "comment": "berth a ctr:a-web-1", "expr": []}},
        {"rule": {"family": "ip", "table": "berth", "chain": "input", "handle": 11, "expr": []}}]}"#;
    let listed = nft::parse_list(json).unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[3], nft::Listed { chain: "input".into(), handle: 11, comment: None });
    assert_eq!(
        nft::delete_owned(&listed, &|c| of_project(c, "a")),
        ["delete rule ip berth forward handle 6", "delete rule ip berth output handle 9"]
    );
    assert!(nft::parse_list("{}").is_err());
    assert!(nft::parse_list("not json").is_err());
}
