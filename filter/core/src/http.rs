//! Small HTTP rules the filter's contract and decisions share: header names, query-string
//! parameters, and the two percent-decodings.
//!
//! The two decoders differ on purpose. A path segment is decoded only to find the model it
//! might address (`normalise_segment`): unreserved characters only, case folded, so every
//! spelling that could name the same model is checked against it, while `%2F` and the like
//! stay escaped and cannot make a name. A query parameter may hold a token
//! (`query_values`): it is decoded whole, `+` as a space, as form-encoded query strings
//! are read, so the filter checks the token as a server reading the query would.

use std::borrow::Cow;

/// Whether `name` is a plain HTTP header name a policy may read or write (no pseudo-header).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The decoded values of a query parameter (`+` is a space, broken escapes stay as they
/// are).
pub fn query_values<'q>(query: &'q str, param: &'q str) -> impl Iterator<Item = Cow<'q, str>> + 'q {
    query.split('&').filter_map(move |pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(name) == param).then(|| percent_decode(value))
    })
}

/// The query string without the given parameter (for `forward_token: false`).
pub(crate) fn query_without(query: &str, param: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            percent_decode(name) != param
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = bytes
                    .get(i + 1..i + 3)
                    .and_then(|p| std::str::from_utf8(p).ok());
                match pair.and_then(|p| u8::from_str_radix(p, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Decodes percent-escapes of unreserved characters and folds ASCII case, allocating only
/// when the segment needs it.
pub(crate) fn normalise_segment(segment: &str) -> Cow<'_, str> {
    if !segment.bytes().any(|b| b == b'%' || b.is_ascii_uppercase()) {
        return Cow::Borrowed(segment);
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            let decoded = h * 16 + l;
            if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
                out.push(decoded.to_ascii_lowercase());
                i += 3;
                continue;
            }
        }
        out.push(b.to_ascii_lowercase());
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameter_removal_keeps_the_rest() {
        assert_eq!(query_without("a=1&token=x&b=2", "token"), "a=1&b=2");
        assert_eq!(query_without("token=x", "token"), "");
        assert_eq!(query_without("t%6Fken=x&c", "token"), "c");
    }

    #[test]
    fn percent_decoding_tolerates_broken_escapes() {
        assert_eq!(percent_decode("a%"), "a%");
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("a%zz"), "a%zz");
        assert_eq!(percent_decode("a%41+b"), "aA b");
    }
}
