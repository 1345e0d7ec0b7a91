//! Forwarding a query to the client's upstream resolvers.
//!
//! Each attempt has its own socket (a random ephemeral port) and a random query id, and takes
//! only a response from that upstream, to that id, for the same question: what an off-path
//! host must guess to spoof an answer is 32 bits, not the 16 of a shared socket's id.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Header, MessageType, Query, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use super::Context;
use super::answer::{Forward, Transport};

/// The reply to `forward` from `client` asked over `transport`: the first upstream answer that
/// is not SERVFAIL or REFUSED; else the last such answer; else SERVFAIL. `None` only when not
/// even SERVFAIL can be encoded.
pub(super) async fn resolve(
    context: &Context,
    client: IpAddr,
    forward: &Forward,
    transport: Transport,
) -> Option<Vec<u8>> {
    let question = forward.question()?;
    let limit = context.upstream_timeout;
    let mut refused = None;
    for upstream in context.records.upstreams(client) {
        if upstream == context.local {
            continue;
        }
        let id = rand::random::<u16>();
        let query = forward.upstream_query(id);
        let answer = match transport {
            Transport::Tcp => over_tcp(upstream, &query, id, question, limit).await,
            Transport::Udp => match over_udp(upstream, &query, id, question, limit).await {
                // The whole answer over TCP; if that fails, the cut one still tells the client
                // to retry over TCP itself.
                Some(cut) if header(&cut).is_some_and(|h| h.truncation) => {
                    over_tcp(upstream, &query, id, question, limit).await.or(Some(cut))
                }
                answer => answer,
            },
        };
        let Some(answer) = answer else { continue };
        match header(&answer).map(|h| h.response_code) {
            // A misconfigured or lame upstream: another may do better (as docker's resolver).
            Some(ResponseCode::ServFail | ResponseCode::Refused) => refused = Some(answer),
            _ => return forward.relay(answer),
        }
    }
    match refused {
        Some(answer) => forward.relay(answer),
        None => forward.servfail(),
    }
}

/// `query` to `upstream` over UDP: its answer, or `None` when it has none within `limit`.
async fn over_udp(upstream: SocketAddr, query: &[u8], id: u16, question: &Query, limit: Duration) -> Option<Vec<u8>> {
    let any: IpAddr = if upstream.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let socket = UdpSocket::bind((any, 0)).await.ok()?;
    // Connected, the socket takes datagrams from the upstream only, and an ICMP port
    // unreachable fails the receive at once instead of waiting out the timeout.
    socket.connect(upstream).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buffer = vec![0; usize::from(u16::MAX)];
    timeout(limit, async {
        loop {
            let len = socket.recv(&mut buffer).await.ok()?;
            let answer = buffer.get(..len)?;
            // Anything else is stale or forged: keep waiting for the real answer.
            if answers(answer, id, question) {
                return Some(answer.to_vec());
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// `query` to `upstream` over TCP: its answer, or `None` when it has none within `limit`.
async fn over_tcp(upstream: SocketAddr, query: &[u8], id: u16, question: &Query, limit: Duration) -> Option<Vec<u8>> {
    timeout(limit, async {
        let mut stream = TcpStream::connect(upstream).await.ok()?;
        let len = u16::try_from(query.len()).ok()?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await.ok()?;
        let len = stream.read_u16().await.ok()?;
        let mut answer = vec![0; usize::from(len)];
        stream.read_exact(&mut answer).await.ok()?;
        answers(&answer, id, question).then_some(answer)
    })
    .await
    .ok()
    .flatten()
}

/// Whether `bytes` is a response to query `id` asking `question`.
pub(super) fn answers(bytes: &[u8], id: u16, question: &Query) -> bool {
    let mut decoder = BinDecoder::new(bytes);
    let Ok(header) = Header::read(&mut decoder) else { return false };
    if header.id != id || header.message_type != MessageType::Response {
        return false;
    }
    match header.counts.queries {
        // Some servers leave the question out of error responses.
        0 => header.response_code != ResponseCode::NoError,
        // Names compare case-insensitively: upstreams may randomise case (DNS 0x20).
        1 => Query::read(&mut decoder).is_ok_and(|asked| asked == *question),
        _ => false,
    }
}

/// The header of a message already checked by [`answers`].
fn header(bytes: &[u8]) -> Option<Header> {
    Header::read(&mut BinDecoder::new(bytes)).ok()
}
