//! Stand-in model servers: one per predictor, answering every request with `200` and a
//! JSON echo of what reached it (method, path, headers), so a test can see what the
//! gateway forwarded: whether the token was removed, which claim headers were added,
//! which routing header the predictor was chosen by.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::wire::{self, Framing};

/// Response header naming the server that answered.
pub const UPSTREAM_HEADER: &str = "x-e2e-upstream";

/// A request as a model server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The method.
    pub method: String,
    /// The path and query, after the gateway's rewrite.
    pub path: String,
    /// Every header, lowercase names, in order.
    pub headers: Vec<(String, String)>,
}

impl Received {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::header(&self.headers, name)
    }

    /// Every value of a header, in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        wire::header_values(&self.headers, name)
    }
}

/// The echo a model server answers with, read back from a response body.
#[derive(Debug, Clone)]
pub struct Echo {
    /// The server's name (the predictor, or the role of the server).
    pub server: String,
    /// What it received.
    pub received: Received,
}

impl Echo {
    /// Parses a model server's answer; `None` when the body is not one.
    pub fn parse(body: &Value) -> Option<Self> {
        let server = body.get("server")?.as_str()?.to_string();
        let method = body.get("method")?.as_str()?.to_string();
        let path = body.get("path")?.as_str()?.to_string();
        let headers = body
            .get("headers")?
            .as_array()?
            .iter()
            .filter_map(|pair| {
                let pair = pair.as_array()?;
                Some((
                    pair.first()?.as_str()?.to_string(),
                    pair.get(1)?.as_str()?.to_string(),
                ))
            })
            .collect();
        Some(Self {
            server,
            received: Received {
                method,
                path,
                headers,
            },
        })
    }
}

/// One stand-in server on `127.0.0.1:<free port>`.
pub struct ModelServer {
    name: String,
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl ModelServer {
    /// Starts a server that answers as `name`.
    pub fn start(name: &str) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let server = Self {
            name: name.to_string(),
            addr,
            received: received.clone(),
            stop: stop.clone(),
        };
        let name = name.to_string();
        thread::Builder::new()
            .name(format!("upstream-{name}"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (name, received, stop) = (name.clone(), received.clone(), stop.clone());
                    let _ = thread::Builder::new()
                        .name(format!("upstream-{name}-conn"))
                        .spawn(move || serve(stream, &name, &received, &stop));
                }
            })?;
        Ok(server)
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests reached it so far.
    pub fn count(&self) -> usize {
        self.received.lock().map_or(0, |r| r.len())
    }

    /// Every request that reached it so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Serves one connection until the peer closes it.
fn serve(stream: TcpStream, name: &str, received: &Mutex<Vec<Received>>, stop: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    // Envoy keeps idle upstream connections; the timeout only bounds a leaked thread.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    while !stop.load(Ordering::SeqCst) {
        let Ok(Some(head)) = wire::read_head(&mut reader) else {
            return;
        };
        let Ok(framing) = wire::framing(&head.headers, Framing::Empty) else {
            return;
        };
        let Ok(body) = wire::read_body(&mut reader, framing) else {
            return;
        };
        let mut parts = head.start_line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let request = Received {
            method,
            path,
            headers: head.headers,
        };
        let answer = answer(name, &request, &body);
        let close = request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        if let Ok(mut all) = received.lock() {
            all.push(request);
        }
        if writer.write_all(&answer).is_err() || close {
            return;
        }
    }
}

/// The echo answer: `200`, JSON naming the server and what it received.
fn answer(name: &str, request: &Received, body: &[u8]) -> Vec<u8> {
    let headers: Vec<Value> = request.headers.iter().map(|(n, v)| json!([n, v])).collect();
    let mut echo = Map::new();
    echo.insert("server".into(), json!(name));
    echo.insert("method".into(), json!(request.method));
    echo.insert("path".into(), json!(request.path));
    echo.insert("headers".into(), Value::Array(headers));
    echo.insert("bodyBytes".into(), json!(body.len()));
    let json = Value::Object(echo).to_string();
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{UPSTREAM_HEADER}: {name}\r\ncontent-length: {}\r\n\r\n",
        json.len()
    )
    .into_bytes();
    if request.method != "HEAD" {
        out.extend_from_slice(json.as_bytes());
    }
    out
}
