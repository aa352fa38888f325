//! A tiny issuer on loopback serving one JWKS URI, whose behaviour a test switches: good
//! keys, an error status, garbage, a slow answer, a dropped connection, a redirect, an
//! endless body generated on the fly, or no listener at all (connections refused), and
//! back. The controller refuses loopback and http by default: [`loopback_jwks_settings`]
//! is what tests set to reach it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use modelgate_controller::settings::JwksSettings;

/// JWKS settings admitting this server: http, and the loopback address it listens on,
/// set explicitly (the defaults refuse both).
pub fn loopback_jwks_settings() -> JwksSettings {
    serde_yaml_ng::from_str("allowHttp: true\nallowedTargets: [127.0.0.1/32]\n").unwrap()
}

/// How the issuer answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// This status and body.
    Body(u16, String),
    /// A good answer (200, this body) after this long.
    Slow(Duration, String),
    /// Reads the request and closes the connection without a word.
    HangUp,
    /// A redirect (this status) to this location.
    Redirect(u16, String),
    /// 200 and a body of this many bytes, written from one small buffer as fast as the
    /// client reads; with a `content-length` header when `declared`, otherwise until the
    /// connection closes.
    Endless {
        /// Bytes in the body.
        bytes: u64,
        /// Whether the length is announced.
        declared: bool,
    },
}

/// The issuer. Dropping it stops it.
pub struct JwksServer {
    address: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    accepting: Option<JoinHandle<()>>,
    /// Requests answered (or hung up on) so far.
    pub requests: Arc<Mutex<usize>>,
}

impl JwksServer {
    /// Starts serving `answer`.
    pub async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut server = Self {
            address: listener.local_addr().unwrap(),
            answer: Arc::new(Mutex::new(answer)),
            accepting: None,
            requests: Arc::default(),
        };
        server.accept(listener);
        server
    }

    /// The JWKS URI.
    pub fn uri(&self) -> String {
        format!("http://{}/jwks", self.address)
    }

    /// Changes the answer from the next request on.
    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Stops listening: connections are refused until [`Self::up`].
    pub async fn down(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same address.
    pub async fn up(&mut self) {
        if self.accepting.is_none() {
            let listener = TcpListener::bind(self.address).await.unwrap();
            self.accept(listener);
        }
    }

    fn accept(&mut self, listener: TcpListener) {
        let answer = self.answer.clone();
        let requests = self.requests.clone();
        self.accepting = Some(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let answer = answer.lock().unwrap().clone();
                *requests.lock().unwrap() += 1;
                tokio::spawn(respond(stream, answer));
            }
        }));
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
        }
    }
}

async fn respond(mut stream: TcpStream, answer: Answer) {
    // One GET without a body: read up to the end of its headers.
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let (status, body) = match answer {
        Answer::Body(status, body) => (status, body),
        Answer::Slow(delay, body) => {
            tokio::time::sleep(delay).await;
            (200, body)
        }
        Answer::HangUp => return,
        Answer::Redirect(status, location) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.shutdown().await;
            return;
        }
        Answer::Endless { bytes, declared } => {
            let length = if declared {
                format!("content-length: {bytes}\r\n")
            } else {
                String::new()
            };
            let head = format!(
                "HTTP/1.1 200 X\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            // A JWKS that never ends: `{"keys": [` and then spaces.
            let mut chunk = vec![b' '; 64 * 1024];
            chunk[..10].copy_from_slice(b"{\"keys\": [");
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                if stream.write_all(&chunk[..n]).await.is_err() {
                    break;
                }
                chunk[..10].fill(b' ');
                left -= n as u64;
            }
            let _ = stream.shutdown().await;
            return;
        }
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}
