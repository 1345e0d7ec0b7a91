//! What to do with one query: drop it, answer it from the project's records, or forward it;
//! and the shaping of every reply to what the client can take.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

use super::{LOCAL_TTL, Records};

/// The largest UDP reply to a client without EDNS (RFC 1035 4.2.1).
const UDP_PLAIN: u16 = 512;

/// The largest UDP reply this server sends, whatever larger size a client offers: bridge
/// traffic stays on the host, but there is no point in fragments of more than a few packets.
const UDP_MAX: u16 = 4096;

/// How the query came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    /// A datagram: replies are cut to the client's size.
    Udp,
    /// A TCP connection: replies up to 64 KiB.
    Tcp,
}

/// What to do with a query.
pub(super) enum Action {
    /// Malformed or not a query: no reply (UDP) or close the connection (TCP).
    Drop,
    /// This reply, encoded.
    Reply(Vec<u8>),
    /// Not a project name: ask upstream.
    Forward(Forward),
}

/// A query to forward, with what it takes to reply to its client.
pub(super) struct Forward {
    /// The query as parsed, for replies made here (SERVFAIL, truncation).
    request: Message,
    /// The query as received, sent upstream as it is (EDNS options and flags intact) but for
    /// its id.
    raw: Vec<u8>,
    /// The largest reply the client takes.
    limit: u16,
}

impl Forward {
    /// The query's only question.
    pub(super) fn question(&self) -> Option<&Query> {
        self.request.queries.first()
    }

    /// The query to send upstream, under `id`.
    pub(super) fn upstream_query(&self, id: u16) -> Vec<u8> {
        let mut query = self.raw.clone();
        if let Some(head) = query.get_mut(..2) {
            head.copy_from_slice(&id.to_be_bytes());
        }
        query
    }

    /// An upstream's answer (already checked to be one to this question) as the reply to the
    /// client: under the client's id, cut to its size.
    pub(super) fn relay(&self, mut answer: Vec<u8>) -> Option<Vec<u8>> {
        answer.get_mut(..2)?.copy_from_slice(&self.request.metadata.id.to_be_bytes());
        if answer.len() <= usize::from(self.limit) {
            return Some(answer);
        }
        match Message::from_vec(&answer) {
            Ok(message) => encode(&message, self.limit),
            // Cannot cut what cannot be parsed: tell the client to come back over TCP.
            Err(_) => {
                let mut reply = reply(&self.request, ResponseCode::NoError);
                reply.metadata.truncation = true;
                encode(&reply, self.limit)
            }
        }
    }

    /// REFUSED for the client: this server does not forward its queries (an internal network).
    pub(super) fn refused(&self) -> Option<Vec<u8>> {
        encode(&reply(&self.request, ResponseCode::Refused), self.limit)
    }

    /// SERVFAIL for the client: no upstream answered.
    pub(super) fn servfail(&self) -> Option<Vec<u8>> {
        encode(&reply(&self.request, ResponseCode::ServFail), self.limit)
    }
}

/// Decides what to do with `bytes`, a message from `client`.
pub(super) fn decide(records: &dyn Records, client: IpAddr, bytes: &[u8], transport: Transport) -> Action {
    // The header first: it is all a FORMERR needs, and a huge question count must not size
    // allocations in the full parse.
    let Ok(header) = Header::read(&mut BinDecoder::new(bytes)) else { return Action::Drop };
    if header.message_type != MessageType::Query {
        // Answering responses could make two servers bounce packets forever.
        return Action::Drop;
    }
    if header.counts.queries != 1 {
        let mut reply = Message::error_msg(header.id, header.op_code, ResponseCode::FormErr);
        reply.metadata.recursion_desired = header.recursion_desired;
        reply.metadata.recursion_available = true;
        return encode(&reply, UDP_PLAIN).map_or(Action::Drop, Action::Reply);
    }
    let Ok(request) = Message::from_vec(bytes) else { return Action::Drop };
    let limit = match transport {
        Transport::Tcp => u16::MAX,
        Transport::Udp => request.edns.as_ref().map_or(UDP_PLAIN, |edns| edns.max_payload().clamp(UDP_PLAIN, UDP_MAX)),
    };
    let respond = |reply: &Message| encode(reply, limit).map_or(Action::Drop, Action::Reply);
    if request.metadata.op_code != OpCode::Query {
        return respond(&reply(&request, ResponseCode::NotImp));
    }
    if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
        return respond(&reply(&request, ResponseCode::BADVERS));
    }
    let Some(query) = request.queries.first() else { return Action::Drop };
    if query.query_class == DNSClass::IN
        && let Some(answer) = local(records, client, &request, query)
    {
        return respond(&answer);
    }
    Action::Forward(Forward { raw: bytes.to_vec(), request, limit })
}

/// The reply to `query` from the project's records, if they know its name.
fn local(records: &dyn Records, client: IpAddr, request: &Message, query: &Query) -> Option<Message> {
    let mut answer = reply(request, ResponseCode::NoError);
    answer.metadata.authoritative = true;
    if query.query_type == RecordType::PTR
        && let Some(address) = reverse_address(&query.name)
        && let Some(target) = records.reverse(client, address)
        && let Ok(mut target) = Name::from_ascii(&target)
    {
        target.set_fqdn(true);
        answer.add_answer(Record::from_rdata(query.name.clone(), LOCAL_TTL, RData::PTR(PTR(target))));
        return Some(answer);
    }
    let name = lookup_key(&query.name)?;
    let addresses = records.lookup(client, &name)?;
    for address in addresses {
        let rdata = match (query.query_type, address) {
            (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => RData::A(A(v4)),
            (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
            _ => continue,
        };
        // The name as asked, case included: some resolvers check that the answer echoes it.
        answer.add_answer(Record::from_rdata(query.name.clone(), LOCAL_TTL, rdata));
    }
    Some(answer)
}

/// `name` as [`Records::lookup`] takes it: lower-case, without the trailing dot; `None` for the
/// root, which no project name is.
fn lookup_key(name: &Name) -> Option<String> {
    let text = name.to_ascii().to_ascii_lowercase();
    let text = text.strip_suffix('.').unwrap_or(&text);
    (!text.is_empty()).then(|| text.to_owned())
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa`, or 32 nibbles then `ip6.arpa`) stands
/// for.
fn reverse_address(name: &Name) -> Option<IpAddr> {
    let labels: Vec<String> = name.iter().map(|label| String::from_utf8_lossy(label).to_ascii_lowercase()).collect();
    match labels.as_slice() {
        [d, c, b, a, in_addr, arpa] if in_addr == "in-addr" && arpa == "arpa" => {
            let octet = |label: &String| label.parse::<u8>().ok();
            Some(IpAddr::V4(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?)))
        }
        [nibbles @ .., ip6, arpa] if nibbles.len() == 32 && ip6 == "ip6" && arpa == "arpa" => {
            let mut bits = 0u128;
            // The least significant nibble comes first.
            for nibble in nibbles.iter().rev() {
                let [digit] = nibble.as_bytes() else { return None };
                bits = bits << 4 | u128::from(char::from(*digit).to_digit(16)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bits)))
        }
        _ => None,
    }
}

/// A reply to `request` with its question, id and recursion-desired flag, and `code`.
fn reply(request: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    // Containers use this server as their recursive resolver; glibc and musl warn or fail
    // otherwise.
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = code;
    reply.queries = request.queries.clone();
    // RFC 6891 6.1.1: a client that sent OPT gets one back.
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_MAX);
        reply.edns = Some(edns);
    }
    reply
}

/// `message` encoded in at most `limit` bytes: records that do not fit are left out and the
/// truncation flag set (the client then asks again over TCP).
pub(super) fn encode(message: &Message, limit: u16) -> Option<Vec<u8>> {
    let mut buffer = Vec::with_capacity(usize::from(UDP_PLAIN));
    let mut encoder = BinEncoder::new(&mut buffer);
    encoder.set_max_size(limit);
    message.emit(&mut encoder).ok()?;
    Some(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        let name = |text: &str| Name::from_ascii(text).unwrap();
        assert_eq!(reverse_address(&name("2.0.18.172.in-addr.arpa.")), Some("172.18.0.2".parse().unwrap()));
        assert_eq!(reverse_address(&name("2.0.18.172.IN-ADDR.ARPA")), Some("172.18.0.2".parse().unwrap()));
        assert_eq!(reverse_address(&name("0.18.172.in-addr.arpa.")), None);
        assert_eq!(reverse_address(&name("300.0.18.172.in-addr.arpa.")), None);
        let v6 = "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
        assert_eq!(reverse_address(&name(v6)), Some("fd00::3".parse().unwrap()));
        assert_eq!(reverse_address(&name("web.")), None);
    }

    #[test]
    fn lookup_keys() {
        let key = |text: &str| lookup_key(&Name::from_ascii(text).unwrap());
        assert_eq!(key("WeB."), Some("web".to_owned()));
        assert_eq!(key("my-app_web-1"), Some("my-app_web-1".to_owned()));
        assert_eq!(key("."), None);
    }
}
