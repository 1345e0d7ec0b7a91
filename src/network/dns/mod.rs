//! The project's embedded DNS server: service discovery for its containers.
//!
//! The supervisor of a compose project runs one [`DnsServer`] and [`DnsServer::listen`]s on the
//! gateway address of each project bridge network (UDP and TCP, port 53, in the host's network
//! namespace); containers get `nameserver <gateway>` in their /etc/resolv.conf. Names the
//! project knows (service names, container names, network aliases) are answered from
//! [`Records`], which the supervisor implements over its live container table; every other
//! query is forwarded to the client's upstream resolvers and their answer relayed.
//!
//! Local answers are authoritative, carry [`LOCAL_TTL`], and are never cached here: a restarted
//! container has a new address at once. `ANY` for a local name is answered like `A` and `AAAA`
//! together; other types for a local name (MX, TXT, ...) get NOERROR with no records, so that a
//! container never sees a project name resolved upstream.
//!
//! Each listener has a [`Scope`]: it serves only clients from its own network's subnet (a
//! query from anywhere else, the host included, gets no reply at all; the firewall drops those
//! that come from another interface before they get here), and on an `internal: true` network
//! it answers only the project's names: anything else gets REFUSED and never leaves the host
//! (the CVE-2024-29018 class: an internal network must not leak data out through DNS).
//!
//! Forwarding uses a fresh ephemeral socket per query and upstream with a fresh random query
//! id, and takes only an answer from that upstream, to that id and that question: there is no
//! shared socket whose traffic an off-path host could spoof. An upstream that answers SERVFAIL
//! or REFUSED, or not at all within [`UPSTREAM_TIMEOUT`], is passed over for the next one; when
//! none answers, or the list is empty, the client gets SERVFAIL.

mod answer;
mod forward;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep, timeout};

use answer::{Action, Transport};

/// TTL of local answers, in seconds: short, because a container that restarts or is recreated
/// comes back with a new address and its peers' resolvers must not keep the old one long.
pub const LOCAL_TTL: u32 = 10;

/// How long one upstream gets to answer a forwarded query, over UDP and again over TCP.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a TCP connection may wait for the next complete query (or for its answer to be
/// taken) before it is closed.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Forwarded queries in flight per UDP socket; past it a query gets SERVFAIL at once, so a
/// flood towards dead upstreams cannot pile up tasks and sockets without bound.
const MAX_FORWARDS: usize = 1024;

/// Open TCP connections per listener; a connection past it is closed at once.
const MAX_TCP_CONNECTIONS: usize = 128;

/// What the server knows; implemented by the supervisor over its live container table, so it
/// must be cheap: it is called on every query, and the server caches nothing of it.
pub trait Records: Send + Sync + 'static {
    /// Addresses of `name` (lower-case, no trailing dot) as seen by the container at `client`
    /// (the query's source address). `None`: not a name of the project, the query is forwarded
    /// upstream. `Some(vec![])`: a project name with no address on a network the client shares,
    /// answered NOERROR with no records (not forwarded).
    fn lookup(&self, client: IpAddr, name: &str) -> Option<Vec<IpAddr>>;

    /// The name (a container name, without trailing dot) answering a PTR query for `address`
    /// asked by `client`, if the project knows it; `None` forwards the query.
    fn reverse(&self, client: IpAddr, address: IpAddr) -> Option<String>;

    /// Upstream resolvers for queries from `client`, tried in order: its service's `dns:`
    /// servers, else the host's (port 53 unless given otherwise).
    fn upstreams(&self, client: IpAddr) -> Vec<SocketAddr>;
}

/// Why the DNS server could not listen.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A socket could not be bound.
    #[error("cannot listen for DNS queries on {address} ({protocol}): {source}{}", hint(source))]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// `UDP` or `TCP`.
        protocol: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The likely cause of a failed bind, for the message.
fn hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::AddrInUse => {
            "; another DNS server on the host (dnsmasq, systemd-resolved, named, ...) probably holds \
             port 53 on all addresses: make it listen on specific addresses only"
        }
        io::ErrorKind::AddrNotAvailable => "; the address is not configured on any host interface",
        io::ErrorKind::PermissionDenied => "; binding port 53 needs root or CAP_NET_BIND_SERVICE",
        _ => "",
    }
}

/// Whom a listener serves and what it may do for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope {
    /// Only clients in this subnet are answered (the network's own); `None` serves any client.
    pub subnet: Option<ipnet::Ipv4Net>,
    /// Never forward: names the project does not know get REFUSED (`internal: true`).
    pub internal: bool,
}

impl Scope {
    /// Whether a query from `client` is served at all.
    pub fn admits(&self, client: IpAddr) -> bool {
        match (self.subnet, client) {
            (None, _) => true,
            (Some(subnet), IpAddr::V4(v4)) => subnet.contains(&v4),
            (Some(_), IpAddr::V6(_)) => false,
        }
    }
}

/// The embedded DNS server of one project; cheap to clone, each clone sharing its [`Records`].
#[derive(Clone)]
pub struct DnsServer {
    records: Arc<dyn Records>,
    upstream_timeout: Duration,
}

impl fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsServer").field("upstream_timeout", &self.upstream_timeout).finish_non_exhaustive()
    }
}

impl DnsServer {
    /// A server answering from `records`.
    pub fn new(records: Arc<dyn Records>) -> Self {
        Self { records, upstream_timeout: UPSTREAM_TIMEOUT }
    }

    /// Gives each upstream `limit` instead of [`UPSTREAM_TIMEOUT`] to answer; applies to the
    /// listeners started after it.
    pub fn with_upstream_timeout(mut self, limit: Duration) -> Self {
        self.upstream_timeout = limit;
        self
    }

    /// Binds UDP and TCP on `address` (e.g. 172.18.0.1:53) and serves there until the returned
    /// [`Listener`] is dropped or closed. With port 0, UDP and TCP get the same free port.
    pub async fn listen(&self, address: SocketAddr) -> Result<Listener, DnsError> {
        self.listen_scoped(address, Scope::default()).await
    }

    /// [`listen`](Self::listen), serving only what `scope` allows.
    pub async fn listen_scoped(&self, address: SocketAddr, scope: Scope) -> Result<Listener, DnsError> {
        let bind_error = |protocol| move |source| DnsError::Bind { address, protocol, source };
        // With port 0 the kernel picks the UDP port, which TCP may hold for something else:
        // pick again a few times rather than fail.
        let attempts = if address.port() == 0 { 8 } else { 1 };
        let mut attempt = 0;
        let (udp, tcp, local) = loop {
            attempt += 1;
            let udp = UdpSocket::bind(address).await.map_err(bind_error("UDP"))?;
            let local = udp.local_addr().map_err(bind_error("UDP"))?;
            match TcpListener::bind(local).await {
                Ok(tcp) => break (udp, tcp, local),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < attempts => continue,
                Err(e) => return Err(bind_error("TCP")(e)),
            }
        };
        let context =
            Arc::new(Context { records: self.records.clone(), upstream_timeout: self.upstream_timeout, local, scope });
        let tasks = vec![tokio::spawn(serve_udp(context.clone(), udp)), tokio::spawn(serve_tcp(context, tcp))];
        Ok(Listener { local, tasks })
    }
}

/// The reply the server sends for one message, `bytes` from `client` (over TCP when `tcp`),
/// without sockets: a local answer, or for a forwarded query `upstream` relayed as the answer
/// of its only upstream (SERVFAIL when that is `None` or does not answer the query). `None`: no
/// reply (UDP) or the connection is closed (TCP). The listeners' own per-message path, public so
/// that the fuzzer and tests reach it.
pub fn respond(
    records: &dyn Records,
    client: IpAddr,
    bytes: &[u8],
    tcp: bool,
    upstream: Option<&[u8]>,
) -> Option<Vec<u8>> {
    let transport = if tcp { Transport::Tcp } else { Transport::Udp };
    match answer::decide(records, client, bytes, transport) {
        Action::Drop => None,
        Action::Reply(reply) => Some(reply),
        Action::Forward(forward) => {
            let question = forward.question()?;
            // The id the server would have picked at random is taken from the answer instead,
            // so that an answer can match at all; the question must still be the client's.
            let answer = upstream.filter(|answer| {
                let id = answer.get(..2).and_then(|id| <[u8; 2]>::try_from(id).ok()).map_or(0, u16::from_be_bytes);
                forward::answers(answer, id, question)
            });
            match answer {
                Some(answer) => forward.relay(answer.to_vec()),
                None => forward.servfail(),
            }
        }
    }
}

/// Serving on one address; dropping it stops serving there (see [`Listener::close`]).
#[derive(Debug)]
pub struct Listener {
    local: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Listener {
    /// The address served, with the port the kernel picked when port 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops serving and returns once both sockets are closed, so the address can be bound
    /// again right away. Dropping the listener stops serving too, but the sockets close a
    /// moment later, when the runtime gets to the aborted tasks.
    pub async fn close(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            // An aborted task's future (and the sockets it owns) is dropped before its handle
            // resolves; the result itself says nothing more.
            let _ = task.await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the tasks serving one address share.
struct Context {
    records: Arc<dyn Records>,
    upstream_timeout: Duration,
    /// The address served, never used as an upstream (a query would loop back here).
    local: SocketAddr,
    /// Whom this listener serves, and whether it forwards.
    scope: Scope,
}

impl Context {
    /// What to do with a query from `client`: an internal network's listener refuses what it
    /// would otherwise forward.
    fn decide(&self, client: IpAddr, query: &[u8], transport: Transport) -> Action {
        match answer::decide(self.records.as_ref(), client, query, transport) {
            Action::Forward(forward) if self.scope.internal => forward.refused().map_or(Action::Drop, Action::Reply),
            action => action,
        }
    }
}

/// The UDP loop. Local answers are sent from here; forwarded queries get a task each, so a slow
/// upstream never delays anything else. Those tasks hand their answers back over a channel
/// rather than sharing the socket, so that aborting this task closes the socket at once; they
/// live in a `JoinSet`, aborted with it.
async fn serve_udp(context: Arc<Context>, socket: UdpSocket) {
    // A datagram larger than the buffer is cut silently; queries are far smaller than this.
    let mut buffer = vec![0; usize::from(u16::MAX)];
    let (answers, mut answered) = mpsc::channel::<(Vec<u8>, SocketAddr)>(64);
    let mut forwards = JoinSet::new();
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let Ok((len, peer)) = received else {
                    // Errors here are transient (memory, a signal); do not spin on one.
                    sleep(Duration::from_millis(10)).await;
                    continue;
                };
                while forwards.try_join_next().is_some() {}
                let client = peer.ip().to_canonical();
                if !context.scope.admits(client) {
                    continue;
                }
                let Some(query) = buffer.get(..len) else { continue };
                match context.decide(client, query, Transport::Udp) {
                    Action::Drop => {}
                    Action::Reply(reply) => {
                        let _ = socket.send_to(&reply, peer).await;
                    }
                    Action::Forward(forward) if forwards.len() >= MAX_FORWARDS => {
                        if let Some(reply) = forward.servfail() {
                            let _ = socket.send_to(&reply, peer).await;
                        }
                    }
                    Action::Forward(forward) => {
                        let context = context.clone();
                        let answers = answers.clone();
                        forwards.spawn(async move {
                            if let Some(reply) = forward::resolve(&context, client, &forward, Transport::Udp).await {
                                let _ = answers.send((reply, peer)).await;
                            }
                        });
                    }
                }
            }
            Some((reply, peer)) = answered.recv() => {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    }
}

/// The TCP accept loop; connections live in a `JoinSet` aborted with it.
async fn serve_tcp(context: Arc<Context>, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = listener.accept().await;
        while connections.try_join_next().is_some() {}
        match accepted {
            // Dropping the stream closes it: the client retries or gives up.
            Ok(_) if connections.len() >= MAX_TCP_CONNECTIONS => {}
            // Not this network's: closed unanswered.
            Ok((_, peer)) if !context.scope.admits(peer.ip().to_canonical()) => {}
            Ok((stream, peer)) => {
                connections.spawn(serve_connection(context.clone(), stream, peer.ip().to_canonical()));
            }
            // Out of file descriptors, usually: wait for some to be freed rather than spin.
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One TCP connection: length-prefixed queries, answered in order, until the client closes it,
/// sends something malformed, or stays idle for [`TCP_IDLE_TIMEOUT`].
async fn serve_connection(context: Arc<Context>, mut stream: TcpStream, client: IpAddr) {
    loop {
        let Ok(Ok(query)) = timeout(TCP_IDLE_TIMEOUT, read_message(&mut stream)).await else { return };
        let reply = match context.decide(client, &query, Transport::Tcp) {
            Action::Drop => return,
            Action::Reply(reply) => Some(reply),
            Action::Forward(forward) => forward::resolve(&context, client, &forward, Transport::Tcp).await,
        };
        let Some(reply) = reply else { return };
        if !matches!(timeout(TCP_IDLE_TIMEOUT, write_message(&mut stream, &reply)).await, Ok(Ok(()))) {
            return;
        }
    }
}

/// Reads one length-prefixed DNS message (RFC 1035 4.2.2).
async fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut message = vec![0; usize::from(len)];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

/// Writes one length-prefixed DNS message, in one write so it leaves in as few segments as can.
async fn write_message(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}
