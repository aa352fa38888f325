//! Reading HTTP/1.1 messages off a byte stream: just enough of RFC 9112 for the test
//! client and the stand-in model servers (content-length and chunked bodies, keep-alive).
//! Written by hand so a test can send exactly the bytes it means: repeated headers,
//! un-normalised paths, methods no library would let through.

use std::io::{self, BufRead};

/// Bigger heads than this are refused: nothing in these tests sends one.
const MAX_HEAD_BYTES: usize = 256 * 1024;

/// The start line and headers of a message. Header names are lowercased, values trimmed,
/// and repeated headers kept as separate entries in order.
#[derive(Debug, Clone)]
pub struct Head {
    /// `GET /path HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start_line: String,
    /// Every header, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The first value of a header in a list of lowercase-named headers.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every value of a header in a list of lowercase-named headers, in order.
pub fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Reads a message head. `Ok(None)` means the peer closed the connection cleanly before
/// sending anything (the end of a keep-alive connection).
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the middle of a message head",
            ));
        }
        total += n;
        if total > MAX_HEAD_BYTES {
            return Err(invalid("message head too large"));
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if line.is_empty() {
            if lines.is_empty() {
                // Tolerate stray empty lines between messages (RFC 9112 2.2).
                continue;
            }
            break;
        }
        lines.push(String::from_utf8_lossy(&line).into_owned());
    }
    let mut lines = lines.into_iter();
    let start_line = lines.next().unwrap_or_default();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("not a header line: {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Some(Head {
        start_line,
        headers,
    }))
}

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `content-length` bytes.
    Length(usize),
    /// `transfer-encoding: chunked`.
    Chunked,
    /// Everything until the peer closes (responses without a length).
    UntilClose,
}

/// The framing headers declare; `otherwise` when they declare none.
pub fn framing(headers: &[(String, String)], otherwise: Framing) -> io::Result<Framing> {
    if header(headers, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        return Ok(Framing::Chunked);
    }
    match header(headers, "content-length") {
        Some(length) => length
            .parse()
            .map(Framing::Length)
            .map_err(|_| invalid(format!("bad content-length {length:?}"))),
        None => Ok(otherwise),
    }
}

/// Reads a body framed as given.
pub fn read_body(reader: &mut impl BufRead, framing: Framing) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match framing {
        Framing::Empty => {}
        Framing::Length(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        }
        Framing::UntilClose => {
            reader.read_to_end(&mut body)?;
        }
        Framing::Chunked => loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size_text = size_line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        },
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_heads_with_repeated_headers_and_chunked_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let mut reader = io::BufReader::new(&raw[..]);
        let head = read_head(&mut reader).unwrap().unwrap();
        assert_eq!(head.start_line, "HTTP/1.1 200 OK");
        assert_eq!(
            head.headers[..2],
            [("x-a".into(), "1".into()), ("x-a".into(), "2".into())]
        );
        let framing = framing(&head.headers, Framing::UntilClose).unwrap();
        assert_eq!(framing, Framing::Chunked);
        assert_eq!(read_body(&mut reader, framing).unwrap(), b"abcde");
        assert!(read_head(&mut reader).unwrap().is_none());
    }
}
