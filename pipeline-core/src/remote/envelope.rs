//! One item on the wire between processes: MessagePack of its lineage and itself, with a
//! header naming what the receiver must expect.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::lineage::Lineage;

/// The header naming the graph, the edge and the item type of a message.
pub(crate) const SCHEMA_HEADER: &str = "Pipeline-Schema";
/// On a dead-lettered message: why it was rejected.
pub(crate) const REASON_HEADER: &str = "Pipeline-Rejected";
/// On a note (see `notes`): the edge's roots that are done, instead of an item.
pub(crate) const NOTE_HEADER: &str = "Pipeline-Note";
/// On an end marker: the sending process's instance name.
pub(crate) const INSTANCE_HEADER: &str = "Pipeline-Instance";

/// What both ends of an edge must agree on. The type name comes from the compiler: two
/// builds of one program agree, a process built from another graph or item type does not.
pub(crate) fn schema<T>(pipeline: &str, from: &str, to: &str) -> String {
    format!("{pipeline}/{from}->{to}:{}", std::any::type_name::<T>())
}

pub(crate) fn encode<T: Serialize>(lineage: Lineage, item: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec(&(lineage.root_index(), lineage.path(), item))
        .map_err(|e| format!("could not encode the item: {e}"))
}

/// Why a message was not taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// No schema header: not sent by a pipeline.
    Foreign,
    /// Sent by a pipeline built from another graph or item type.
    OtherSchema(String),
    /// The payload is not this item type in MessagePack.
    Corrupt(String),
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Foreign => {
                write!(f, "no `{SCHEMA_HEADER}` header: not sent by this pipeline")
            }
            Rejected::OtherSchema(got) => write!(
                f,
                "sent by a different graph or item type (`{got}`); rebuild every process from the same code"
            ),
            Rejected::Corrupt(error) => write!(f, "the payload does not decode: {error}"),
        }
    }
}

/// Why the NATS client cannot read a message with these header bytes, if it cannot: it
/// drops its connection on such a message instead of handing it over, so a receiver must
/// find it in the stream and set it aside (see `jetstream`). Mirrors the client's parser.
pub(crate) fn header_defect(header: &[u8]) -> Option<String> {
    let Ok(text) = std::str::from_utf8(header) else {
        return Some("its headers are not UTF-8".into());
    };
    let mut lines = text.lines();
    let Some(status) = lines
        .next()
        .and_then(|version| version.strip_prefix("NATS/1.0"))
    else {
        return Some("its header block does not start with `NATS/1.0`".into());
    };
    let code = status.trim().split(' ').next().unwrap_or("");
    let valid_code = code.is_empty()
        || (code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0'));
    if !valid_code {
        return Some(format!("its header status `{code}` is not a status code"));
    }
    for line in lines {
        if line.is_empty() || line.starts_with(char::is_whitespace) {
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            return Some("a header line has no `:`".into());
        };
        if name.is_empty() || name.bytes().any(|b| !(33..=126).contains(&b)) {
            return Some(format!("the header name `{name}` is not a token"));
        }
    }
    None
}

pub(crate) fn decode<T: DeserializeOwned>(
    schema: Option<&str>,
    expected: &str,
    payload: &[u8],
) -> Result<(Lineage, T), Rejected> {
    match schema {
        None => return Err(Rejected::Foreign),
        Some(got) if got != expected => return Err(Rejected::OtherSchema(got.to_string())),
        Some(_) => {}
    }
    let (root, path, item): (u64, u64, T) =
        rmp_serde::from_slice(payload).map_err(|e| Rejected::Corrupt(e.to_string()))?;
    Ok((Lineage::from_parts(root, path), item))
}

pub(crate) fn encode_done(done: &super::notes::Done) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec(done).map_err(|e| format!("could not encode a note: {e}"))
}

pub(crate) fn decode_done(
    schema: Option<&str>,
    expected: &str,
    payload: &[u8],
) -> Result<super::notes::Done, Rejected> {
    match schema {
        None => return Err(Rejected::Foreign),
        Some(got) if got != expected => return Err(Rejected::OtherSchema(got.to_string())),
        Some(_) => {}
    }
    rmp_serde::from_slice(payload).map_err(|e| Rejected::Corrupt(e.to_string()))
}

/// A whole batch in one message (at-most-once edges).
pub(crate) fn encode_batch<T: Serialize>(items: &[(Lineage, T)]) -> Result<Vec<u8>, String> {
    let parts: Vec<(u64, u64, &T)> = items
        .iter()
        .map(|(lineage, item)| (lineage.root_index(), lineage.path(), item))
        .collect();
    rmp_serde::to_vec(&parts).map_err(|e| format!("could not encode the items: {e}"))
}

pub(crate) fn decode_batch<T: DeserializeOwned>(
    schema: Option<&str>,
    expected: &str,
    payload: &[u8],
) -> Result<Vec<(Lineage, T)>, Rejected> {
    match schema {
        None => return Err(Rejected::Foreign),
        Some(got) if got != expected => return Err(Rejected::OtherSchema(got.to_string())),
        Some(_) => {}
    }
    let parts: Vec<(u64, u64, T)> =
        rmp_serde::from_slice(payload).map_err(|e| Rejected::Corrupt(e.to_string()))?;
    Ok(parts
        .into_iter()
        .map(|(root, path, item)| (Lineage::from_parts(root, path), item))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_comes_back_with_its_lineage() {
        let lineage = Lineage::root(41).child(2);
        let bytes = encode(lineage, &("olleh".to_string(), 7u32)).unwrap();
        let expected = schema::<(String, u32)>("seeds", "rev", "out");
        let (back, item): (Lineage, (String, u32)) =
            decode(Some(&expected), &expected, &bytes).unwrap();
        assert_eq!((back, item), (lineage, ("olleh".to_string(), 7)));
    }

    #[test]
    fn a_batch_comes_back_whole() {
        let items = vec![(Lineage::root(1), 10u64), (Lineage::root(2).child(0), 20)];
        let expected = schema::<u64>("p", "a", "b");
        let bytes = encode_batch(&items).unwrap();
        assert_eq!(
            decode_batch::<u64>(Some(&expected), &expected, &bytes).unwrap(),
            items
        );
    }

    #[test]
    fn headers_the_client_cannot_read_are_told_apart() {
        assert_eq!(header_defect(b"NATS/1.0\r\nA: b\r\n\r\n"), None);
        assert_eq!(header_defect(b"NATS/1.0 503\r\n\r\n"), None);
        assert_eq!(
            header_defect(b"NATS/1.0\r\nA: b\r\n  continued\r\n\r\n"),
            None
        );
        for (bad, why) in [
            (&b"NATS/1.0\r\nA: \xff\r\n\r\n"[..], "not UTF-8"),
            (b"NATS/1.0\r\nno colon\r\n\r\n", "no `:`"),
            (b"HTTP/1.1 200\r\nA: b\r\n\r\n", "`NATS/1.0`"),
            (b"NATS/1.0 abc\r\n\r\n", "not a status code"),
            (b"NATS/1.0\r\nA b: c\r\n\r\n", "not a token"),
        ] {
            let defect = header_defect(bad).unwrap();
            assert!(defect.contains(why), "{defect}");
        }
    }

    #[test]
    fn foreign_other_and_corrupt_messages_are_told_apart() {
        let expected = schema::<String>("seeds", "inp", "rev");
        let bytes = encode(Lineage::root(1), &"x".to_string()).unwrap();
        assert_eq!(
            decode::<String>(None, &expected, &bytes),
            Err(Rejected::Foreign)
        );
        let other = schema::<u64>("seeds", "inp", "rev");
        assert!(matches!(
            decode::<String>(Some(&other), &expected, &bytes),
            Err(Rejected::OtherSchema(got)) if got == other
        ));
        assert!(matches!(
            decode::<String>(Some(&expected), &expected, b"\xc1 not msgpack"),
            Err(Rejected::Corrupt(_))
        ));
        let message = Rejected::OtherSchema(other).to_string();
        assert!(message.contains("rebuild every process"), "{message}");
    }
}
