//! The server end to end over loopback: a fake [`Records`] and fake upstreams on 127.0.0.1.
//! Every test runs on a current-thread and on a multi-thread runtime, as the supervisor may use
//! either.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::timeout;

use super::*;

/// How long a test waits for any one answer before failing: generous, never asserted on.
const PATIENCE: Duration = Duration::from_secs(10);

/// The address a fake upstream answers with over UDP, and over TCP (documentation ranges:
/// only ever data in a message, never a destination).
const UPSTREAM_UDP_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const UPSTREAM_TCP_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn on_both_runtimes<F, Fut>(test: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(test());
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(test());
}

/// A project with `web` (IPv4 only), `db` (both families), `isolated` (no shared network) and
/// `many` (100 addresses), recording the names it is asked.
struct Fake {
    upstreams: Vec<SocketAddr>,
    asked: Mutex<Vec<String>>,
}

impl Records for Fake {
    fn lookup(&self, _client: IpAddr, name: &str) -> Option<Vec<IpAddr>> {
        self.asked.lock().unwrap().push(name.to_owned());
        match name {
            "web" => Some(vec![ip("172.18.0.2")]),
            "db" => Some(vec![ip("172.18.0.3"), ip("fd00::3")]),
            "isolated" => Some(vec![]),
            "many" => Some((0..100).map(|i| IpAddr::V4(Ipv4Addr::new(172, 18, 1, i))).collect()),
            _ => None,
        }
    }

    fn reverse(&self, _client: IpAddr, address: IpAddr) -> Option<String> {
        (address == ip("172.18.0.2")).then(|| "project-web-1".to_owned())
    }

    fn upstreams(&self, _client: IpAddr) -> Vec<SocketAddr> {
        self.upstreams.clone()
    }
}

/// How a fake upstream answers over UDP (over TCP it always answers).
#[derive(Clone, Copy)]
enum Mode {
    Answer,
    Silent,
    Truncate,
    Refuse,
}

/// A fake upstream on 127.0.0.1, UDP and TCP on one port, counting the queries it gets.
struct Upstream {
    address: SocketAddr,
    queries: Arc<AtomicUsize>,
}

async fn upstream(mode: Mode) -> Upstream {
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            break (udp, tcp);
        }
    };
    let address = udp.local_addr().unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let counter = queries.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0; 65535];
        loop {
            let (len, peer) = udp.recv_from(&mut buffer).await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let query = Message::from_vec(&buffer[..len]).unwrap();
            let answer = match mode {
                Mode::Silent => continue,
                Mode::Answer => upstream_answer(&query, UPSTREAM_UDP_ANSWER),
                Mode::Truncate => {
                    let mut answer = upstream_answer(&query, UPSTREAM_UDP_ANSWER);
                    answer.answers.clear();
                    answer.metadata.truncation = true;
                    answer
                }
                Mode::Refuse => {
                    let mut answer = upstream_answer(&query, UPSTREAM_UDP_ANSWER);
                    answer.answers.clear();
                    answer.metadata.response_code = ResponseCode::Refused;
                    answer
                }
            };
            udp.send_to(&answer.to_vec().unwrap(), peer).await.unwrap();
        }
    });
    let counter = queries.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = tcp.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let len = stream.read_u16().await.unwrap();
            let mut query = vec![0; usize::from(len)];
            stream.read_exact(&mut query).await.unwrap();
            let answer = upstream_answer(&Message::from_vec(&query).unwrap(), UPSTREAM_TCP_ANSWER).to_vec().unwrap();
            stream.write_u16(u16::try_from(answer.len()).unwrap()).await.unwrap();
            stream.write_all(&answer).await.unwrap();
        }
    });
    Upstream { address, queries }
}

/// What a real resolver would answer to `query`: one A record, with the question's name.
fn upstream_answer(query: &Message, address: Ipv4Addr) -> Message {
    let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
    answer.metadata.recursion_available = true;
    answer.queries = query.queries.clone();
    answer.add_answer(Record::from_rdata(query.queries[0].name.clone(), 300, RData::A(A(address))));
    answer
}

/// A server over `upstreams`, listening on 127.0.0.1 with a free port.
async fn server(upstreams: Vec<SocketAddr>) -> (Arc<Fake>, Listener) {
    let fake = Arc::new(Fake { upstreams, asked: Mutex::new(Vec::new()) });
    let server = DnsServer::new(fake.clone()).with_upstream_timeout(Duration::from_millis(200));
    let listener = server.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (fake, listener)
}

fn query(id: u16, name: &str, kind: RecordType) -> Vec<u8> {
    let mut query = Message::query();
    query.metadata.id = id;
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
    query.to_vec().unwrap()
}

async fn ask_udp(server: SocketAddr, query: &[u8]) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(query, server).await.unwrap();
    let mut buffer = vec![0; 65535];
    let (len, _) = timeout(PATIENCE, socket.recv_from(&mut buffer)).await.expect("no answer").unwrap();
    Message::from_vec(&buffer[..len]).unwrap()
}

async fn ask_tcp(stream: &mut TcpStream, query: &[u8]) -> Message {
    stream.write_u16(u16::try_from(query.len()).unwrap()).await.unwrap();
    stream.write_all(query).await.unwrap();
    let len = timeout(PATIENCE, stream.read_u16()).await.expect("no answer").unwrap();
    let mut answer = vec![0; usize::from(len)];
    stream.read_exact(&mut answer).await.unwrap();
    Message::from_vec(&answer).unwrap()
}

fn addresses(answer: &Message) -> Vec<IpAddr> {
    answer
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_record_for_a_service() {
    on_both_runtimes(|| async {
        let (_, listener) = server(vec![]).await;
        let answer = ask_udp(listener.local_addr(), &query(7, "web", RecordType::A)).await;
        assert_eq!(answer.metadata.id, 7);
        assert_eq!(answer.metadata.message_type, MessageType::Response);
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(answer.metadata.authoritative && answer.metadata.recursion_available);
        assert_eq!(addresses(&answer), vec![ip("172.18.0.2")]);
        assert_eq!(answer.answers[0].ttl, LOCAL_TTL);
        let both = ask_udp(listener.local_addr(), &query(8, "db", RecordType::AAAA)).await;
        assert_eq!(addresses(&both), vec![ip("fd00::3")]);
        let any = ask_udp(listener.local_addr(), &query(9, "db", RecordType::ANY)).await;
        assert_eq!(addresses(&any), vec![ip("172.18.0.3"), ip("fd00::3")]);
    });
}

#[test]
fn aaaa_for_an_ipv4_only_name_is_empty() {
    on_both_runtimes(|| async {
        let upstream = upstream(Mode::Answer).await;
        let (_, listener) = server(vec![upstream.address]).await;
        for kind in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
            let answer = ask_udp(listener.local_addr(), &query(1, "web", kind)).await;
            assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
            assert!(answer.answers.is_empty() && answer.metadata.authoritative);
        }
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn names_are_case_insensitive_and_may_end_in_a_dot() {
    on_both_runtimes(|| async {
        let (fake, listener) = server(vec![]).await;
        let answer = ask_udp(listener.local_addr(), &query(2, "WeB.", RecordType::A)).await;
        assert_eq!(addresses(&answer), vec![ip("172.18.0.2")]);
        // The question is echoed as asked.
        assert_eq!(answer.queries[0].name.to_ascii(), "WeB.");
        assert_eq!(*fake.asked.lock().unwrap(), vec!["web".to_owned()]);
    });
}

#[test]
fn a_project_name_without_address_is_not_forwarded() {
    on_both_runtimes(|| async {
        let upstream = upstream(Mode::Answer).await;
        let (_, listener) = server(vec![upstream.address]).await;
        let answer = ask_udp(listener.local_addr(), &query(3, "isolated", RecordType::A)).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(answer.answers.is_empty());
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn unknown_names_are_forwarded_and_relayed_under_the_client_id() {
    on_both_runtimes(|| async {
        let refusing = upstream(Mode::Refuse).await;
        let answering = upstream(Mode::Answer).await;
        let (_, listener) = server(vec![refusing.address, answering.address]).await;
        let answer = ask_udp(listener.local_addr(), &query(0xbeef, "example.test.", RecordType::A)).await;
        assert_eq!(answer.metadata.id, 0xbeef);
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(!answer.metadata.authoritative);
        assert_eq!(addresses(&answer), vec![IpAddr::V4(UPSTREAM_UDP_ANSWER)]);
        assert_eq!(refusing.queries.load(Ordering::SeqCst), 1);
        assert_eq!(answering.queries.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn no_upstream_answer_gives_servfail() {
    on_both_runtimes(|| async {
        let silent = upstream(Mode::Silent).await;
        let (_, listener) = server(vec![silent.address, silent.address]).await;
        let answer = ask_udp(listener.local_addr(), &query(4, "example.test.", RecordType::A)).await;
        assert_eq!(answer.metadata.id, 4);
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(silent.queries.load(Ordering::SeqCst), 2);
        // A silent upstream holds no local answer back.
        let local = ask_udp(listener.local_addr(), &query(5, "web", RecordType::A)).await;
        assert_eq!(addresses(&local), vec![ip("172.18.0.2")]);

        let (_, empty) = server(vec![]).await;
        let answer = ask_udp(empty.local_addr(), &query(6, "example.test.", RecordType::A)).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    });
}

#[test]
fn a_truncated_upstream_answer_is_fetched_again_over_tcp() {
    on_both_runtimes(|| async {
        let upstream = upstream(Mode::Truncate).await;
        let (_, listener) = server(vec![upstream.address]).await;
        let answer = ask_udp(listener.local_addr(), &query(10, "example.test.", RecordType::A)).await;
        assert_eq!(answer.metadata.id, 10);
        assert!(!answer.metadata.truncation);
        assert_eq!(addresses(&answer), vec![IpAddr::V4(UPSTREAM_TCP_ANSWER)]);
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn tcp_queries_several_per_connection() {
    on_both_runtimes(|| async {
        let upstream = upstream(Mode::Answer).await;
        let (_, listener) = server(vec![upstream.address]).await;
        let mut stream = TcpStream::connect(listener.local_addr()).await.unwrap();
        let local = ask_tcp(&mut stream, &query(11, "web", RecordType::A)).await;
        assert_eq!((local.metadata.id, addresses(&local)), (11, vec![ip("172.18.0.2")]));
        // Forwarded over TCP straight away, as the client came over TCP.
        let forwarded = ask_tcp(&mut stream, &query(12, "example.test.", RecordType::A)).await;
        assert_eq!((forwarded.metadata.id, addresses(&forwarded)), (12, vec![IpAddr::V4(UPSTREAM_TCP_ANSWER)]));
        let many = ask_tcp(&mut stream, &query(13, "many", RecordType::A)).await;
        assert_eq!(many.answers.len(), 100);
        assert!(!many.metadata.truncation);
    });
}

#[test]
fn a_local_answer_too_big_for_udp_is_truncated() {
    on_both_runtimes(|| async {
        let (_, listener) = server(vec![]).await;
        let answer = ask_udp(listener.local_addr(), &query(14, "many", RecordType::A)).await;
        assert!(answer.metadata.truncation);
        assert!(answer.answers.len() < 100);
        // A client offering a larger buffer through EDNS gets everything.
        let mut big = Message::from_vec(&query(15, "many", RecordType::A)).unwrap();
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        big.edns = Some(edns);
        let answer = ask_udp(listener.local_addr(), &big.to_vec().unwrap()).await;
        assert!(!answer.metadata.truncation && answer.edns.is_some());
        assert_eq!(answer.answers.len(), 100);
    });
}

#[test]
fn ptr_of_a_container_address() {
    on_both_runtimes(|| async {
        let upstream = upstream(Mode::Answer).await;
        let (_, listener) = server(vec![upstream.address]).await;
        let answer = ask_udp(listener.local_addr(), &query(16, "2.0.18.172.in-addr.arpa.", RecordType::PTR)).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        let target = Name::from_ascii("project-web-1.").unwrap();
        assert_eq!(answer.answers.len(), 1);
        assert_eq!(answer.answers[0].data, RData::PTR(PTR(target)));
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 0);
        // An address the project does not know is asked upstream.
        let _ = ask_udp(listener.local_addr(), &query(17, "9.0.18.172.in-addr.arpa.", RecordType::PTR)).await;
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn malformed_input_does_not_stop_the_server() {
    on_both_runtimes(|| async {
        let (_, listener) = server(vec![]).await;
        let address = listener.local_addr();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut response = query(18, "web", RecordType::A);
        response[2] |= 0x80;
        let mut cut = query(19, "web", RecordType::A);
        cut.truncate(cut.len() - 3);
        for junk in [&b""[..], b"\x01\x02\x03", &[0xff; 12], &[0xff; 300], &response, &cut] {
            socket.send_to(junk, address).await.unwrap();
        }
        let answer = ask_udp(address, &query(20, "web", RecordType::A)).await;
        assert_eq!(addresses(&answer), vec![ip("172.18.0.2")]);

        // Over TCP the connection is closed, and the next one served.
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(b"\x00\x03abc").await.unwrap();
        let mut rest = Vec::new();
        timeout(PATIENCE, stream.read_to_end(&mut rest)).await.expect("connection left open").unwrap();
        assert!(rest.is_empty());
        let mut stream = TcpStream::connect(address).await.unwrap();
        let answer = ask_tcp(&mut stream, &query(21, "web", RecordType::A)).await;
        assert_eq!(addresses(&answer), vec![ip("172.18.0.2")]);
    });
}

#[test]
fn two_questions_get_formerr() {
    on_both_runtimes(|| async {
        let (_, listener) = server(vec![]).await;
        let mut two = Message::from_vec(&query(22, "web", RecordType::A)).unwrap();
        two.add_query(Query::query(Name::from_ascii("db").unwrap(), RecordType::A));
        let answer = ask_udp(listener.local_addr(), &two.to_vec().unwrap()).await;
        assert_eq!(answer.metadata.id, 22);
        assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
        assert!(answer.answers.is_empty());
    });
}

#[test]
fn dropping_the_listener_frees_the_address() {
    on_both_runtimes(|| async {
        let (_, listener) = server(vec![]).await;
        let address = listener.local_addr();
        listener.close().await;
        drop(UdpSocket::bind(address).await.unwrap());
        drop(TcpListener::bind(address).await.unwrap());

        let fake = Arc::new(Fake { upstreams: vec![], asked: Mutex::new(Vec::new()) });
        let listener = DnsServer::new(fake.clone()).listen(address).await.unwrap();
        drop(listener);
        // Dropped, the sockets close once the runtime has run the aborted tasks.
        let mut rebound = None;
        for _ in 0..500 {
            if let Ok(again) = DnsServer::new(fake.clone()).listen(address).await {
                rebound = Some(again);
                break;
            }
            sleep(Duration::from_millis(10)).await;
        }
        let rebound = rebound.expect("address still held after the listener was dropped");
        let answer = ask_udp(rebound.local_addr(), &query(23, "web", RecordType::A)).await;
        assert_eq!(addresses(&answer), vec![ip("172.18.0.2")]);
    });
}

#[test]
fn bind_errors_name_the_address() {
    on_both_runtimes(|| async {
        let (_, listener) = server(vec![]).await;
        let fake = Arc::new(Fake { upstreams: vec![], asked: Mutex::new(Vec::new()) });
        let error = DnsServer::new(fake).listen(listener.local_addr()).await.unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&listener.local_addr().to_string()), "{message}");
        assert!(message.contains("another DNS server"), "{message}");
    });
}

#[test]
fn a_scope_admits_only_its_subnet() {
    let scope = Scope { subnet: Some("172.18.0.0/16".parse().unwrap()), internal: false };
    assert!(scope.admits(ip("172.18.0.2")) && scope.admits(ip("172.18.255.254")));
    assert!(!scope.admits(ip("172.19.0.2")) && !scope.admits(ip("127.0.0.1")) && !scope.admits(ip("fd00::2")));
    assert!(Scope::default().admits(ip("127.0.0.1")), "no subnet: any client");
}

/// A server over `upstreams` on 127.0.0.1 serving only what `scope` allows.
async fn scoped_server(upstreams: Vec<SocketAddr>, scope: Scope) -> (Arc<Fake>, Listener) {
    let fake = Arc::new(Fake { upstreams, asked: Mutex::new(Vec::new()) });
    let server = DnsServer::new(fake.clone()).with_upstream_timeout(Duration::from_millis(200));
    let listener = server.listen_scoped("127.0.0.1:0".parse().unwrap(), scope).await.unwrap();
    (fake, listener)
}

#[test]
fn an_internal_network_answers_project_names_and_refuses_the_rest_without_forwarding() {
    on_both_runtimes(|| async {
        let upstream = upstream(Mode::Answer).await;
        let scope = Scope { subnet: Some("127.0.0.0/8".parse().unwrap()), internal: true };
        let (_, listener) = scoped_server(vec![upstream.address], scope).await;
        let web = ask_udp(listener.local_addr(), &query(1, "web", RecordType::A)).await;
        assert_eq!(addresses(&web), vec![ip("172.18.0.2")]);
        let outside = ask_udp(listener.local_addr(), &query(2, "example.com", RecordType::A)).await;
        assert_eq!((outside.metadata.id, outside.metadata.response_code), (2, ResponseCode::Refused));
        assert!(outside.answers.is_empty());
        let unknown_ptr = ask_udp(listener.local_addr(), &query(3, "9.0.18.172.in-addr.arpa", RecordType::PTR)).await;
        assert_eq!(unknown_ptr.metadata.response_code, ResponseCode::Refused);
        let mut stream = TcpStream::connect(listener.local_addr()).await.unwrap();
        let over_tcp = ask_tcp(&mut stream, &query(4, "example.com", RecordType::A)).await;
        assert_eq!(over_tcp.metadata.response_code, ResponseCode::Refused);
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 0, "nothing went upstream");
    });
}

#[test]
fn a_client_outside_the_subnet_gets_nothing() {
    on_both_runtimes(|| async {
        let upstream = upstream(Mode::Answer).await;
        let scope = Scope { subnet: Some("172.18.0.0/16".parse().unwrap()), internal: false };
        let (fake, listener) = scoped_server(vec![upstream.address], scope).await;
        // TCP: the connection is closed unanswered.
        let mut stream = TcpStream::connect(listener.local_addr()).await.unwrap();
        let framed = query(5, "web", RecordType::A);
        let _ = stream.write_u16(u16::try_from(framed.len()).unwrap()).await;
        let _ = stream.write_all(&framed).await;
        let mut rest = Vec::new();
        let read = timeout(PATIENCE, stream.read_to_end(&mut rest)).await.expect("the server closes the connection");
        assert!(read.is_err() || rest.is_empty(), "no answer over TCP: {rest:?}");
        // UDP: no reply, and the query was not even looked at.
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.send_to(&query(6, "example.com", RecordType::A), listener.local_addr()).await.unwrap();
        let mut buffer = vec![0; 512];
        let waited = timeout(Duration::from_millis(300), socket.recv_from(&mut buffer)).await;
        assert!(waited.is_err(), "no answer over UDP");
        assert!(fake.asked.lock().unwrap().is_empty(), "the records were never consulted");
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn respond_answers_relays_and_fails_without_sockets() {
    let fake = Fake { upstreams: vec![], asked: Mutex::new(Vec::new()) };
    let client = ip("172.18.0.9");
    let local = respond(&fake, client, &query(3, "web", RecordType::A), false, None).unwrap();
    assert_eq!(addresses(&Message::from_vec(&local).unwrap()), vec![ip("172.18.0.2")]);
    let asked = query(4, "example.com", RecordType::A);
    let unanswered = Message::from_vec(&respond(&fake, client, &asked, true, None).unwrap()).unwrap();
    assert_eq!(unanswered.metadata.response_code, ResponseCode::ServFail);
    // The upstream used its own id; the client gets the answer under its id.
    let mut upstream = upstream_answer(&Message::from_vec(&asked).unwrap(), UPSTREAM_UDP_ANSWER);
    upstream.metadata.id = 999;
    let relayed = respond(&fake, client, &asked, false, Some(&upstream.to_vec().unwrap())).unwrap();
    let relayed = Message::from_vec(&relayed).unwrap();
    assert_eq!((relayed.metadata.id, addresses(&relayed)), (4, vec![IpAddr::V4(UPSTREAM_UDP_ANSWER)]));
    // An answer to another question is not relayed.
    let other =
        upstream_answer(&Message::from_vec(&query(4, "example.org", RecordType::A)).unwrap(), UPSTREAM_UDP_ANSWER);
    let refused = respond(&fake, client, &asked, false, Some(&other.to_vec().unwrap())).unwrap();
    assert_eq!(Message::from_vec(&refused).unwrap().metadata.response_code, ResponseCode::ServFail);
    assert_eq!(respond(&fake, client, b"\x00", false, None), None);
}
