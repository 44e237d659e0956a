//! What a `POST /items` body holds: items, read by content type. A body is read whole
//! before any item goes in, so a bad item refuses the whole body and nothing of it is
//! taken.

use serde::de::DeserializeOwned;

/// The content types `POST /items` reads.
pub(crate) const ACCEPTED: &str =
    "application/json, application/x-ndjson (one JSON item per line), application/msgpack";

/// How a body's items are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// One JSON item.
    Json,
    /// One JSON item per line.
    Ndjson,
    /// One MessagePack item.
    MessagePack,
}

impl Format {
    /// The format a `Content-Type` names, if it is one of those read.
    pub(crate) fn of(content_type: &str) -> Option<Format> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Format::Json),
            "application/x-ndjson" | "application/ndjson" | "application/jsonlines" => {
                Some(Format::Ndjson)
            }
            "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack" => {
                Some(Format::MessagePack)
            }
            _ => None,
        }
    }

    /// The items in `body`, or what is wrong with it (naming the line, for NDJSON).
    pub(crate) fn items<T: DeserializeOwned>(self, body: &[u8]) -> Result<Vec<T>, String> {
        match self {
            Format::Json => serde_json::from_slice(body)
                .map(|item| vec![item])
                .map_err(|e| format!("the body is not a valid item: {e}")),
            Format::MessagePack => rmp_serde::from_slice(body)
                .map(|item| vec![item])
                .map_err(|e| format!("the body is not a valid MessagePack item: {e}")),
            Format::Ndjson => {
                let text = std::str::from_utf8(body)
                    .map_err(|e| format!("the body is not UTF-8 text: {e}"))?;
                let mut items = Vec::new();
                for (n, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let item = serde_json::from_str(line).map_err(|e| {
                        format!(
                            "line {} is not a valid item: {e}; no item of this body was taken",
                            n + 1
                        )
                    })?;
                    items.push(item);
                }
                if items.is_empty() {
                    return Err("the body holds no item".to_string());
                }
                Ok(items)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_read_by_their_essence() {
        assert_eq!(
            Format::of("application/json; charset=utf-8"),
            Some(Format::Json)
        );
        assert_eq!(Format::of("Application/X-NDJSON"), Some(Format::Ndjson));
        assert_eq!(Format::of("application/msgpack"), Some(Format::MessagePack));
        assert_eq!(Format::of("text/plain"), None);
    }

    #[test]
    fn a_bad_line_refuses_the_whole_body_and_names_the_line() {
        let error = Format::Ndjson
            .items::<u32>(b"1\n2\nthree\n4\n")
            .unwrap_err();
        assert!(error.starts_with("line 3 is not a valid item"), "{error}");
        assert_eq!(Format::Ndjson.items::<u32>(b"1\n\n2\n").unwrap(), [1, 2]);
        let packed = rmp_serde::to_vec(&"hello").unwrap();
        assert_eq!(
            Format::MessagePack.items::<String>(&packed).unwrap(),
            ["hello"]
        );
        assert!(Format::Json.items::<String>(b"hello").is_err());
    }
}
