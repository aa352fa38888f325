//! A blocking HTTP/1.1 client that sends requests exactly as written: the request target
//! is not normalised, headers may repeat, any method goes. One connection, kept alive
//! between requests unless the server says `connection: close`.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::wire::{self, Framing};

/// The path of Seldon's gRPC `Predict` call.
pub const GRPC_PREDICT_PATH: &str = "/seldon.protos.Seldon/Predict";

/// How long a test waits for an answer before calling the request failed.
const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method, sent as is.
    pub method: String,
    /// The request target (path and query), sent as is.
    pub target: String,
    /// Headers in order; repeats are sent as separate lines.
    pub headers: Vec<(String, String)>,
    /// The body; `content-length` is added when there is one.
    pub body: Vec<u8>,
}

impl Request {
    /// A request with any method.
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.to_string(),
            target: target.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `GET target`.
    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    /// `POST target` with a JSON body, the way Seldon's prediction API is called.
    pub fn post_json(target: &str, body: &Value) -> Self {
        Self::new("POST", target)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
    }

    /// A Seldon prediction request to `/seldon/<ns>/<name>/api/v1.0/predictions`.
    pub fn predict(model: &str) -> Self {
        Self::post_json(
            &format!("/seldon/{model}/api/v1.0/predictions"),
            &serde_json::json!({"data": {"ndarray": [[1.0, 2.0, 3.0, 4.0]]}}),
        )
    }

    /// Seldon's gRPC `Predict` call to `model` (`<ns>/<name>`), addressed by its `seldon`
    /// and `namespace` headers, with `te: trailers` and one empty message as its body.
    pub fn grpc_predict(model: &str) -> Self {
        let (namespace, name) = model.split_once('/').unwrap_or(("", model));
        Self::grpc(GRPC_PREDICT_PATH, name, namespace)
    }

    /// A gRPC call to `path` with `te: trailers` and one empty message as its body, its
    /// `seldon` and `namespace` headers exactly as given (the attacks give what no model
    /// id splits into).
    pub fn grpc(path: &str, seldon: &str, namespace: &str) -> Self {
        Self::new("POST", path)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("seldon", seldon)
            .header("namespace", namespace)
            .body(vec![0, 0, 0, 0, 0])
    }

    /// Makes this a gRPC request (`content-type: application/grpc`) addressed to `model`
    /// (`<ns>/<name>`) by Seldon's `seldon` and `namespace` headers, whatever its path.
    pub fn grpc_to(self, model: &str) -> Self {
        let (namespace, name) = model.split_once('/').unwrap_or(("", model));
        self.header("content-type", "application/grpc")
            .header("seldon", name)
            .header("namespace", namespace)
    }

    /// Adds a header (another line if it is already there).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds `authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            head.push_str("host: gateway.e2e\r\n");
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        out.write_all(&bytes)?;
        out.flush()
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, lowercase names, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    /// Every value of a header.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        wire::header_values(&self.headers, name)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The stand-in model server that answered, if the request reached one (its
    /// `x-e2e-upstream` header; Envoy's and the filter's own answers have none).
    pub fn upstream(&self) -> Option<&str> {
        self.header(crate::upstream::UPSTREAM_HEADER)
    }

    /// What the answering model server received, from its echo body.
    pub fn echo(&self) -> Option<crate::upstream::Echo> {
        crate::upstream::Echo::parse(&self.json())
    }

    /// One line for assertion messages: status, answering upstream, body.
    pub fn summary(&self) -> String {
        format!(
            "{} from {} {}",
            self.status,
            self.upstream().unwrap_or("envoy"),
            self.text()
        )
    }
}

/// A client bound to one server address.
pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    /// A client for `addr`; it connects on the first request.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, conn: None }
    }

    /// Sends a request and reads the answer, reusing the connection when the server
    /// allows it. Errors are returned, never retried: a test must see every failure.
    pub fn send(&mut self, request: &Request) -> io::Result<Response> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let stream = TcpStream::connect(self.addr)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                BufReader::new(stream)
            }
        };
        request.write_to(conn.get_mut())?;
        let head = wire::read_head(&mut conn)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before an answer",
            )
        })?;
        let mut parts = head.start_line.splitn(3, ' ');
        let status = parts.nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {:?}", head.start_line),
            )
        })?;
        let framing = if request.method == "HEAD" || status == 204 || status == 304 {
            Framing::Empty
        } else {
            wire::framing(&head.headers, Framing::UntilClose)?
        };
        let body = wire::read_body(&mut conn, framing)?;
        let close = framing == Framing::UntilClose
            || head
                .header("connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        if !close {
            self.conn = Some(conn);
        }
        Ok(Response {
            status,
            headers: head.headers,
            body,
        })
    }
}
